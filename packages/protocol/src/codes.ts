/**
 * The one table of Herald's codes. Reply errors (sent in `{"id":..,"error":{code,message}}` and in
 * the server API's `{"error":{code,message}}` bodies) and disconnect codes (WebSocket close codes and
 * `disconnect` pushes) are defined here and nowhere else; docs/errors.md is generated from this file
 * and a test fails when a code is undocumented.
 */

export interface ErrorCodeInfo {
  /** HTTP status used when the error answers an HTTP request. */
  readonly status: number;
  /** One line for humans; the message sent with the error may add detail. */
  readonly description: string;
}

export const ErrorCodes = {
  HERALD_ERR_PROTOCOL_MALFORMED: {
    status: 400,
    description: 'The frame is not valid JSON or not a JSON object.',
  },
  HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND: {
    status: 400,
    description: 'The frame names a command that does not exist.',
  },
  HERALD_ERR_PROTOCOL_BAD_FIELD: {
    status: 400,
    description: 'A field of the command is missing, of the wrong type or out of range.',
  },
  HERALD_ERR_PROTOCOL_DUPLICATE_ID: {
    status: 400,
    description: 'A command reused the id of a command that is still in flight.',
  },
  HERALD_ERR_PROTOCOL_PIPELINED: {
    status: 400,
    description:
      'More HTTP/1.1 requests were pipelined on one connection than the server queues (16); the connection is closed (logged, no response).',
  },
  HERALD_ERR_CHANNEL_INVALID: {
    status: 400,
    description:
      'The channel name breaks the grammar: segments of [A-Za-z0-9_@~=+:-], at most 16 segments and 255 bytes, `**` only as the last segment.',
  },
  HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED: {
    status: 400,
    description:
      'A subtree pattern (`x.**`) was given where an exact channel is required (publish, presence, presenceStats).',
  },
  HERALD_ERR_CURSOR_INVALID: {
    status: 400,
    description:
      'The cursor is malformed: `since` must be `{"epoch": string, "offset": integer >= 0}` (the server API also takes the text form `<epoch>:<offset>`).',
  },
  HERALD_ERR_SUBSCRIBE_ALREADY: {
    status: 409,
    description: 'The connection is already subscribed to this stream.',
  },
  HERALD_ERR_SUBSCRIBE_NOT_SUBSCRIBED: {
    status: 409,
    description: 'The connection is not subscribed to this stream.',
  },
  HERALD_ERR_SUBSCRIBE_LIMIT: {
    status: 429,
    description: 'The connection reached the maximum number of subscriptions (limits.maxSubscriptionsPerConnection).',
  },
  HERALD_ERR_PERMISSION_DENIED: {
    status: 403,
    description:
      'The namespace does not allow this action for this client (anonymous subscribe, client publish, history).',
  },
  HERALD_ERR_MESSAGE_TOO_LARGE: {
    status: 413,
    description: "The publication's data is larger than the namespace's maxMessageSize.",
  },
  HERALD_ERR_TOO_MANY_COMMANDS: {
    status: 429,
    description:
      'Too many commands at once: limits.maxCommandsWaiting commands were already waiting for their turn on the connection (the extra ones were not run), or a `POST /send` body held more than limits.maxCommandsInFlight + limits.maxCommandsWaiting commands (none was run), or 10,000 requests read on a `GET /api/ws` connection were waiting for one of its 1000 in-flight slots (the extra ones were not run).',
  },
  HERALD_ERR_REPLY_TOO_LARGE: {
    status: 413,
    description:
      'The reply did not fit in what was left of the `POST /send` response (limits.maxReplyBytes): a `subscribe` was not made; another command ran but its reply was dropped. Send it again in a request of its own.',
  },
  HERALD_ERR_HISTORY_DISABLED: {
    status: 400,
    description: 'History or recovery was requested on a namespace whose history size is 0.',
  },
  HERALD_ERR_PRESENCE_DISABLED: {
    status: 400,
    description:
      'Presence (`presence`, `presenceStats`) was asked of a channel whose namespace has the `presence` option off.',
  },
  HERALD_ERR_AUTH_TOKEN_REQUIRED: {
    status: 401,
    description:
      'A connection token is needed and none was given (auth.anonymousConnect is false, or the action needs a user).',
  },
  HERALD_ERR_AUTH_TOKEN_TOO_LARGE: {
    status: 401,
    description: 'The token is longer than auth.maxTokenLength; it was rejected without being parsed.',
  },
  HERALD_ERR_AUTH_TOKEN_MALFORMED: {
    status: 401,
    description: 'The token is not a well-formed JWT (three base64url parts, a JSON header and JSON claims).',
  },
  HERALD_ERR_AUTH_TOKEN_ALGORITHM: {
    status: 401,
    description:
      "The token's `alg` is not accepted: `none` never is; others must be in auth.algorithms and fit a configured key.",
  },
  HERALD_ERR_AUTH_TOKEN_INVALID: {
    status: 401,
    description:
      "The token's signature does not verify with any configured key (wrong key, unknown `kid`, altered token).",
  },
  HERALD_ERR_AUTH_TOKEN_EXPIRED: {
    status: 401,
    description: 'The token is past its `exp`; get a new token from the application.',
  },
  HERALD_ERR_AUTH_TOKEN_NOT_YET_VALID: {
    status: 401,
    description: "The token's `nbf` (not before) is in the future.",
  },
  HERALD_ERR_AUTH_TOKEN_CLAIMS: {
    status: 401,
    description:
      'A claim of the token is missing, of the wrong type or not the expected value (`sub`, `iss`, `aud`, `channels`, `channel`).',
  },
  HERALD_ERR_AUTH_KEYS_UNAVAILABLE: {
    status: 503,
    description: 'The keys at auth.jwksUrl could not be fetched or read, so tokens cannot be checked; retry later.',
  },
  HERALD_ERR_AUTH_SUBSCRIPTION_TOKEN_REQUIRED: {
    status: 403,
    description: "The channel's namespace requires a subscription token (requireSubscriptionToken) and none was given.",
  },
  HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH: {
    status: 403,
    description: 'The subscription token was issued for another channel or another user.',
  },
  HERALD_ERR_AUTH_RATE_LIMITED: {
    status: 429,
    description: 'Too many failed authentication attempts from this address (auth.maxFailuresPerMinute); retry later.',
  },
  HERALD_ERR_HOOK_DENIED: {
    status: 403,
    description: "The application's backend hook refused the action; the message carries its reason.",
  },
  HERALD_ERR_HOOK_TIMEOUT: {
    status: 504,
    description: "The application's backend hook did not answer within auth.hooks.timeout.",
  },
  HERALD_ERR_HOOK_UNAVAILABLE: {
    status: 502,
    description: 'The backend hook could not be reached, or answered with an HTTP status other than 200.',
  },
  HERALD_ERR_HOOK_BAD_RESPONSE: {
    status: 502,
    description: 'The backend hook answered with something other than the documented JSON (`{"allow": boolean, ...}`).',
  },
  HERALD_ERR_API_UNAUTHORIZED: {
    status: 401,
    description: 'The server API request has no `Authorization: apikey <key>` header or the key is wrong.',
  },
  HERALD_ERR_API_NOT_FOUND: {
    status: 404,
    description: 'No such server API method or HTTP path.',
  },
  HERALD_ERR_API_METHOD_NOT_ALLOWED: {
    status: 405,
    description: 'The server API takes POST only.',
  },
  HERALD_ERR_API_BAD_REQUEST: {
    status: 400,
    description: 'The server API request body is not valid JSON or a field is missing or of the wrong type.',
  },
  HERALD_ERR_API_BODY_TOO_LARGE: {
    status: 413,
    description: 'The server API request body is larger than limits.maxApiBodySize.',
  },
  HERALD_ERR_API_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    description: 'The server API request body must be `application/json`.',
  },
  HERALD_ERR_API_UNSUPPORTED_ENCODING: {
    status: 415,
    description:
      'The request body (server API or `POST /send`) has a `Content-Encoding` other than `identity` (gzip, deflate, br, ...): Herald reads uncompressed bodies only.',
  },
  HERALD_ERR_ADMIN_UNAUTHORIZED: {
    status: 401,
    description:
      'The admin page request has no valid admin session cookie (log in at `/admin/login`), or the password is wrong.',
  },
  HERALD_ERR_ADMIN_FORBIDDEN: {
    status: 403,
    description:
      "An admin page action came without the session's `X-Herald-CSRF` token, or from another origin (`Origin`, `Sec-Fetch-Site`).",
  },
  HERALD_ERR_ADMIN_RATE_LIMITED: {
    status: 429,
    description: 'Too many wrong admin passwords from this address within a minute; retry after `Retry-After` seconds.',
  },
  HERALD_ERR_SESSION_NOT_FOUND: {
    status: 404,
    description:
      'The session id given to `POST /send` is unknown, malformed, or not valid on this server (a session id is only given to the client that opened the session).',
  },
  HERALD_ERR_TRANSPORT_DISABLED: {
    status: 404,
    description: 'This transport is switched off in the configuration (`transports.*`).',
  },
  HERALD_ERR_CONNECTION_LIMIT: {
    status: 503,
    description: 'The server holds limits.maxConnections connections and refuses new ones.',
  },
  HERALD_ERR_SHUTTING_DOWN: {
    status: 503,
    description: 'The server is shutting down and accepts no new connections.',
  },
  HERALD_ERR_ENGINE_UNAVAILABLE: {
    status: 503,
    description: 'The engine (memory or Redis) could not complete the operation; retry later.',
  },
  HERALD_ERR_NODE_UNREACHABLE: {
    status: 502,
    description:
      'The session lives on another Herald node, and that node did not answer the forwarded `POST /send` within http.sendForwardTimeout (it stopped or is unreachable): open a new session.',
  },
  HERALD_ERR_BROWSER_CONNECTION_LIMIT: {
    status: 503,
    description:
      "Client SDK: a request got no answer in time while five or more of the origin's Herald HTTP connections (other tabs) were open: a browser allows 6 connections per host over HTTP/1.1. Serve Herald over HTTP/2, or share one connection across tabs (SharedHerald).",
  },
  HERALD_ERR_CLIENT_DISCONNECTED: {
    status: 503,
    description:
      'Client SDK: the connection dropped before the reply came, or the client stopped reconnecting; a publish may or may not have been applied (retry it with an idempotencyKey).',
  },
  HERALD_ERR_CLIENT_CLOSED: {
    status: 410,
    description: 'Client SDK: the client was closed with close(); its commands and subscriptions have ended.',
  },
  HERALD_ERR_TIMEOUT: {
    status: 504,
    description: 'The operation did not complete in time.',
  },
  HERALD_ERR_INTERNAL: {
    status: 500,
    description: 'An unexpected server error; it is logged with details on the server.',
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ErrorCodes;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ErrorCodes, value);
}

export interface DisconnectInfo {
  /** WebSocket close code (4xxx is reserved for applications; Herald uses 3000-3999). */
  readonly code: number;
  /** Whether a client should reconnect (and recover from its cursors). */
  readonly reconnect: boolean;
  readonly description: string;
}

/**
 * Disconnect codes. The range tells the client what to do: 3000-3499 reconnect (with backoff, and
 * recover from cursors); 3500-3999 do not reconnect without a change (new token, user action).
 */
export const DisconnectCodes = {
  SHUTDOWN: {
    code: 3001,
    reconnect: true,
    description: 'The server is shutting down; reconnect after the `retryAfterMs` hint to another node or this one.',
  },
  SLOW: {
    code: 3002,
    reconnect: true,
    description:
      "The connection's send queue overflowed (limits.maxQueueBytes): the client reads too slowly. Reconnect and recover from cursors.",
  },
  STALE: {
    code: 3003,
    reconnect: true,
    description: 'The connection did not answer heartbeats within pingTimeout.',
  },
  FORCE_RECONNECT: {
    code: 3004,
    reconnect: true,
    description: 'The server API asked this connection to reconnect (`/api/disconnect` with `reconnect: true`).',
  },
  INTERNAL: {
    code: 3005,
    reconnect: true,
    description: 'An unexpected server error closed the connection.',
  },
  INSUFFICIENT_STATE: {
    code: 3006,
    reconnect: true,
    description:
      'The server lost publications of a subscribed stream on their way to this connection; reconnect and resubscribe with cursors to recover them (or be told `recovered: false`).',
  },
  FORCE_DISCONNECT: {
    code: 3500,
    reconnect: false,
    description: 'The server API disconnected this client or user (`/api/disconnect`).',
  },
  BAD_REQUEST: {
    code: 3501,
    reconnect: false,
    description: 'The client broke the protocol (for example a binary frame on a JSON connection).',
  },
  UNAUTHORIZED: {
    code: 3510,
    reconnect: false,
    description:
      "The connection's token is missing, invalid or no longer accepted; connect again only with a new token.",
  },
  TOKEN_EXPIRED: {
    code: 3511,
    reconnect: false,
    description:
      "The connection's token expired and was not refreshed in time; get a new token from the application, then reconnect.",
  },
} as const satisfies Record<string, DisconnectInfo>;

export type DisconnectName = keyof typeof DisconnectCodes;

export function disconnectByCode(code: number): (DisconnectInfo & { name: DisconnectName }) | undefined {
  for (const [name, info] of Object.entries(DisconnectCodes)) {
    if (info.code === code) return { name: name as DisconnectName, ...info };
  }
  return undefined;
}

/** Whether a close code means "reconnect": 3000-3499 yes, 3500-3999 no, others (1000-2999) yes. */
export function shouldReconnect(code: number): boolean {
  return !(code >= 3500 && code <= 3999);
}
