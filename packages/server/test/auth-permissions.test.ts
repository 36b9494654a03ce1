import fc from 'fast-check';
import { HeraldError, checkChannel, streamMatches } from '@herald/protocol';
import { describe, expect, it } from 'vitest';
import { ChannelAccess, type ClientAuth, type NamespaceAccess } from '../src/auth/access.js';
import { ChannelPermissions, PERMISSION_ACTIONS } from '../src/auth/permissions.js';
import { TokenVerifier } from '../src/auth/token-verifier.js';
import { FakeClock } from './support/fake-clock.js';
import { NOW, NOW_S, SECRET, rejectsWith, sign } from './support/tokens.js';

const grants = (subscribe: string[], userId = '42'): ChannelPermissions =>
  ChannelPermissions.fromClaim({ subscribe }, userId);

describe('grant matching', () => {
  it('exact grants allow exactly that channel, by whole segments and exact case', () => {
    const p = grants(['chat.room1']);
    expect(p.canSubscribe('chat.room1')).toBe(true);
    for (const s of ['chat.room10', 'chat.room1.x', 'chat.room', 'chat', 'Chat.room1', 'chat.ROOM1', 'chat.room1 ']) {
      expect(p.canSubscribe(s), s).toBe(false);
    }
  });

  it('a subtree grant allows its base and everything below it, never a sibling with the same prefix', () => {
    const p = grants(['chat.room1.**']);
    for (const s of ['chat.room1', 'chat.room1.a', 'chat.room1.a.b', 'chat.room1.**', 'chat.room1.a.**']) {
      expect(p.canSubscribe(s), s).toBe(true);
    }
    for (const s of ['chat.room10', 'chat.room10.**', 'chat.room1x', 'chat.room', 'chat.**', 'chat', 'chat.room2.a']) {
      expect(p.canSubscribe(s), s).toBe(false);
    }
  });

  it('a subtree stream needs a subtree grant covering all of it: exact grants never do', () => {
    const p = grants(['chat.public', 'chat', 'news.sports.**']);
    expect(p.canSubscribe('chat.public')).toBe(true);
    expect(p.canSubscribe('chat')).toBe(true);
    expect(p.canSubscribe('chat.**')).toBe(false);
    expect(p.canSubscribe('chat.public.**')).toBe(false);
    expect(p.canSubscribe('news.**')).toBe(false);
    expect(p.canSubscribe('news.sports.**')).toBe(true);
    expect(p.canSubscribe('news.sports.football.**')).toBe(true);
  });

  it('invalid requests are never allowed: wildcards, look-alikes, empty segments, non-strings', () => {
    const p = grants(['chat.**']);
    const tricks: unknown[] = [
      'chat.*',
      'chat.***',
      'chat.**.x',
      '**',
      'chat..x',
      'chat.',
      '.chat',
      'chаt.room1', // Cyrillic а
      'chat.room1\u200b',
      'chat.ｒoom1', // fullwidth r
      'chat.room1\n',
      'chat/room1',
      '',
      undefined,
      null,
      42,
      ['chat.room1'],
    ];
    for (const t of tricks) expect(p.canSubscribe(t), JSON.stringify(t)).toBe(false);
  });

  it('publish takes exact channels only; each action has its own list', () => {
    const p = ChannelPermissions.fromClaim(
      { subscribe: ['chat.**'], publish: ['chat.room1'], history: ['chat.room1'], presence: ['chat.**'] },
      '42',
    );
    expect(p.canPublish('chat.room1')).toBe(true);
    expect(p.canPublish('chat.room2')).toBe(false);
    expect(p.canPublish('chat.room1.**')).toBe(false);
    expect(p.canReadHistory('chat.room1')).toBe(true);
    expect(p.canReadHistory('chat.room2')).toBe(false);
    expect(p.canSeePresence('chat.room2')).toBe(true);
    const publishAll = ChannelPermissions.fromClaim({ publish: ['chat.**'] }, '42');
    expect(publishAll.canPublish('chat.**')).toBe(false);
    expect(publishAll.canPublish('chat.x')).toBe(true);
    expect(publishAll.canSubscribe('chat.x')).toBe(false);
  });

  it('$sub is the user id, inside or across segments', () => {
    const p = ChannelPermissions.fromClaim({ subscribe: ['user.$sub.**', 'dm.$sub-inbox'] }, 'u_7');
    expect(p.canSubscribe('user.u_7.notifications')).toBe(true);
    expect(p.canSubscribe('dm.u_7-inbox')).toBe(true);
    expect(p.canSubscribe('user.u_8.notifications')).toBe(false);
    expect(p.canSubscribe('user.$sub.notifications')).toBe(false);
    expect(() => ChannelPermissions.fromClaim({ subscribe: ['user.$sub'] }, 'a.b')).toThrow(HeraldError);
    expect(() => ChannelPermissions.fromClaim({ subscribe: ['user.$sub'] }, '')).toThrow(HeraldError);
  });

  it('of() takes grants that are already resolved, and checks them', () => {
    const p = ChannelPermissions.of({ subscribe: ['game.7.**'], publish: ['game.7.moves'] });
    expect(p.canSubscribe('game.7.chat')).toBe(true);
    expect(p.canPublish('game.7.moves')).toBe(true);
    expect(p.canPublish('game.7.chat')).toBe(false);
    expect(() => ChannelPermissions.of({ subscribe: ['game.$sub'] })).toThrow(HeraldError);
    expect(() => ChannelPermissions.of({ history: ['game.*'] })).toThrow(HeraldError);
  });

  it('none grants nothing', () => {
    for (const action of PERMISSION_ACTIONS) expect(ChannelPermissions.none.can(action, 'chat.room1')).toBe(false);
    expect(ChannelPermissions.none.empty).toBe(true);
  });
});

// ---- properties: the matcher against a set-based definition ------------------------------------

const SEGMENTS = ['a', 'b', 'ab'];
const segment = fc.constantFrom(...SEGMENTS);
const channel = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('.'));
const pattern = fc.oneof(
  channel,
  channel.map((c) => `${c}.**`),
);

/** Every channel of depth ≤ 5 over the alphabet: deeper than any pattern generated, so a subtree always reaches past it. */
const UNIVERSE: string[] = (() => {
  const out: string[] = [];
  let level = [''];
  for (let depth = 1; depth <= 5; depth++) {
    level = level.flatMap((prefix) => SEGMENTS.map((s) => (prefix === '' ? s : `${prefix}.${s}`)));
    out.push(...level);
  }
  return out;
})();

const reads = (stream: string): Set<string> => new Set(UNIVERSE.filter((c) => streamMatches(stream, c)));
const subset = (x: Set<string>, y: Set<string>): boolean => [...x].every((c) => y.has(c));

describe('grant matching, properties', () => {
  it('a stream is allowed iff one grant alone covers every channel the stream reads', () => {
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 5 }), pattern, (list, stream) => {
        const allowed = grants(list).canSubscribe(stream);
        const oracle = list.some((g) => subset(reads(stream), reads(g)));
        expect(allowed).toBe(oracle);
      }),
      { numRuns: 2000 },
    );
  });

  it('soundness: an allowed subtree never reads a channel the grants do not allow on its own', () => {
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 5 }), pattern, (list, stream) => {
        const p = grants(list);
        if (!p.canSubscribe(stream)) return;
        for (const c of reads(stream)) expect(p.canSubscribe(c), `${stream} allowed but ${c} not`).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('string-prefix tricks: a grant never allows a channel whose segment merely starts with the granted one', () => {
    fc.assert(
      fc.property(channel, fc.constantFrom('0', 'x', '_', '-'), fc.boolean(), (base, extra, subtree) => {
        const p = grants([subtree ? `${base}.**` : base]);
        expect(p.canSubscribe(base + extra)).toBe(false);
        expect(p.canSubscribe(`${base + extra}.**`)).toBe(false);
      }),
    );
  });

  it('$sub never opens another user’s channels', () => {
    const userId = fc.stringMatching(/^[A-Za-z0-9_@~=+:-]{1,12}$/);
    fc.assert(
      fc.property(userId, userId, fc.boolean(), (me, other, subtree) => {
        fc.pre(me !== other);
        const p = ChannelPermissions.fromClaim({ subscribe: [subtree ? 'user.$sub.**' : 'user.$sub'] }, me);
        expect(p.canSubscribe(`user.${me}`)).toBe(true);
        expect(p.canSubscribe(`user.${other}`)).toBe(false);
        expect(p.canSubscribe(`user.${other}.x`)).toBe(false);
        expect(p.canSubscribe('user.**')).toBe(false);
      }),
    );
  });

  it('any string is either refused or a valid stream', () => {
    const someGrants = grants(['a.**', 'b', 'ab.**']);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        if (someGrants.canSubscribe(s)) expect(checkChannel(s).ok).toBe(true);
      }),
    );
  });
});

// ---- the decision table -------------------------------------------------------------------------

describe('ChannelAccess', () => {
  const base: NamespaceAccess = {
    anonymousSubscribe: true,
    clientPublish: false,
    clientHistory: true,
    requireSubscriptionToken: false,
  };
  const namespaces: Record<string, NamespaceAccess> = {
    public: base,
    chat: { ...base, anonymousSubscribe: false },
    open: { ...base, anonymousSubscribe: false, clientPublish: true },
    secret: { ...base, anonymousSubscribe: false, requireSubscriptionToken: true, clientPublish: true },
    nohist: { ...base, clientHistory: false },
  };
  const verifier = new TokenVerifier({ hmacSecret: SECRET, clock: new FakeClock(NOW) });
  const access = new ChannelAccess({ verifier, policy: (ns) => namespaces[ns] ?? base });
  const anon: ClientAuth = { userId: '', permissions: ChannelPermissions.none };
  const user: ClientAuth = {
    userId: '42',
    permissions: ChannelPermissions.fromClaim(
      { subscribe: ['chat.public', 'secret.granted'], publish: ['chat.public'], history: ['secret.granted'] },
      '42',
    ),
  };

  it('subscribe: namespace policy, grants, and the anonymous/user distinction in the error', async () => {
    expect(await access.subscribe(anon, 'public.x')).toEqual({ via: 'namespace' });
    expect(await access.subscribe(user, 'chat.public')).toEqual({ via: 'grant' });
    await rejectsWith(access.subscribe(anon, 'chat.public'), 'HERALD_ERR_AUTH_TOKEN_REQUIRED');
    await rejectsWith(access.subscribe(user, 'chat.private'), 'HERALD_ERR_PERMISSION_DENIED');
    // The subtree over the one granted channel is refused.
    await rejectsWith(access.subscribe(user, 'chat.**'), 'HERALD_ERR_PERMISSION_DENIED');
  });

  it('subscribe in a requireSubscriptionToken namespace: only with a token for that channel and user', async () => {
    await rejectsWith(access.subscribe(user, 'secret.granted'), 'HERALD_ERR_AUTH_SUBSCRIPTION_TOKEN_REQUIRED');
    const token = await sign({ sub: '42', channel: 'secret.room', exp: NOW_S + 60 }, SECRET);
    expect(await access.subscribe(user, 'secret.room', token)).toEqual({
      via: 'subscription-token',
      expiresAt: (NOW_S + 60) * 1000,
      info: undefined,
    });
    await rejectsWith(access.subscribe(user, 'secret.other', token), 'HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH');
    await rejectsWith(access.subscribe(anon, 'secret.room', token), 'HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH');
    // A bad token is refused even where none is needed: never silently ignored.
    await rejectsWith(access.subscribe(anon, 'public.x', `${token}x`), 'HERALD_ERR_AUTH_TOKEN_INVALID');
  });

  it('publish: a grant, or clientPublish (subscribers only where subscription tokens are required)', () => {
    expect(() => access.publish(user, 'chat.public', false)).not.toThrow();
    expect(() => access.publish(user, 'chat.other', true)).toThrow(/clientPublish/);
    expect(() => access.publish(anon, 'public.x', true)).toThrow(HeraldError);
    expect(() => access.publish(anon, 'open.x', false)).not.toThrow();
    expect(() => access.publish(user, 'secret.room', false)).toThrow(/subscribe/);
    expect(() => access.publish(user, 'secret.room', true)).not.toThrow();
  });

  it('history: a grant, or clientHistory for those who may or do subscribe', () => {
    expect(() => access.history(anon, 'public.x', false)).not.toThrow();
    expect(() => access.history(user, 'chat.public', false)).not.toThrow();
    expect(() => access.history(user, 'chat.private', false)).toThrow(HeraldError);
    expect(() => access.history(anon, 'chat.public', false)).toThrow(HeraldError);
    expect(() => access.history(user, 'secret.room', false)).toThrow(HeraldError);
    expect(() => access.history(user, 'secret.room', true)).not.toThrow();
    expect(() => access.history(user, 'secret.granted', false)).not.toThrow();
    expect(() => access.history(anon, 'nohist.x', true)).toThrow(/clientHistory/);
  });

  it('presence: a grant, a subscription to that very stream, or what may subscribe without a subscription token', () => {
    expect(() => access.presence(user, 'chat.public', false)).not.toThrow();
    expect(() => access.presence(user, 'chat.private', false)).toThrow(HeraldError);
    expect(() => access.presence(user, 'chat.private', true)).not.toThrow();
    expect(() => access.presence(anon, 'public.x', false)).not.toThrow();
    expect(() => access.presence(anon, 'chat.public', false)).toThrow(HeraldError);
    expect(() => access.presence(user, 'secret.granted', false)).toThrow(HeraldError);
    expect(() => access.presence(user, 'secret.room', true)).not.toThrow();
    const watcher: ClientAuth = {
      userId: '7',
      permissions: ChannelPermissions.fromClaim({ presence: ['chat.**'] }, '7'),
    };
    expect(() => access.presence(watcher, 'chat.any', false)).not.toThrow();
  });
});
