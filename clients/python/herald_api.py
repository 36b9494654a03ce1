"""Herald server API client for Python backends: one file, standard library only, Python 3.8+.

    from herald_api import HeraldApi, HeraldError, mint_token

    herald = HeraldApi("http://localhost:8080", api_key)
    result = herald.publish("chat.room1", {"text": "hi"})   # {"channel", "epoch", "offset", "duplicate"}
    token = mint_token(secret, sub="42", channels={"subscribe": ["chat.**"]})

- One persistent HTTP/1.1 connection (keep-alive). A connection the server closed while it sat idle,
  or that was reset, is opened again by itself.
- Every publish carries an idempotency key (a uuid4 made here unless you give one), and is retried
  with that same key after a reset, a timeout or a 5xx answer, with exponential backoff and jitter:
  Herald applies it once, and a retry of a publish that was applied answers ``duplicate: True`` with
  the first result.
- Errors raise ``HeraldError(code, status, message)`` with Herald's ``HERALD_ERR_*`` code; match on
  ``code``. When no HTTP answer came at all, ``status`` is 0 and ``code`` is
  ``HERALD_ERR_CLIENT_DISCONNECTED`` or ``HERALD_ERR_TIMEOUT``.
- ``mint_token`` signs connection and subscription tokens (HS256 JWTs) with the shared secret.

A client is safe to share between threads (requests take turns on the one connection); give each
thread its own client for parallel requests. After ``os.fork()`` the child opens its own connection.

Run ``python3 herald_api.py --help`` for a small command line (publish, history, info, token).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import random
import select
import socket
import ssl
import sys
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

__all__ = ["HeraldApi", "HeraldError", "Publication", "mint_token", "new_idempotency_key"]
__version__ = "0.1.0"

#: Most commands Herald accepts in one ``POST /api/batch``; ``publish_many`` sends larger lists in parts.
MAX_BATCH_COMMANDS = 1000
#: Most bytes of JSON per ``publish_many`` request: below the server's default ``maxApiBodySize`` (1 MiB).
MAX_BATCH_BYTES = 1_000_000
#: Shortest HMAC secret Herald accepts (RFC 7518).
MIN_HMAC_SECRET_BYTES = 32

#: The permission actions a connection token's ``channels`` claim may hold.
PERMISSION_ACTIONS = ("subscribe", "publish", "history", "presence")

#: Codes of answers worth retrying (with the same idempotency key): the server or its store was
#: briefly unavailable. Any 5xx status is retried too.
_RETRY_CODES = frozenset({"HERALD_ERR_ENGINE_UNAVAILABLE", "HERALD_ERR_SHUTTING_DOWN", "HERALD_ERR_INTERNAL"})

#: HTTP statuses of the codes a command of a batch can fail with (the reply of a batch is a 200,
#: each failed command carries its code only); see Herald's errors.md for the full table.
_CODE_STATUS = {
    "HERALD_ERR_CHANNEL_INVALID": 400,
    "HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED": 400,
    "HERALD_ERR_PROTOCOL_BAD_FIELD": 400,
    "HERALD_ERR_API_BAD_REQUEST": 400,
    "HERALD_ERR_CURSOR_INVALID": 400,
    "HERALD_ERR_HISTORY_DISABLED": 400,
    "HERALD_ERR_PRESENCE_DISABLED": 400,
    "HERALD_ERR_MESSAGE_TOO_LARGE": 413,
    "HERALD_ERR_INTERNAL": 500,
    "HERALD_ERR_ENGINE_UNAVAILABLE": 503,
}

JSON = Any
#: An item of ``publish_many``: ``(channel, data)``, ``(channel, data, idempotency_key)``, or a
#: mapping with ``channel``, ``data`` and optionally ``idempotency_key`` (or ``idempotencyKey``).
Publication = Union[Tuple[str, JSON], Tuple[str, JSON, Optional[str]], Mapping[str, JSON]]


class HeraldError(Exception):
    """An error answered by Herald (``status`` is its HTTP status) or met on the way to it.

    ``code`` is a stable ``HERALD_ERR_*`` code (match on it, never on ``message``). ``status`` is 0
    when no HTTP answer came: ``HERALD_ERR_CLIENT_DISCONNECTED`` (the connection could not be made or
    dropped before the answer) or ``HERALD_ERR_TIMEOUT`` (no answer within ``timeout``). A publish
    that failed this way may or may not have been applied: publish again with the same
    ``idempotency_key`` and Herald applies it at most once.

    An answer that is not Herald's (a proxy's error page) gets the code that says the same thing:
    401 ``HERALD_ERR_API_UNAUTHORIZED``, 404 ``HERALD_ERR_API_NOT_FOUND``, 502 and 503
    ``HERALD_ERR_CLIENT_DISCONNECTED``, 504 ``HERALD_ERR_TIMEOUT``, another 5xx
    ``HERALD_ERR_INTERNAL``, another 4xx ``HERALD_ERR_API_BAD_REQUEST``. ``attempts`` is how many
    requests the call made before it failed (0 for an item of ``publish_many``).
    """

    def __init__(self, code: str, status: int, message: str, attempts: int = 0) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.status = status
        self.message = message
        self.attempts = attempts

    @property
    def retriable(self) -> bool:
        """Whether the same request may succeed later: no answer, a 5xx status, or a busy engine.

        The client has already retried such failures ``retries`` times when it raises one.
        """
        return self.status == 0 or self.status >= 500 or self.code in _RETRY_CODES

    def __repr__(self) -> str:
        return f"HeraldError({self.code!r}, {self.status!r}, {self.message!r})"


def new_idempotency_key() -> str:
    """A fresh idempotency key (a random uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


class HeraldApi:
    """A client of Herald's server API (``POST /api/<method>`` with ``Authorization: apikey <key>``).

    :param url: Herald's base URL, ``http://host:port`` or ``https://host:port``; a path is kept as
        a prefix (``https://example.com/herald`` calls ``https://example.com/herald/api/publish``).
    :param api_key: one of the server's API keys.
    :param timeout: seconds allowed for connecting and for each read or write of one attempt.
    :param retries: how many times a failed request is sent again (so at most ``retries + 1``
        attempts) after a reset, a timeout or a 5xx answer; 0 turns retries off. A 4xx answer is
        never retried.
    :param backoff: the first pause between attempts, in seconds; it doubles at each retry up to
        ``max_backoff``, each one drawn at random between half and all of it (jitter).
    :param max_backoff: the longest pause between two attempts, in seconds.
    :param ssl_context: for ``https`` URLs: the ``ssl.SSLContext`` to use (default: the system's
        trusted CAs, with the host name checked).
    :param on_retry: called as ``on_retry(attempt, error, delay)`` before each retry (to log it).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        timeout: float = 10,
        retries: int = 5,
        *,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        on_retry: Optional[Callable[[int, HeraldError, float], None]] = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http://host[:port] or https://host[:port], got {url!r}")
        if not api_key:
            raise ValueError("api_key is required")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_retry = on_retry
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._ssl_context = ssl_context
        self._headers = {
            "Authorization": f"apikey {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"herald-api-python/{__version__}",
        }
        self._lock = threading.Lock()
        self._conn: Optional[http.client.HTTPConnection] = None
        self._pid = os.getpid()
        self._connections = 0

    # -- the server API ----------------------------------------------------------------------

    def publish(self, channel: str, data: JSON, idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """Publishes ``data`` (any JSON value) to ``channel``; applied once, whatever the retries.

        Returns ``{"channel", "epoch", "offset", "duplicate"}``: the publication's position in the
        channel's stream. ``duplicate`` is True when the key was already used on this channel within
        the server's ``idempotencyWindow`` (5 minutes by default): nothing was published again and
        the first result came back. Give your own ``idempotency_key`` (1-128 characters) to make a
        publish safe to repeat across processes, e.g. the id of the database row it announces.
        """
        key = idempotency_key if idempotency_key is not None else new_idempotency_key()
        return self._call("publish", {"channel": channel, "data": data, "idempotencyKey": key})

    def publish_many(self, publications: Iterable[Publication]) -> List[Union[Dict[str, Any], HeraldError]]:
        """Publishes many items with ``POST /api/batch``: one request per 1000 items (or 1 MB).

        Each item is ``(channel, data)``, ``(channel, data, idempotency_key)`` or a mapping with
        ``channel``, ``data`` and optionally ``idempotency_key``. Items without a key get one. Items
        to the same channel get increasing offsets in the order given.

        Returns one entry per item, in order: the publish result (as ``publish`` returns it), or a
        ``HeraldError`` (not raised) for an item Herald refused, such as an invalid channel. Items
        that failed with a retriable error are sent again, with their keys, within ``retries``. An
        error of the whole request (wrong API key, no answer after the retries) is raised; parts
        sent before it stay applied, so give every item its own key when the whole call must be
        safe to repeat.
        """
        results: List[Union[Dict[str, Any], HeraldError]] = []
        chunk: List[bytes] = []
        size = 0
        for item in publications:
            channel, data, key = _publication(item)
            body = {"channel": channel, "data": data, "idempotencyKey": key or new_idempotency_key()}
            command = _dumps({"publish": body})
            if chunk and (len(chunk) == MAX_BATCH_COMMANDS or size + len(command) + 1 > MAX_BATCH_BYTES):
                results.extend(self._publish_batch(chunk))
                chunk, size = [], 0
            chunk.append(command)
            size += len(command) + 1
        if chunk:
            results.extend(self._publish_batch(chunk))
        return results

    def broadcast(
        self, channels: Sequence[str], data: JSON, idempotency_key: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        """Publishes the same ``data`` to each of ``channels`` (1 to 1000 exact channels).

        Returns one entry per channel, in order: a publish result, or ``{"channel", "error":
        {"code", "message"}}`` for a channel that failed. The idempotency key (made here unless
        given) applies to each channel separately, so a retried broadcast is applied once per channel.
        """
        key = idempotency_key if idempotency_key is not None else new_idempotency_key()
        reply = self._call("broadcast", {"channels": list(channels), "data": data, "idempotencyKey": key})
        return list(reply["results"])

    def history(
        self,
        channel: str,
        limit: Optional[int] = None,
        since: Union[None, str, Mapping[str, Any]] = None,
        reverse: Optional[bool] = None,
        latest: Optional[bool] = None,
    ) -> Dict[str, Any]:
        """Reads a stream's history: ``{"stream", "epoch", "offset", "publications": [...]}``.

        ``since`` is a cursor, ``"epoch:offset"`` or ``{"epoch", "offset"}``: only what came after it.
        ``limit`` (capped by the namespace's ``historySize``), ``reverse`` (newest first) and
        ``latest`` (the newest ``limit`` ones, oldest first; on servers that have it) as in the
        protocol; ``limit=0`` returns the stream's position only. ``truncated: True`` in the answer
        says more matched than fit in one reply.
        """
        body: Dict[str, Any] = {"channel": channel}
        if limit is not None:
            body["limit"] = limit
        if since is not None:
            body["since"] = since if isinstance(since, str) else dict(since)
        if reverse is not None:
            body["reverse"] = reverse
        if latest is not None:
            body["latest"] = latest
        return self._call("history", body)

    def channels(self, pattern: Optional[str] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """The streams with subscribers on the node answering (``pattern``: exact, or a prefix ending in ``*``).

        Each entry is ``{"stream", "subscribers"}``, with ``"presence": {"clients", "users"}`` in
        namespaces that keep presence.
        """
        body: Dict[str, Any] = {}
        if pattern is not None:
            body["pattern"] = pattern
        if limit is not None:
            body["limit"] = limit
        return list(self._call("channels", body)["channels"])

    def presence(self, channel: str) -> Dict[str, Any]:
        """Who is subscribed to ``channel``, on every node: ``{"channel", "presence": [{"client", "user", "info"?}]}``."""
        return self._call("presence", {"channel": channel})

    def presence_stats(self, channel: str) -> Dict[str, Any]:
        """How many clients and distinct users are subscribed to ``channel``: ``{"channel", "clients", "users"}``."""
        return self._call("presenceStats", {"channel": channel})

    def info(self) -> Dict[str, Any]:
        """Counters of the node answering: ``{"nodes": [{"id", "version", "engine", ...}]}``."""
        return self._call("info", {})

    def disconnect(self, client: Optional[str] = None, user: Optional[str] = None, reconnect: bool = False) -> int:
        """Closes the connections of ``client`` (a client id) and/or ``user`` (a token's ``sub``) on
        the node answering; returns how many. With ``reconnect=True`` they are told to come back.

        Not retried after a timeout or a 5xx answer (a second call could close a connection made in
        between); only a request whose kept connection turned out to be closed is sent once more.
        """
        body: Dict[str, Any] = {"reconnect": reconnect}
        if client is not None:
            body["client"] = client
        if user is not None:
            body["user"] = user
        return int(self._call("disconnect", body, retry=False)["disconnected"])

    def batch(self, commands: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """Sends raw batch commands (``[{"publish": {...}}, {"history": {...}}]``, 1 to 1000).

        Returns the raw replies, in order: ``{"<method>": <reply>}`` or ``{"error": {"code", "message"}}``.
        Retried like a publish: give every publish command an ``idempotencyKey`` (``publish_many``
        does) so that a retry applies none twice.
        """
        return list(self._call("batch", {"commands": [dict(c) for c in commands]})["replies"])

    def call(self, method: str, body: Mapping[str, Any], retry: bool = True) -> Any:
        """Calls any server API method with ``body``; returns the decoded JSON reply."""
        return self._call(method, dict(body), retry=retry)

    # -- connection ----------------------------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        """How many TCP connections this client has opened so far (1 while keep-alive holds)."""
        return self._connections

    def close(self) -> None:
        """Closes the connection (the next request opens a new one)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> "HeraldApi":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HeraldApi({self.url!r})"

    # -- internals -----------------------------------------------------------------------------

    def _publish_batch(self, commands: List[bytes]) -> List[Union[Dict[str, Any], HeraldError]]:
        """One batch of serialized publish commands; those that failed with a retriable error are sent again."""
        results: List[Union[Dict[str, Any], HeraldError, None]] = [None] * len(commands)
        pending = list(range(len(commands)))
        attempt = 0
        while True:
            payload = b'{"commands":[' + b",".join(commands[i] for i in pending) + b"]}"
            replies = self._send("batch", payload)["replies"]
            again: List[int] = []
            for i, reply in zip(pending, replies):
                if "publish" in reply:
                    results[i] = reply["publish"]
                    continue
                code = (reply.get("error") or {}).get("code")
                err = _error_of(reply.get("error"), _CODE_STATUS.get(code, 400) if isinstance(code, str) else 500)
                results[i] = err
                if err.code in _RETRY_CODES:
                    again.append(i)
            if not again or attempt >= self.retries:
                return [r for r in results if r is not None]
            delay = self._delay(attempt)
            attempt += 1
            if self.on_retry is not None:
                self.on_retry(attempt, results[again[0]], delay)  # type: ignore[arg-type]
            time.sleep(delay)
            pending = again

    def _call(self, method: str, body: Dict[str, Any], retry: bool = True) -> Dict[str, Any]:
        return self._send(method, _dumps(body), retry)

    def _send(self, method: str, payload: bytes, retry: bool = True) -> Dict[str, Any]:
        """``POST /api/<method>`` with a JSON ``payload``, retried as the class describes."""
        path = f"{self._prefix}/api/{method}"
        attempt = 0
        while True:
            hint: Optional[float] = None
            try:
                status, text, hint = self._request(path, payload)
            except HeraldError as err:
                error = err
            else:
                reply = _json_or_none(text)
                if status == 200 and isinstance(reply, dict):
                    return reply
                error = _error_of(reply, status)
            error.attempts = attempt + 1
            if not error.retriable or not retry or attempt >= self.retries:
                raise error
            delay = self._delay(attempt)
            if hint is not None:
                # The server's Retry-After lengthens this wait, up to max_backoff.
                delay = max(delay, min(hint, self.max_backoff))
            attempt += 1
            if self.on_retry is not None:
                self.on_retry(attempt, error, delay)
            time.sleep(delay)

    def _delay(self, attempt: int) -> float:
        full = min(self.max_backoff, self.backoff * float(2**attempt))
        return full * (0.5 + random.random() / 2)

    def _request(self, path: str, payload: bytes) -> Tuple[int, bytes, Optional[float]]:
        """One attempt: sends the request on the kept connection and reads the answer.

        Returns the status, the body and the answer's ``Retry-After`` in seconds (None without one).

        A kept connection that fails before any byte of the answer arrives was most likely closed by
        the server while idle: it is opened again and the request sent once more at once (this does
        not count as a retry). Raises ``HeraldError`` with status 0 when no answer came.
        """
        with self._lock:
            for fresh_try in (False, True):
                reused = self._usable()
                try:
                    conn = self._connection()
                    conn.request("POST", path, body=payload, headers=self._headers)
                    response = conn.getresponse()
                except socket.timeout as exc:
                    self._drop()
                    raise HeraldError("HERALD_ERR_TIMEOUT", 0, f"no answer within {self.timeout} s") from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    # Most likely a kept connection the server closed while it was idle, just as the
                    # request went out: sent once more on a new connection (a publish's key makes
                    # even a request that did arrive safe to repeat).
                    stale = reused and isinstance(exc, (ConnectionError, http.client.RemoteDisconnected))
                    if stale and not fresh_try:
                        continue
                    raise HeraldError("HERALD_ERR_CLIENT_DISCONNECTED", 0, _describe(exc)) from exc
                try:
                    text = response.read()
                except socket.timeout as exc:
                    self._drop()
                    raise HeraldError("HERALD_ERR_TIMEOUT", 0, f"answer not read within {self.timeout} s") from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise HeraldError("HERALD_ERR_CLIENT_DISCONNECTED", 0, _describe(exc)) from exc
                if response.will_close:
                    self._drop()
                return response.status, text, _retry_after(response.getheader("Retry-After"))
            raise AssertionError("unreachable")

    def _usable(self) -> bool:
        """Whether the kept connection is there and still open (False: the next one is new).

        An idle HTTP/1.1 connection has nothing to read: if its socket is readable, the server
        closed it (or sent something unasked for), and it is dropped.
        """
        if self._pid != os.getpid():
            # A forked child must not share its parent's socket.
            self._conn = None
            self._pid = os.getpid()
        conn = self._conn
        if conn is None or conn.sock is None:
            return False
        if _readable(conn.sock):
            self._drop()
            return False
        return True

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                context = self._ssl_context or ssl.create_default_context()
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=context
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        if self._conn.sock is None:
            self._conn.connect()
            self._connections += 1
            sock = self._conn.sock
            if sock is not None:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None


def _readable(sock: socket.socket) -> bool:
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_or_none(text: bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


#: The code of an error answer without Herald's JSON body (a proxy's error page, another server).
_STATUS_CODE = {
    401: "HERALD_ERR_API_UNAUTHORIZED",
    404: "HERALD_ERR_API_NOT_FOUND",
    405: "HERALD_ERR_API_METHOD_NOT_ALLOWED",
    408: "HERALD_ERR_TIMEOUT",
    413: "HERALD_ERR_API_BODY_TOO_LARGE",
    415: "HERALD_ERR_API_UNSUPPORTED_MEDIA_TYPE",
    502: "HERALD_ERR_CLIENT_DISCONNECTED",
    503: "HERALD_ERR_CLIENT_DISCONNECTED",
    504: "HERALD_ERR_TIMEOUT",
}


def _error_of(body: Any, status: int) -> HeraldError:
    """The ``HeraldError`` of an error body (``{"error": {...}}`` or the inner ``{"code", "message"}``)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and isinstance(body.get("code"), str) and body["code"].startswith("HERALD_ERR_"):
        return HeraldError(body["code"], status, str(body.get("message", "")))
    if status == 200:
        return HeraldError("HERALD_ERR_INTERNAL", status, "the answer is not JSON")
    fallback = "HERALD_ERR_INTERNAL" if status >= 500 else "HERALD_ERR_API_BAD_REQUEST"
    return HeraldError(_STATUS_CODE.get(status, fallback), status, f"HTTP {status}, not a Herald error answer")


def _retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` (seconds, or an HTTP date) in seconds from now; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        at = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at is None:
        return None
    return max(0.0, at.timestamp() - time.time())


def _publication(item: Publication) -> Tuple[str, JSON, Optional[str]]:
    if isinstance(item, Mapping):
        key = item.get("idempotency_key", item.get("idempotencyKey"))
        if "channel" not in item or "data" not in item:
            raise ValueError("a publication mapping needs 'channel' and 'data'")
        return item["channel"], item["data"], key
    if isinstance(item, tuple) and len(item) in (2, 3):
        return item[0], item[1], item[2] if len(item) == 3 else None  # type: ignore[misc]
    raise ValueError("a publication is (channel, data), (channel, data, key) or a mapping")


# -- tokens --------------------------------------------------------------------------------------

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _json_part(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def mint_token(
    secret: Union[str, bytes],
    sub: str,
    ttl: Optional[int] = 3600,
    *,
    channels: Optional[Mapping[str, Sequence[str]]] = None,
    channel: Optional[str] = None,
    info: JSON = None,
    issuer: Optional[str] = None,
    audience: Optional[str] = None,
    not_before: Optional[int] = None,
    now: Optional[int] = None,
    alg: str = "HS256",
    kid: Optional[str] = None,
    claims: Optional[Mapping[str, Any]] = None,
) -> str:
    """Signs a Herald token (a JWT) with the HMAC secret Herald has as ``auth.hmacSecret``.

    A **connection token** (what a browser or device connects with):

        mint_token(secret, "42", channels={"subscribe": ["chat.**", "user.$sub.**"], "publish": ["chat.room1"]},
                   info={"name": "Ann"})

    A **subscription token** for one channel (namespaces with ``requireSubscriptionToken``), short-lived:

        mint_token(secret, "42", ttl=300, channel="dm.42-57")

    :param secret: the shared secret (text is encoded as UTF-8, as Herald does), at least 32 bytes
        as Herald requires.
    :param sub: the user id, a non-empty string of at most 255 characters (``""`` only in a
        subscription token for an anonymous connection).
    :param ttl: lifetime in seconds (``exp = now + ttl``); None makes a token that never expires.
    :param channels: grants, ``{action: [patterns]}`` with actions ``subscribe``, ``publish``,
        ``history`` and ``presence``; a pattern is a channel or ``channel.**``, ``$sub`` stands for
        the user id. Herald refuses a token whose grants are malformed, so they are checked here too.
    :param channel: makes a subscription token for this one stream instead (no ``channels`` then).
    :param info: shown to others in presence (any JSON value).
    :param issuer: the ``iss`` claim; set it when Herald has ``auth.issuer``.
    :param audience: the ``aud`` claim; set it when Herald has ``auth.audience``.
    :param not_before: the ``nbf`` claim, seconds since the epoch.
    :param now: the time to sign at, seconds since the epoch (default: now); sets ``iat``.
    :param alg: ``HS256`` (default), ``HS384`` or ``HS512``.
    :param kid: a ``kid`` header.
    :param claims: more claims, added as they are (Herald ignores claims it does not know).
    """
    if not isinstance(sub, str):
        raise TypeError("sub must be a string (the user id): str(user.id)")
    if channel is None and not sub:
        raise ValueError("a connection token needs a non-empty sub")
    if len(sub) > 255:
        raise ValueError("sub is longer than 255 characters")
    if alg not in _HMAC_HASHES:
        raise ValueError(f"alg must be one of {', '.join(_HMAC_HASHES)}")
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_HMAC_SECRET_BYTES:
        raise ValueError(f"the secret must have at least {MIN_HMAC_SECRET_BYTES} bytes (Herald refuses shorter ones)")
    issued = int(time.time()) if now is None else int(now)
    payload: Dict[str, Any] = dict(claims or {})
    payload["sub"] = sub
    payload["iat"] = issued
    if ttl is not None:
        payload["exp"] = issued + int(ttl)
    if not_before is not None:
        payload["nbf"] = int(not_before)
    if issuer is not None:
        payload["iss"] = issuer
    if audience is not None:
        payload["aud"] = audience
    if info is not None:
        payload["info"] = info
    if channel is not None:
        if channels is not None:
            raise ValueError("a subscription token (channel=...) carries no channels grants")
        payload["channel"] = channel
    elif channels is not None:
        grants: Dict[str, List[str]] = {}
        for action, patterns in channels.items():
            if action not in PERMISSION_ACTIONS:
                raise ValueError(f"unknown action {action!r} in channels; use {', '.join(PERMISSION_ACTIONS)}")
            if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
                raise ValueError(f"channels[{action!r}] must be a list of patterns")
            grants[action] = list(patterns)
        payload["channels"] = grants
    header: Dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{_json_part(header)}.{_json_part(payload)}"
    signature = hmac.new(key, signing_input.encode("ascii"), _HMAC_HASHES[alg]).digest()
    return f"{signing_input}.{_b64url(signature)}"


# -- command line ----------------------------------------------------------------------------------

_USAGE = """usage: herald_api.py COMMAND ...

  publish CHANNEL JSON [--key IDEMPOTENCY_KEY]   publish; prints the result
  history CHANNEL [LIMIT]                        print the stream's history
  info                                           print the node's counters
  token SUB [--subscribe P]... [--publish P]... [--history P]... [--presence P]... [--channel C] [--ttl S]

Environment: HERALD_URL (default http://localhost:8080), HERALD_API_KEY, and for token HERALD_SECRET."""


def _main(argv: List[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    options: Dict[str, List[str]] = {}
    positional: List[str] = []
    i = 0
    while i < len(args):
        if args[i].startswith("--") and i + 1 < len(args):
            options.setdefault(args[i][2:], []).append(args[i + 1])
            i += 2
        else:
            positional.append(args[i])
            i += 1
    try:
        if command == "token":
            secret = os.environ.get("HERALD_SECRET", "")
            if not secret or len(positional) != 1:
                print("token needs SUB and HERALD_SECRET in the environment\n\n" + _USAGE, file=sys.stderr)
                return 2
            grants = {a: options[a] for a in PERMISSION_ACTIONS if a in options}
            channel = options["channel"][-1] if "channel" in options else None
            print(
                mint_token(
                    secret,
                    positional[0],
                    int(options.get("ttl", ["3600"])[-1]),
                    channels=grants or None,
                    channel=channel,
                )
            )
            return 0
        api = HeraldApi(os.environ.get("HERALD_URL", "http://localhost:8080"), os.environ.get("HERALD_API_KEY", ""))
        with api:
            if command == "publish" and len(positional) == 2:
                key = options["key"][-1] if "key" in options else None
                result: Any = api.publish(positional[0], json.loads(positional[1]), key)
            elif command == "history" and len(positional) in (1, 2):
                result = api.history(positional[0], int(positional[1]) if len(positional) == 2 else None)
            elif command == "info" and not positional:
                result = api.info()
            else:
                print(_USAGE, file=sys.stderr)
                return 2
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    except HeraldError as err:
        print(f"herald: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"herald: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
