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
