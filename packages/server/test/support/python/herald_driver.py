"""Drives clients/python/herald_api.py against a Herald server, for test/python-client.test.ts.

usage: herald_driver.py CLIENT_DIR MODE URL API_KEY [ARGS...]

CLIENT_DIR is the folder of herald_api.py. Each mode prints what the test reads on stdout: progress
lines while it runs, and one line "result <json>" at the end. Errors the test does not expect make
the script exit non-zero with a traceback on stderr.

modes:
  many CHANNEL N BATCH_CHANNEL M     N publishes to CHANNEL, then publish_many of M items to BATCH_CHANNEL
                                     and of 40 items of 30 kB to BATCH_CHANNEL + "big"
  restart CHANNEL N                  N publishes, printing "published <i> <offset> <duplicate>" after each;
                                     retries generously, printing "retry <attempt> <code>" before each retry
  retry5xx CHANNEL                   one publish (the test makes the server fail it once with a 503)
  idle CHANNEL                       a publish, then waits (select, with a deadline) until the server closes
                                     the idle connection, then a second publish
  errors CHANNEL                     requests that fail: prints each HeraldError's code and status
  presence CHANNEL                   prints presence() and presence_stats() of CHANNEL
  tokens SECRET                      prints tokens made with mint_token (never contacts the server)
"""

import json
import select
import sys
import time
from typing import Any, Dict


def main() -> int:
    client_dir, mode, url, api_key = sys.argv[1:5]
    args = sys.argv[5:]
    sys.path.insert(0, client_dir)
    sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
    from herald_api import HeraldApi, HeraldError, mint_token  # noqa: E402

    def result(value: object) -> None:
        print("result " + json.dumps(value), flush=True)

    if mode == "many":
        channel, n, batch_channel, m = args[0], int(args[1]), args[2], int(args[3])
        api = HeraldApi(url, api_key)
        offsets = []
        for i in range(n):
            r = api.publish(channel, {"i": i})
            offsets.append(r["offset"])
            if r["duplicate"]:
                raise SystemExit(f"publish {i} came back as a duplicate")
        many = api.publish_many([(batch_channel, {"j": j}) for j in range(m)])
        # 40 items of 30 kB: more than the server's 1 MiB body limit in all, so sent in two requests.
        big = api.publish_many([{"channel": batch_channel + "big", "data": "x" * 30000} for _ in range(40)])
        errors = [str(x) for x in many + big if isinstance(x, HeraldError)]
        result(
            {
                "offsets": offsets,
                "batchOffsets": [x["offset"] for x in many if isinstance(x, dict)],
                "bigOffsets": [x["offset"] for x in big if isinstance(x, dict)],
                "batchErrors": errors,
                "connections": api.connections_opened,
            }
        )
        api.close()
        return 0

    if mode == "restart":
        channel, n = args[0], int(args[1])

        def on_retry(attempt: int, err: HeraldError, delay: float) -> None:
            print(f"retry {attempt} {err.code} {err.status}", flush=True)

        # Enough retries to outlast a slow restart: 200 pauses, of 50 to 100 ms after the first few (10 s at least).
        api = HeraldApi(url, api_key, timeout=5, retries=200, backoff=0.01, max_backoff=0.1, on_retry=on_retry)
        results = []
        for i in range(n):
            r = api.publish(channel, {"i": i})
            results.append(r)
            print(f"published {i} {r['offset']} {str(r['duplicate']).lower()}", flush=True)
        result(
            {
                "offsets": [r["offset"] for r in results],
                "epochs": sorted({r["epoch"] for r in results}),
                "duplicates": [i for i, r in enumerate(results) if r["duplicate"]],
                "connections": api.connections_opened,
            }
        )
        api.close()
        return 0

    if mode == "retry5xx":
        channel = args[0]
        seen = []
        api = HeraldApi(url, api_key, backoff=0.01, on_retry=lambda a, e, d: seen.append([e.code, e.status]))
        r = api.publish(channel, {"once": True})
        result({"publish": r, "retries": seen, "connections": api.connections_opened})
        return 0

    if mode == "idle":
        channel = args[0]
        api = HeraldApi(url, api_key, retries=0)
        first = api.publish(channel, "first")
        sock = api._conn.sock if api._conn is not None else None  # noqa: SLF001 (white-box: wait for the close)
        if sock is None:
            raise SystemExit("no connection is kept after the first publish")
        readable, _, _ = select.select([sock], [], [], 10)
        if not readable:
            raise SystemExit("the server did not close the idle connection within 10 s")
        second = api.publish(channel, "second")
        result({"first": first, "second": second, "connections": api.connections_opened})
        return 0

    if mode == "errors":
        channel = args[0]
        out: Dict[str, Any] = {}

        def attempt(name: str, call) -> None:  # type: ignore[no-untyped-def]
            started = time.monotonic()
            try:
                call()
            except HeraldError as err:
                out[name] = {"code": err.code, "status": err.status, "message": err.message}
            else:
                out[name] = {"code": None}
            out[name]["seconds"] = round(time.monotonic() - started, 3)

        retried = []
        good = HeraldApi(url, api_key, retries=3, on_retry=lambda a, e, d: retried.append(e.code))
        wrong = HeraldApi(url, "not-the-key-0123456789", retries=3, on_retry=lambda a, e, d: retried.append(e.code))
        attempt("wrongKey", lambda: wrong.publish(channel, 1))
        attempt("badChannel", lambda: good.publish("bad..channel", 1))
        attempt("patternChannel", lambda: good.publish("chat.**", 1))
        attempt("badKey", lambda: good.publish(channel, 1, idempotency_key="k" * 129))
        attempt("badCursor", lambda: good.history(channel, since="nope"))
        attempt("noTarget", lambda: good.disconnect())
        attempt("unknownMethod", lambda: good.call("nope", {}))
        out["retriedBeforeRefused"] = list(retried)
        refused = HeraldApi(
            "http://127.0.0.1:1", api_key, timeout=2, retries=2, backoff=0.01, on_retry=lambda a, e, d: retried.append(e.code)
        )
        attempt("refused", lambda: refused.info())
        out["retried"] = retried
        many = good.publish_many([(channel, 1), ("bad..x", 2), {"channel": channel, "data": 3, "idempotency_key": "k3"}])
        out["many"] = [
            {"code": x.code, "status": x.status} if isinstance(x, HeraldError) else {"offset": x["offset"]} for x in many
        ]
        out["broadcast"] = good.broadcast([channel, "bad..y"], {"b": 1})
        out["info"] = good.info()
        out["history"] = good.history(channel, limit=10)
        out["channels"] = good.channels(pattern=channel.split(".")[0] + ".*")
        result(out)
        return 0

    if mode == "presence":
        channel = args[0]
        api = HeraldApi(url, api_key)
        result({"presence": api.presence(channel), "stats": api.presence_stats(channel)})
        return 0

    if mode == "tokens":
        secret = args[0]
        now = int(time.time())
        result(
            {
                "good": mint_token(
                    secret,
                    "42",
                    channels={"subscribe": ["priv.$sub.**", "room.1"], "presence": ["room.**"]},
                    info={"name": "Ann"},
                ),
                "hs512": mint_token(secret, "43", alg="HS512", channels={"subscribe": ["room.1"]}),
                "subscription": mint_token(secret, "42", ttl=300, channel="secret.42-57"),
                "otherUserSubscription": mint_token(secret, "7", ttl=300, channel="secret.42-57"),
                "expired": mint_token(secret, "42", ttl=60, now=now - 3600),
                "notYet": mint_token(secret, "42", not_before=now + 3600),
                "wrongSecret": mint_token(secret + "-not", "42"),
                "badGrant": mint_token(secret, "42", claims={"channels": {"subscibe": ["room.1"]}}),
            }
        )
        return 0

    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main())
