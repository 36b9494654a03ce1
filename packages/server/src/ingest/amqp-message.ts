/**
 * What an AMQP message means to Herald, without any I/O: which Herald channel it goes to (from its
 * exchange and routing key, through the configured bindings), what data it carries (a JSON envelope
 * or a plain body) and which idempotency key deduplicates its redeliveries. A message that cannot be
 * published is described by an error code and a reason, for the log and the dead-letter queue.
 */
import type { ErrorCode } from '@herald/protocol';

export interface AmqpRoute {
  readonly exchange: string;
  /** Binding key: words separated by `.`, `*` one word, `#` zero or more words. */
  readonly routingKey: string;
  /** `''`: the routing key; an exact channel; or a prefix ending in `*` (see `bindingKeyPrefix`). */
  readonly channel: string;
}

/** The parts of a delivered message this module reads (amqplib's `ConsumeMessage` has them). */
export interface AmqpDelivery {
  readonly content: Buffer;
  readonly fields: { readonly exchange: string; readonly routingKey: string };
  readonly properties: { readonly messageId?: unknown; readonly contentType?: unknown };
}

export type ParsedDelivery =
  | { readonly ok: true; readonly channel: string; readonly data: unknown; readonly idempotencyKey: string | undefined }
  | { readonly ok: false; readonly code: ErrorCode; readonly reason: string };

const MAX_IDEMPOTENCY_KEY = 128;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The words of a binding key before its first wildcard (`*` or `#`), with their dots: `rooms.#` → `rooms.`. */
export function bindingKeyPrefix(routingKey: string): string {
  const words = routingKey.split('.');
  const wild = words.findIndex((w) => w === '*' || w === '#');
  return wild === -1
    ? routingKey
    : words
        .slice(0, wild)
        .map((w) => `${w}.`)
        .join('');
}

/** Whether `routingKey` matches the topic binding key `pattern` (`*` one word, `#` zero or more). */
export function topicMatches(pattern: string, routingKey: string): boolean {
  const p = pattern.split('.');
  const k = routingKey.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    const word = p[i];
    if (word === '#') {
      for (let n = j; n <= k.length; n++) if (match(i + 1, n)) return true;
      return false;
    }
    return j < k.length && (word === '*' || word === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}

/**
 * The Herald channel a message of `exchange` with `routingKey` goes to: through the first route
 * whose exchange and binding key match it, else the routing key itself (a queue bound by hand, or a
 * message sent to the queue through the default exchange).
 */
export function routeChannel(routes: readonly AmqpRoute[], exchange: string, routingKey: string): string {
  for (const r of routes) {
    if (r.exchange !== exchange || !topicMatches(r.routingKey, routingKey)) continue;
    if (r.channel === '') return routingKey;
    if (!r.channel.endsWith('*')) return r.channel;
    const literal = bindingKeyPrefix(r.routingKey);
    return r.channel.slice(0, -1) + routingKey.slice(literal.length);
  }
  return routingKey;
}

function bad(code: ErrorCode, reason: string): ParsedDelivery {
  return { ok: false, code, reason };
}

/** The message id as an idempotency key: undefined when absent, or a reason when unusable. */
function messageIdKey(id: unknown): string | undefined | { reason: string } {
  if (id === undefined || id === null || id === '') return undefined;
  if (typeof id !== 'string' || id.length > MAX_IDEMPOTENCY_KEY) {
    return { reason: `message_id must be a string of at most ${MAX_IDEMPOTENCY_KEY} characters` };
  }
  return id;
}

/**
 * Reads a delivery. `json`: the body is `{"data": ..., "channel"?: "...", "idempotencyKey"?: "..."}`
 * (a channel in the body wins over the routing key). `plain`: the body is the data, a JSON string
 * of its UTF-8 text, or the JSON value it holds when its content type is `application/json`. The
 * idempotency key is the envelope's, else the message id.
 */
export function parseDelivery(
  msg: AmqpDelivery,
  format: 'json' | 'plain',
  routes: readonly AmqpRoute[],
): ParsedDelivery {
  let text: string;
  try {
    text = utf8.decode(msg.content);
  } catch {
    return bad('HERALD_ERR_PROTOCOL_MALFORMED', 'the body is not UTF-8 text');
  }
  const fromId = messageIdKey(msg.properties.messageId);
  if (typeof fromId === 'object') return bad('HERALD_ERR_PROTOCOL_BAD_FIELD', fromId.reason);
  const routed = (): string => routeChannel(routes, msg.fields.exchange, msg.fields.routingKey);
  const contentType = typeof msg.properties.contentType === 'string' ? msg.properties.contentType : '';
  if (format === 'plain') {
    if (!/^application\/json\s*(;|$)/i.test(contentType)) {
      return { ok: true, channel: routed(), data: text, idempotencyKey: fromId };
    }
    try {
      return { ok: true, channel: routed(), data: JSON.parse(text) as unknown, idempotencyKey: fromId };
    } catch {
      return bad('HERALD_ERR_PROTOCOL_MALFORMED', 'the body is not JSON, and its content type is application/json');
    }
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return bad('HERALD_ERR_PROTOCOL_MALFORMED', 'the body is not JSON (amqp.format is json)');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return bad('HERALD_ERR_PROTOCOL_MALFORMED', 'the body is not a JSON object {"data": ..., "channel"?: ...}');
  }
  const m = body as Record<string, unknown>;
  for (const k of Object.keys(m)) {
    if (k !== 'channel' && k !== 'data' && k !== 'idempotencyKey') {
      return bad(
        'HERALD_ERR_PROTOCOL_BAD_FIELD',
        `unknown field "${k}" (the fields are data, channel, idempotencyKey)`,
      );
    }
  }
  if (!('data' in m)) return bad('HERALD_ERR_PROTOCOL_BAD_FIELD', '"data" is required');
  const channel = m['channel'];
  if (channel !== undefined && typeof channel !== 'string') {
    return bad('HERALD_ERR_PROTOCOL_BAD_FIELD', '"channel" must be a string');
  }
  const key = m['idempotencyKey'];
  if (key !== undefined && (typeof key !== 'string' || key === '' || key.length > MAX_IDEMPOTENCY_KEY)) {
    return bad(
      'HERALD_ERR_PROTOCOL_BAD_FIELD',
      `"idempotencyKey" must be a string of 1-${MAX_IDEMPOTENCY_KEY} characters`,
    );
  }
  return { ok: true, channel: channel ?? routed(), data: m['data'], idempotencyKey: key ?? fromId };
}
