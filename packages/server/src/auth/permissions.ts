/**
 * Channel permissions granted by a connection token: the patterns a user may subscribe to, publish
 * to, read the history of and see the presence of.
 *
 * A grant is an exact channel (`chat.room1`) or a subtree pattern (`chat.**`). `$sub` anywhere in a
 * grant is replaced by the user id first (`user.$sub.**` → `user.42.**`). Matching is by whole
 * segments and exact bytes (channels are ASCII, case-sensitive):
 *
 * - an exact channel `c` is allowed by the grant `c`, or by a subtree grant `b.**` where `c` is `b`
 *   or lies below it (`chat.**` allows `chat`, `chat.room1`, `chat.room1.x`; `chat.room1.**` does not
 *   allow `chat.room10`);
 * - a subtree stream `b.**` is allowed only by a subtree grant that covers the whole subtree: `b.**`
 *   itself or one above it (`chat.**` allows `chat.room1.**`). Exact grants never allow a subtree,
 *   however many of them there are: the subtree also reads channels that do not exist yet.
 *
 * There is no grant for "every channel": a subtree never crosses namespaces, so a token lists each
 * namespace it opens (`chat.**`, `news.**`).
 */
import { HeraldError, SUBTREE_SUFFIX, checkChannel } from '@herald/protocol';

/** The actions a token grants per channel, as named in the `channels` claim. */
export const PERMISSION_ACTIONS = ['subscribe', 'publish', 'history', 'presence'] as const;
export type PermissionAction = (typeof PERMISSION_ACTIONS)[number];

/** The `channels` claim as written in a token (before `$sub` is replaced). */
export type ChannelsClaim = Partial<Record<PermissionAction, string[]>>;

/** Placeholder replaced by the user id in grants. */
export const SUB_PLACEHOLDER = '$sub';

/** Characters a user id must be made of to be put into a channel segment (the segment grammar). */
const SEGMENT_SAFE = /^[A-Za-z0-9_@~=+:-]+$/;

/** Most grants per action in one token; a token is bounded by auth.maxTokenLength anyway. */
export const MAX_GRANTS_PER_ACTION = 256;

/** The grants of one action, compiled for lookups by segment. */
class GrantSet {
  private readonly exact = new Set<string>();
  /** Bases of subtree grants: `chat` for `chat.**`. */
  private readonly subtrees = new Set<string>();
  readonly patterns: readonly string[];

  constructor(patterns: readonly string[]) {
    this.patterns = patterns;
    for (const p of patterns) {
      if (p.endsWith(SUBTREE_SUFFIX)) this.subtrees.add(p.slice(0, -SUBTREE_SUFFIX.length));
      else this.exact.add(p);
    }
  }

  /** `stream` must already be valid (checked by `allows`). */
  private coveredBySubtree(base: string): boolean {
    if (this.subtrees.size === 0) return false;
    let b = base;
    for (;;) {
      if (this.subtrees.has(b)) return true;
      const dot = b.lastIndexOf('.');
      if (dot === -1) return false;
      b = b.slice(0, dot);
    }
  }

  allows(stream: unknown): boolean {
    const check = checkChannel(stream);
    if (!check.ok) return false;
    if (check.subtree) return this.coveredBySubtree(check.base);
    return this.exact.has(check.channel) || this.coveredBySubtree(check.channel);
  }
}

/**
 * What one user may do per channel, from the `channels` claim of a connection token. Immutable.
 * `ChannelPermissions.none` grants nothing (anonymous clients, tokens without a `channels` claim):
 * such a client may still do what the namespace allows everyone (`anonymousSubscribe`, ...).
 */
export class ChannelPermissions {
  static readonly none = new ChannelPermissions({});

  private readonly sets: Readonly<Record<PermissionAction, GrantSet>>;

  private constructor(grants: Partial<Record<PermissionAction, readonly string[]>>) {
    this.sets = {
      subscribe: new GrantSet(grants.subscribe ?? []),
      publish: new GrantSet(grants.publish ?? []),
      history: new GrantSet(grants.history ?? []),
      presence: new GrantSet(grants.presence ?? []),
    };
  }

  /**
   * Builds permissions from grants that are already resolved (no `$sub`) and valid. Throws a
   * `HeraldError` (`HERALD_ERR_AUTH_TOKEN_CLAIMS`) for an invalid pattern.
   */
  static of(grants: Partial<Record<PermissionAction, readonly string[]>>): ChannelPermissions {
    const checked: Partial<Record<PermissionAction, string[]>> = {};
    for (const action of PERMISSION_ACTIONS) {
      const list = grants[action];
      if (list !== undefined) checked[action] = list.map((p, i) => checkGrant(p, `channels.${action}[${i}]`));
    }
    return new ChannelPermissions(checked);
  }

  /**
   * Reads the `channels` claim of a verified token for `userId` (replacing `$sub`). `undefined`
   * grants nothing. Anything else that is not `{subscribe?, publish?, history?, presence?}` with
   * lists of valid patterns is refused with `HERALD_ERR_AUTH_TOKEN_CLAIMS`, so that a typo in the
   * application's token code shows up at once instead of as a silently missing permission.
   */
  static fromClaim(claim: unknown, userId: string): ChannelPermissions {
    if (claim === undefined) return ChannelPermissions.none;
    if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) {
      throw claims(
        `claim "channels" must be an object like {"subscribe": ["chat.**"], "publish": [...]}, got ${describe(claim)}`,
      );
    }
    const grants: Partial<Record<PermissionAction, string[]>> = {};
    for (const [key, value] of Object.entries(claim)) {
      const action = PERMISSION_ACTIONS.find((a) => a === key);
      if (action === undefined) {
        throw claims(
          `claim "channels" has an unknown key ${JSON.stringify(key.slice(0, 40))}; the keys are ${PERMISSION_ACTIONS.join(', ')}`,
        );
      }
      if (!Array.isArray(value)) throw claims(`claim "channels.${action}" must be a list of channel patterns`);
      if (value.length > MAX_GRANTS_PER_ACTION) {
        throw claims(`claim "channels.${action}" has more than ${MAX_GRANTS_PER_ACTION} patterns`);
      }
      grants[action] = value.map((p: unknown, i) => {
        const where = `channels.${action}[${i}]`;
        if (typeof p !== 'string') throw claims(`claim "${where}" must be a string, got ${describe(p)}`);
        return checkGrant(substituteSub(p, userId, where), where);
      });
    }
    return new ChannelPermissions(grants);
  }

  canSubscribe(stream: unknown): boolean {
    return this.sets.subscribe.allows(stream);
  }

  /** Publishing takes an exact channel; a subtree pattern is never allowed. */
  canPublish(channel: unknown): boolean {
    return typeof channel === 'string' && !channel.endsWith(SUBTREE_SUFFIX) && this.sets.publish.allows(channel);
  }

  canReadHistory(stream: unknown): boolean {
    return this.sets.history.allows(stream);
  }

  canSeePresence(stream: unknown): boolean {
    return this.sets.presence.allows(stream);
  }

  can(action: PermissionAction, stream: unknown): boolean {
    switch (action) {
      case 'subscribe':
        return this.canSubscribe(stream);
      case 'publish':
        return this.canPublish(stream);
      case 'history':
        return this.canReadHistory(stream);
      case 'presence':
        return this.canSeePresence(stream);
      default: {
        const never: never = action;
        return never;
      }
    }
  }

  /** Whether no action is granted on any channel. */
  get empty(): boolean {
    return PERMISSION_ACTIONS.every((a) => this.sets[a].patterns.length === 0);
  }

  /** The resolved grants (with `$sub` replaced), for logs and the `info` of a connection. */
  toJSON(): Record<PermissionAction, string[]> {
    return {
      subscribe: [...this.sets.subscribe.patterns],
      publish: [...this.sets.publish.patterns],
      history: [...this.sets.history.patterns],
      presence: [...this.sets.presence.patterns],
    };
  }
}

function claims(message: string): HeraldError {
  return new HeraldError('HERALD_ERR_AUTH_TOKEN_CLAIMS', message);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value;
}

/**
 * Replaces every `$sub` in `pattern` by `userId`. The user id must be made of channel-segment
 * characters: a user id such as `a.b` or `x.**` would otherwise add segments or a wildcard to the
 * grant.
 */
export function substituteSub(pattern: string, userId: string, where = 'pattern'): string {
  if (!pattern.includes(SUB_PLACEHOLDER)) return pattern;
  if (!SEGMENT_SAFE.test(userId)) {
    throw claims(
      `claim "${where}" uses ${SUB_PLACEHOLDER}, but the user id (sub) has characters that cannot be part of a channel segment (allowed: A-Z a-z 0-9 _ @ ~ = + : -)`,
    );
  }
  return pattern.split(SUB_PLACEHOLDER).join(userId);
}

/** A grant must be a valid channel or subtree pattern (after `$sub` replacement). */
function checkGrant(pattern: string, where: string): string {
  const check = checkChannel(pattern);
  if (!check.ok) throw claims(`claim "${where}" is not a valid channel pattern: ${check.reason}`);
  return check.channel;
}
