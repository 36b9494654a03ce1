/**
 * The NATS engine's per-namespace log, without NATS: what a node derives from the messages of a
 * namespace's JetStream stream (positions of a batch, history references, lineage changes), and
 * the invariant that a stream forgotten after its meta TTL never starts again at offset 1 under an
 * epoch it had before.
 */
import { describe, expect, it } from 'vitest';
import {
  LINEAGE_HEADER,
  NamespaceLog,
  decodeBatch,
  encodeBatch,
  encodePolicy,
  type StoredMessage,
} from '../src/engines/nats/namespace-log.js';

const POLICY = encodePolicy({ size: 2, ttlMs: 60_000, metaTtlMs: 120_000 });
const BATCH = 'p.b.ns';

function marker(seq: number, lineage: string): StoredMessage {
  return {
    seq,
    subject: 'p.m.ns',
    time: 0,
    header: (n) => (n === LINEAGE_HEADER ? lineage : undefined),
    data: new Uint8Array(),
  };
}

/** The batch a node would publish next to `channels`, as JetStream would store it at `seq`. */
function next(log: NamespaceLog, seq: number, channels: string[], time = 1000): StoredMessage {
  const plan = log.plan(channels);
  const data = encodeBatch(
    channels.map((channel, i) => ({ channel, positions: plan[i]!.positions, policy: POLICY, data: `"${channel}"` })),
  );
  const lineage = log.lineage;
  return { seq, subject: BATCH, time, header: (n) => (n === LINEAGE_HEADER ? lineage : undefined), data };
}

describe('NATS namespace log', () => {
  it('gives each publication of a batch the next offset of every stream it belongs to', () => {
    const log = new NamespaceLog('ns', BATCH);
    log.apply(marker(1, 'AAAAAAAA'));
    const epoch = log.freshEpoch();
    const r = log.apply(next(log, 2, ['ns.a', 'ns.a.b', 'ns.a']));
    expect(r.kind).toBe('ok');
    const pubs = r.kind === 'ok' ? r.publications : [];
    expect(pubs.map((p) => `${p.stream}@${p.offset}`)).toEqual([
      'ns.a@1',
      'ns.a.**@1',
      'ns.**@1',
      'ns.a.b@1',
      'ns.a.b.**@1',
      'ns.a.**@2',
      'ns.**@2',
      'ns.a@2',
      'ns.a.**@3',
      'ns.**@3',
    ]);
    expect(new Set(pubs.map((p) => p.epoch))).toEqual(new Set([epoch]));
    // History keeps `size` (2) per stream, with where each one is.
    expect(log.kept('ns.**', 1000)).toEqual({
      top: 3,
      epoch,
      entries: [
        { seq: 2, index: 1, offset: 2 },
        { seq: 2, index: 2, offset: 3 },
      ],
    });
  });

  it('asks for a reload on a batch of another lineage, and starts over on a marker', () => {
    const log = new NamespaceLog('ns', BATCH);
    log.apply(marker(1, 'AAAAAAAA'));
    log.apply(next(log, 2, ['ns.a']));
    const other = new NamespaceLog('ns', BATCH);
    other.apply(marker(1, 'BBBBBBBB'));
    expect(log.apply(next(other, 3, ['ns.a'])).kind).toBe('reload');
    expect(log.applied).toBe(2);
    log.apply(marker(3, 'CCCCCCCC'));
    expect(log.position('ns.a')).toEqual({ epoch: 'CCCCCCCC3', offset: 0 });
  });

  it('never starts a forgotten stream at offset 1 again under an epoch it had', () => {
    const log = new NamespaceLog('ns', BATCH);
    log.apply(marker(1, 'AAAAAAAA'));
    const first = log.plan(['ns.x'])[0]!;
    log.apply(next(log, 2, ['ns.x'], 0));
    log.apply(next(log, 3, ['ns.y'], 500_000));
    // ns.x is idle past its meta TTL (120 s): forgotten, and the floor moves past what was applied.
    log.sweep(200_000, () => false);
    const again = log.plan(['ns.x'])[0]!;
    expect(again.offset).toBe(1);
    expect(again.epoch).not.toBe(first.epoch);
    expect(log.position('ns.y').offset).toBe(1);
  });

  it('takes messages that are not Herald batches as taking a sequence only', () => {
    const log = new NamespaceLog('ns', BATCH);
    log.apply(marker(1, 'AAAAAAAA'));
    const junk: StoredMessage = { ...next(log, 2, ['ns.a']), data: new TextEncoder().encode('not a batch') };
    expect(log.apply(junk)).toEqual({ kind: 'ok', publications: [] });
    expect(log.applied).toBe(2);
    expect(log.position('ns.a').offset).toBe(0);
    expect(decodeBatch(new TextEncoder().encode('[["ns.a","e 1","1 1 1",99]]\nshort'))).toBeUndefined();
  });
});
