import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COMMAND_NAMES,
  MAX_BACKLOG,
  MAX_HISTORY_LIMIT,
  PROTOCOL_VERSION,
  decodeCommand,
  isErrorCode,
  splitFrames,
  type Command,
  type DecodeResult,
  type ErrorCode,
} from '@herald/protocol';

const since = { epoch: 'k3x', offset: 12 };

function ok(value: unknown): Command {
  const r = decodeCommand(value);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(value)} to decode, got ${r.code}: ${r.message}`);
  return r.command;
}

function fails(value: unknown, code: ErrorCode, id: number | undefined, mentions?: string): void {
  const r = decodeCommand(value);
  expect(r, JSON.stringify(value)).toMatchObject({ ok: false, code, id });
  if (!r.ok) {
    expect(r.message.length).toBeGreaterThan(0);
    if (mentions !== undefined) expect(r.message).toContain(mentions);
  }
}

describe('decodeCommand: valid commands', () => {
  it('ping', () => {
    expect(ok({ id: 1, cmd: 'ping' })).toStrictEqual({ id: 1, cmd: 'ping' });
  });

  it('subscribe, with and without backlog and since', () => {
    expect(ok({ id: 1, cmd: 'subscribe', channel: 'news' })).toStrictEqual({
      id: 1,
      cmd: 'subscribe',
      channel: 'news',
    });
    expect(ok({ id: 2, cmd: 'subscribe', channel: 'radio.**', backlog: 10, since })).toStrictEqual({
      id: 2,
      cmd: 'subscribe',
      channel: 'radio.**',
      backlog: 10,
      since,
    });
    expect(ok({ id: 3, cmd: 'subscribe', channel: 'a', backlog: 0 })).toMatchObject({ backlog: 0 });
    expect(ok({ id: 4, cmd: 'subscribe', channel: 'a', backlog: MAX_BACKLOG })).toMatchObject({ backlog: MAX_BACKLOG });
    expect(ok({ id: 5, cmd: 'subscribe', channel: 'a', since: { epoch: 'e', offset: 0 } })).toMatchObject({
      since: { epoch: 'e', offset: 0 },
    });
  });

  it('unsubscribe, of an exact channel or a pattern', () => {
    expect(ok({ id: 1, cmd: 'unsubscribe', channel: 'chat.room1' })).toStrictEqual({
      id: 1,
      cmd: 'unsubscribe',
      channel: 'chat.room1',
    });
    expect(ok({ id: 2, cmd: 'unsubscribe', channel: 'chat.**' })).toMatchObject({ channel: 'chat.**' });
  });

  it('publish, with any JSON data (including null, false, 0 and "") and an optional idempotency key', () => {
    for (const data of [null, false, 0, '', 'x', [1, 2], { a: { b: [null] } }]) {
      expect(ok({ id: 1, cmd: 'publish', channel: 'chat.room1', data })).toStrictEqual({
        id: 1,
        cmd: 'publish',
        channel: 'chat.room1',
        data,
      });
    }
    expect(ok({ id: 2, cmd: 'publish', channel: 'a', data: 1, idempotencyKey: 'k' })).toStrictEqual({
      id: 2,
      cmd: 'publish',
      channel: 'a',
      data: 1,
      idempotencyKey: 'k',
    });
    expect(ok({ id: 3, cmd: 'publish', channel: 'a', data: 1, idempotencyKey: 'k'.repeat(128) })).toMatchObject({
      idempotencyKey: 'k'.repeat(128),
    });
  });

  it('history, with and without limit, since and reverse', () => {
    expect(ok({ id: 1, cmd: 'history', channel: 'a.b' })).toStrictEqual({ id: 1, cmd: 'history', channel: 'a.b' });
    expect(ok({ id: 2, cmd: 'history', channel: 'a.**', limit: 5, since, reverse: true })).toStrictEqual({
      id: 2,
      cmd: 'history',
      channel: 'a.**',
      limit: 5,
      since,
      reverse: true,
    });
    expect(ok({ id: 3, cmd: 'history', channel: 'a', limit: 0, reverse: false })).toMatchObject({
      limit: 0,
      reverse: false,
    });
    expect(ok({ id: 4, cmd: 'history', channel: 'a', limit: MAX_HISTORY_LIMIT })).toMatchObject({
      limit: MAX_HISTORY_LIMIT,
    });
  });

  it('accepts the largest safe id and objects without a prototype', () => {
    expect(ok({ id: Number.MAX_SAFE_INTEGER, cmd: 'ping' })).toMatchObject({ id: Number.MAX_SAFE_INTEGER });
    const bare = Object.assign(Object.create(null) as object, { id: 9, cmd: 'ping' });
    expect(ok(bare)).toStrictEqual({ id: 9, cmd: 'ping' });
  });

  it('decodes what JSON.parse gives for every command name', () => {
    expect([...COMMAND_NAMES].sort()).toEqual([
      'history',
      'ping',
      'presence',
      'presenceStats',
      'publish',
      'refresh',
      'rpc',
      'subscribe',
      'unsubscribe',
    ]);
    const frames = [
      '{"id":1,"cmd":"subscribe","channel":"a.**","since":{"epoch":"e","offset":3}}',
      '{"id":2,"cmd":"unsubscribe","channel":"a.**"}',
      '{"id":3,"cmd":"publish","channel":"a.b","data":{"text":"hi"}}',
      '{"id":4,"cmd":"history","channel":"a.b","limit":10,"reverse":true}',
      '{"id":8,"cmd":"presence","channel":"a.b"}',
      '{"id":9,"cmd":"presenceStats","channel":"a.b"}',
      '{"id":5,"cmd":"ping"}',
      '{"id":6,"cmd":"refresh","token":"a.b.c"}',
      '{"id":7,"cmd":"rpc","method":"move","data":{"x":1}}',
    ];
    expect(frames.map((f) => ok(JSON.parse(f)).cmd)).toEqual([...COMMAND_NAMES]);
  });
});

describe('decodeCommand: errors', () => {
  it('rejects a frame that is not a JSON object, without an id', () => {
    for (const v of [null, undefined, 0, 1, 'x', '{"id":1,"cmd":"ping"}', true, [], [{ id: 1, cmd: 'ping' }]]) {
      fails(v, 'HERALD_ERR_PROTOCOL_MALFORMED', undefined);
    }
  });

  it('rejects a missing or bad id, without an id', () => {
    for (const id of [undefined, null, 0, -1, 1.5, '1', NaN, Infinity, Number.MAX_SAFE_INTEGER + 1, [1], { n: 1 }]) {
      fails({ id, cmd: 'ping' }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', undefined, '"id"');
    }
    fails({ cmd: 'ping' }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', undefined, '"id"');
  });

  it('rejects a missing or non-string cmd, with the id', () => {
    fails({ id: 7 }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"cmd"');
    for (const cmd of [null, 1, true, ['ping'], { name: 'ping' }]) {
      fails({ id: 7, cmd }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"cmd"');
    }
  });

  it('rejects an unknown command, including inherited property names', () => {
    for (const cmd of ['', 'PING', 'pub', 'connect', 'toString', 'constructor', '__proto__', 'hasOwnProperty']) {
      fails({ id: 7, cmd }, 'HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND', 7);
    }
    const r = decodeCommand({ id: 7, cmd: 'x'.repeat(10_000) });
    expect(r.ok === false && r.message.length < 100).toBe(true);
  });

  it('rejects unknown fields, naming them', () => {
    fails({ id: 7, cmd: 'ping', channel: 'a' }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"channel"');
    fails({ id: 7, cmd: 'subscribe', chanel: 'a' }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"chanel"');
    fails({ id: 7, cmd: 'unsubscribe', channel: 'a', since }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"since"');
    fails({ id: 7, cmd: 'publish', channel: 'a', data: 1, since }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"since"');
    fails({ id: 7, cmd: 'publish', channel: 'a', data: 1, backlog: 1 }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7);
    fails({ id: 7, cmd: 'subscribe', channel: 'a', limit: 1 }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"limit"');
    fails({ id: 7, cmd: 'history', channel: 'a', backlog: 1 }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"backlog"');
    // An unknown field is reported even when it holds undefined, and when it is `__proto__` from JSON.
    fails({ id: 7, cmd: 'ping', extra: undefined }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"extra"');
    fails(JSON.parse('{"id":7,"cmd":"ping","__proto__":{"x":1}}'), 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '__proto__');
  });

  it('rejects a missing or non-string channel as a bad field', () => {
    for (const cmd of ['subscribe', 'unsubscribe', 'publish', 'history']) {
      const extra = cmd === 'publish' ? { data: 1 } : {};
      fails({ id: 7, cmd, ...extra }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, 'string');
      for (const channel of [null, 1, ['a'], { name: 'a' }]) {
        fails({ id: 7, cmd, channel, ...extra }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, 'string');
      }
    }
  });

  it('rejects a string channel that breaks the grammar as an invalid channel', () => {
    for (const cmd of ['subscribe', 'unsubscribe', 'publish', 'history']) {
      const extra = cmd === 'publish' ? { data: 1 } : {};
      for (const channel of ['', 'a..b', 'a b', 'a/b', '**', 'a.**.b', 'a*', 'x'.repeat(256)]) {
        fails({ id: 7, cmd, channel, ...extra }, 'HERALD_ERR_CHANNEL_INVALID', 7);
      }
    }
  });

  it('rejects a pattern in publish, before looking at data', () => {
    fails({ id: 7, cmd: 'publish', channel: 'news.**', data: 1 }, 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED', 7);
    fails({ id: 7, cmd: 'publish', channel: 'news.**' }, 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED', 7);
  });

  it('rejects a bad since in subscribe and history', () => {
    const bad = [
      null,
      'k3x:12',
      12,
      [],
      {},
      { epoch: 'k3x' },
      { offset: 1 },
      { epoch: '', offset: 1 },
      { epoch: 'a:b', offset: 1 },
      { epoch: 'e', offset: -1 },
      { epoch: 'e', offset: 1.5 },
      { epoch: 'e', offset: '1' },
      { epoch: 'e', offset: Number.MAX_SAFE_INTEGER + 1 },
      // Unknown fields are rejected in a cursor as in a command (docs/protocol.md).
      { epoch: 'x', offset: 1, z: 1 },
      { epoch: 'x', offset: 1, ofset: 2 },
      JSON.parse('{"epoch":"x","offset":1,"__proto__":{"z":1}}') as unknown,
    ];
    for (const cmd of ['subscribe', 'history']) {
      for (const s of bad) fails({ id: 7, cmd, channel: 'a', since: s }, 'HERALD_ERR_CURSOR_INVALID', 7, '"since"');
    }
  });

  it('hands back a fresh cursor object, not the one it was given', () => {
    const given = { epoch: 'e', offset: 3 };
    for (const cmd of ['subscribe', 'history'] as const) {
      const c = ok({ id: 1, cmd, channel: 'a', since: given });
      expect(c.cmd === 'subscribe' || c.cmd === 'history' ? c.since : undefined).toStrictEqual(given);
      expect(c.cmd === 'subscribe' || c.cmd === 'history' ? c.since : undefined).not.toBe(given);
    }
  });

  it('rejects a bad backlog', () => {
    for (const backlog of [null, -1, 1.5, '5', MAX_BACKLOG + 1, NaN, Infinity, true]) {
      fails({ id: 7, cmd: 'subscribe', channel: 'a', backlog }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"backlog"');
    }
  });

  it('rejects a bad limit', () => {
    for (const limit of [null, -1, 1.5, '5', MAX_HISTORY_LIMIT + 1, NaN, Infinity, false]) {
      fails({ id: 7, cmd: 'history', channel: 'a', limit }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"limit"');
    }
  });

  it('rejects a bad reverse', () => {
    for (const reverse of [null, 0, 1, 'true', 'false', []]) {
      fails({ id: 7, cmd: 'history', channel: 'a', reverse }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"reverse"');
    }
  });

  it('rejects a bad idempotencyKey', () => {
    for (const idempotencyKey of [null, '', 'k'.repeat(129), 5, ['k'], { k: 1 }]) {
      fails(
        { id: 7, cmd: 'publish', channel: 'a', data: 1, idempotencyKey },
        'HERALD_ERR_PROTOCOL_BAD_FIELD',
        7,
        '"idempotencyKey"',
      );
    }
  });

  it('rejects a publish without data', () => {
    fails({ id: 7, cmd: 'publish', channel: 'a' }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"data"');
    fails({ id: 7, cmd: 'publish', channel: 'a', data: undefined }, 'HERALD_ERR_PROTOCOL_BAD_FIELD', 7, '"data"');
  });
});

describe('decodeCommand: properties', () => {
  function checkShape(r: DecodeResult): void {
    if (r.ok) {
      expect(COMMAND_NAMES).toContain(r.command.cmd);
      expect(Number.isSafeInteger(r.command.id) && r.command.id > 0).toBe(true);
      // A decoded command survives the wire: re-encoding and decoding it gives the same command
      // (compared as JSON, where -0 is 0).
      expect(decodeCommand(JSON.parse(JSON.stringify(r.command)))).toEqual(JSON.parse(JSON.stringify(r)));
    } else {
      expect(isErrorCode(r.code)).toBe(true);
      expect(typeof r.message).toBe('string');
      expect(r.message.length).toBeGreaterThan(0);
      expect(r.id === undefined || (Number.isSafeInteger(r.id) && r.id > 0)).toBe(true);
    }
  }

  it('never throws on arbitrary values', () => {
    fc.assert(fc.property(fc.anything(), (v) => checkShape(decodeCommand(v))));
  });

  it('never throws on arbitrary JSON values', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => checkShape(decodeCommand(v))));
  });

  it('never throws on command-shaped objects, and reaches both outcomes', () => {
    const mostly = <T>(valid: fc.Arbitrary<T>) =>
      fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: fc.jsonValue() });
    const fields = {
      id: mostly(fc.integer({ min: 1, max: 1000 })),
      cmd: fc.constantFrom(...COMMAND_NAMES),
      channel: mostly(fc.constantFrom('a', 'a.b', 'a.**', '', 'a..b', '**')),
      data: fc.jsonValue(),
      backlog: mostly(fc.integer({ min: -2, max: MAX_BACKLOG + 2 })),
      limit: mostly(fc.integer({ min: -2, max: MAX_HISTORY_LIMIT + 2 })),
      since: mostly(fc.record({ epoch: fc.constantFrom('e', '', 'a:b'), offset: fc.integer({ min: -1, max: 5 }) })),
      reverse: mostly(fc.boolean()),
      idempotencyKey: mostly(fc.string({ maxLength: 130 })),
      token: mostly(fc.string({ maxLength: 40 })),
      method: mostly(fc.constantFrom('move', 'a.b', '', 'bad method')),
      junk: fc.jsonValue(),
    };
    const allowed: Record<string, (keyof typeof fields)[]> = {
      subscribe: ['channel', 'backlog', 'since', 'token'],
      unsubscribe: ['channel'],
      publish: ['channel', 'data', 'idempotencyKey'],
      history: ['channel', 'limit', 'since', 'reverse'],
      presence: ['channel'],
      presenceStats: ['channel'],
      ping: [],
      refresh: ['token'],
      rpc: ['method', 'data'],
    };
    // Mostly the fields of the command named, with the required ones usually present; sometimes any field.
    const frame = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.constantFrom(...COMMAND_NAMES).chain((cmd) => {
          const own = allowed[cmd] ?? [];
          const picked = Object.fromEntries(own.map((k) => [k, fields[k]]));
          return fc
            .tuple(fc.record(picked, { requiredKeys: [] }), fields.id, fc.boolean())
            .map(([rest, id, complete]) => {
              const v: Record<string, unknown> = { id, cmd, ...rest };
              if (complete && own.includes('channel') && !('channel' in v)) v['channel'] = 'a';
              if (complete && own.includes('data') && !('data' in v)) v['data'] = 1;
              return v;
            });
        }),
      },
      { weight: 1, arbitrary: fc.record(fields, { requiredKeys: ['id', 'cmd'] }) },
    );
    const seen = new Set<string>();
    fc.assert(
      fc.property(frame, (v) => {
        const r = decodeCommand(v);
        checkShape(r);
        seen.add(r.ok ? `ok:${r.command.cmd}` : r.code);
      }),
      { numRuns: 3000 },
    );
    // Every command is accepted at least once, and every decoding error is produced.
    expect([...seen].sort()).toEqual(
      [
        ...COMMAND_NAMES.map((c) => `ok:${c}`),
        'HERALD_ERR_PROTOCOL_BAD_FIELD',
        'HERALD_ERR_CHANNEL_INVALID',
        'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED',
        'HERALD_ERR_CURSOR_INVALID',
      ].sort(),
    );
  });
});

describe('splitFrames', () => {
  it('splits on newlines and skips blank lines', () => {
    expect(splitFrames('')).toEqual([]);
    expect(splitFrames('  ')).toEqual([]);
    expect(splitFrames('\n\n')).toEqual([]);
    expect(splitFrames('{"id":1}')).toEqual(['{"id":1}']);
    expect(splitFrames('{"id":1}\n{"id":2}')).toEqual(['{"id":1}', '{"id":2}']);
    expect(splitFrames('\n{"id":1}\n\n  \n{"id":2}\n')).toEqual(['{"id":1}', '{"id":2}']);
  });

  it('gives back every frame of a batch', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 10 }), (values) => {
        const frames = values.map((v) => JSON.stringify(v));
        expect(splitFrames(frames.join('\n'))).toEqual(frames.filter((f) => f.trim() !== ''));
      }),
    );
  });
});

it('PROTOCOL_VERSION is 1', () => {
  expect(PROTOCOL_VERSION).toBe(1);
});
