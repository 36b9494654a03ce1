/**
 * Finds the benchmark payloads in received text without parsing JSON: every payload is
 * `{"seq":<n>,"t":"<ns>"...}`, where `t` is `process.hrtime.bigint()` (CLOCK_MONOTONIC, the same clock
 * in every process of the machine) taken by the publisher just before it sent the publish request.
 * Works on any framing (Herald's JSON frames, SSE `data:` lines, Socket.IO packets, recovery replies)
 * because it only looks for `"seq":`. The text must hold whole payloads: callers cut at line ends.
 */
/** Receives each payload found (an object, so scanning allocates no closure per read). */
export interface PayloadVisitor {
  payload(seq: number, sentNs: number): void;
}

const SEQ = '"seq":';
const T = '"t":"';

export function scanPayloads(text: string, visit: PayloadVisitor): number {
  let found = 0;
  let i = text.indexOf(SEQ);
  while (i !== -1) {
    let j = i + SEQ.length;
    let seq = 0;
    let c = text.charCodeAt(j);
    while (c >= 48 && c <= 57) {
      seq = seq * 10 + (c - 48);
      c = text.charCodeAt(++j);
    }
    const k = text.indexOf(T, j);
    if (k === -1 || k > j + 8) break;
    let m = k + T.length;
    let t = 0;
    c = text.charCodeAt(m);
    while (c >= 48 && c <= 57) {
      t = t * 10 + (c - 48);
      c = text.charCodeAt(++m);
    }
    visit.payload(seq, t);
    found++;
    i = text.indexOf(SEQ, m);
  }
  return found;
}

/** The payload the publisher sends: sequence number, send time, and optional padding. */
export function payload(seq: number, sentNs: bigint, padding: string): string {
  return padding === '' ? `{"seq":${seq},"t":"${sentNs}"}` : `{"seq":${seq},"t":"${sentNs}","p":"${padding}"}`;
}

const EPOCH = /"epoch":"([A-Za-z0-9_-]{1,32})"/;

/** The first `"epoch":"..."` in a text (Herald's subscribe reply or `subscribed` event). */
export function findEpoch(text: string): string | undefined {
  return EPOCH.exec(text)?.[1];
}

// Herald's MessagePack protocol (target `herald-ws-msgpack`), read as latin1 text (one character per
// byte): a payload is the map a3 "seq" <uint> a1 "t" <str>, found by those bytes as `scanPayloads`
// finds the JSON text.
const MP_SEQ = '\xa3seq';
const MP_T = '\xa1t';

export function scanMsgpackPayloads(text: string, visit: PayloadVisitor): number {
  let found = 0;
  let i = text.indexOf(MP_SEQ);
  while (i !== -1) {
    let j = i + MP_SEQ.length;
    const b = text.charCodeAt(j);
    const n = b < 0x80 ? 0 : b === 0xcc ? 1 : b === 0xcd ? 2 : b === 0xce ? 4 : -1;
    if (n < 0 || Number.isNaN(b)) break;
    let seq = n === 0 ? b : 0;
    j += 1;
    for (let k = 0; k < n; k++) seq = seq * 256 + text.charCodeAt(j++);
    const k = text.indexOf(MP_T, j);
    if (k === -1 || k > j + 8) break;
    let m = k + MP_T.length;
    const h = text.charCodeAt(m);
    m += (h & 0xe0) === 0xa0 ? 1 : h === 0xd9 ? 2 : 0;
    let t = 0;
    let c = text.charCodeAt(m);
    while (c >= 48 && c <= 57) {
      t = t * 10 + (c - 48);
      c = text.charCodeAt(++m);
    }
    visit.payload(seq, t);
    found++;
    i = text.indexOf(MP_SEQ, m);
  }
  return found;
}

const MP_EPOCH = /\xa5epoch[\xa0-\xbf]([A-Za-z0-9_-]{1,31})/;

/** The epoch of a MessagePack subscribe reply (latin1 text): "epoch" then a fixstr. */
export function findMsgpackEpoch(text: string): string | undefined {
  const m = MP_EPOCH.exec(text);
  if (m === null) return undefined;
  const len = text.charCodeAt((m.index ?? 0) + 6) & 0x1f;
  return m[1]?.slice(0, len);
}

function mpStr(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from(b.length < 32 ? [0xa0 | b.length] : [0xd9, b.length]), b]);
}

function mpUint(n: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = 0xce;
  b.writeUInt32BE(n, 1);
  return b;
}

/** `{"id":1,"cmd":"subscribe","channel":..,"since"?:{"epoch":..,"offset":..}}` in MessagePack. */
export function msgpackSubscribe(channel: string, since?: { epoch: string; offset: number }): Buffer {
  const parts = [Buffer.from([since === undefined ? 0x83 : 0x84]), mpStr('id'), Buffer.from([1])];
  parts.push(mpStr('cmd'), mpStr('subscribe'), mpStr('channel'), mpStr(channel));
  if (since !== undefined) {
    parts.push(mpStr('since'), Buffer.from([0x82]), mpStr('epoch'), mpStr(since.epoch));
    parts.push(mpStr('offset'), mpUint(since.offset));
  }
  return Buffer.concat(parts);
}
