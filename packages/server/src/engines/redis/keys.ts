/**
 * Redis key and pub/sub channel names, and how a namespace is mapped to a shard.
 *
 * Every key of a stream carries its namespace as a Redis Cluster hash tag: `<prefix>:{<ns>}:m:<stream>`.
 * The namespace is the shard key everywhere (independent shards and Redis Cluster slots), so a
 * channel and all its subtree streams (`a.b`, `a.b.**`, `a.**`) live together and one Lua script
 * publishes to all of them atomically.
 */
import { namespaceOf } from '@herald/protocol';

export class KeySpace {
  constructor(readonly prefix: string) {}

  private base(stream: string): string {
    return `${this.prefix}:{${namespaceOf(stream)}}`;
  }

  /** Hash with the stream's epoch (`e`), top offset (`t`) and history TTL (`l`). */
  meta(stream: string): string {
    return `${this.base(stream)}:m:${stream}`;
  }

  /** Redis Stream holding the stream's history; entry ids are `<offset>-0`. */
  history(stream: string): string {
    return `${this.base(stream)}:h:${stream}`;
  }

  /** The pub/sub channel live publications of the stream are sent on. */
  live(stream: string): string {
    return `${this.base(stream)}:p:${stream}`;
  }

  /** Presence of a channel: hash of its entries by client id. */
  presenceEntries(channel: string): string {
    return `${this.base(channel)}:pe:${channel}`;
  }

  /** Presence of a channel: sorted set of its client ids by deadline. */
  presenceDeadlines(channel: string): string {
    return `${this.base(channel)}:pd:${channel}`;
  }

  /** Presence of a channel: hash of how many of its clients each user id has. */
  presenceUsers(channel: string): string {
    return `${this.base(channel)}:pu:${channel}`;
  }

  /** The channels of a namespace that have presence entries, by their latest deadline. */
  presenceIndex(namespace: string): string {
    return `${this.prefix}:{${namespace}}:pc`;
  }

  /** Every node's latest figures (admin page), on the shard of keys that are not per namespace. */
  nodes(): string {
    return `${this.prefix}:nodes`;
  }

  /** Remembers a publish's result for its idempotency window. A space cannot occur in a channel. */
  idempotency(channel: string, key: string): string {
    return `${this.base(channel)}:i:${channel} ${key}`;
  }

  /**
   * The control channel of a node (requests to it, and answers to its own requests). The node id is
   * its hash tag, hence its shard key: see `RedisControl`.
   */
  node(id: string): string {
    return `${this.prefix}:node:{${id}}`;
  }

  /** Keys that are not per stream (the ingestion lease). */
  global(name: string): string {
    return `${this.prefix}:${name}`;
  }
}

/**
 * Jump consistent hash (Lamping and Veach, 2014): a bucket in [0, buckets) for a 64-bit key. Going
 * from n to n + 1 buckets moves only 1/(n + 1) of the keys, all of them to the new bucket.
 */
export function jumpHash(key: bigint, buckets: number): number {
  let k = BigInt.asUintN(64, key);
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = BigInt.asUintN(64, k * 2862933555777941757n + 1n);
    j = Math.floor(((b + 1) * 2 ** 31) / (Number(k >> 33n) + 1));
  }
  return b;
}

/** 64-bit FNV-1a of a string's UTF-8 bytes. */
export function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= BigInt(byte);
    h = BigInt.asUintN(64, h * 0x100000001b3n);
  }
  return h;
}

/** The shard (0-based) of a namespace among `shards` independent Redis servers. */
export function shardOf(namespace: string, shards: number): number {
  return shards <= 1 ? 0 : jumpHash(fnv1a64(namespace), shards);
}

/** CRC16/XMODEM, as Redis Cluster uses it to map keys to slots. */
function crc16(data: Buffer): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The Redis Cluster slot of a key or shard channel (honouring `{hash tags}`). */
export function clusterSlot(key: string): number {
  let k = key;
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) k = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(k, 'utf8')) % 16384;
}
