/**
 * Channel grammar. A channel is dot-separated segments of `[A-Za-z0-9_@~=+:-]`, at most 16 segments
 * and 255 bytes. A subtree pattern ends in `.**` and names the stream of every publication to the
 * channel before it and to every channel below it. `**` may only be the last segment, and never the
 * only one (a subtree never crosses namespaces).
 */

export const MAX_CHANNEL_BYTES = 255;
export const MAX_CHANNEL_SEGMENTS = 16;
export const SUBTREE_SUFFIX = '.**';

const SEGMENT = /^[A-Za-z0-9_@~=+:-]+$/;

export type ChannelCheck =
  { ok: true; channel: string; subtree: boolean; base: string; namespace: string } | { ok: false; reason: string };

/** Byte length of a string in UTF-8 (channels are ASCII when valid, but invalid input may not be). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Checks a channel name or subtree pattern. Returns the base channel (without `.**`) and namespace
 * (first segment) when valid, else a reason for the error message.
 */
export function checkChannel(name: unknown, opts: { allowSubtree?: boolean } = {}): ChannelCheck {
  // Every publish checks its channel: one expression decides for a valid name (valid names are
  // ASCII, so their length is their size in bytes); the segment walk below finds the reason.
  if (typeof name === 'string' && name.length <= MAX_CHANNEL_BYTES && GRAMMAR.test(name)) {
    const subtree = name.endsWith(SUBTREE_SUFFIX);
    if (!subtree || opts.allowSubtree !== false) {
      const dot = name.indexOf('.');
      return {
        ok: true,
        channel: name,
        subtree,
        base: subtree ? name.slice(0, -SUBTREE_SUFFIX.length) : name,
        namespace: dot === -1 ? name : name.slice(0, dot),
      };
    }
  }
  if (typeof name !== 'string') return { ok: false, reason: 'channel must be a string' };
  if (name.length === 0) return { ok: false, reason: 'channel must not be empty' };
  if (utf8Length(name) > MAX_CHANNEL_BYTES) {
    return { ok: false, reason: `channel is longer than ${MAX_CHANNEL_BYTES} bytes` };
  }
  const segments = name.split('.');
  if (segments.length > MAX_CHANNEL_SEGMENTS) {
    return { ok: false, reason: `channel has more than ${MAX_CHANNEL_SEGMENTS} segments` };
  }
  let subtree = false;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string;
    if (seg === '**') {
      if (i !== segments.length - 1) return { ok: false, reason: '`**` may only be the last segment' };
      if (i === 0) return { ok: false, reason: '`**` needs a channel before it (for example `news.**`)' };
      if (opts.allowSubtree === false) {
        return { ok: false, reason: 'a subtree pattern is not allowed here' };
      }
      subtree = true;
      continue;
    }
    if (seg.length === 0) return { ok: false, reason: 'channel has an empty segment' };
    if (!SEGMENT.test(seg)) {
      return { ok: false, reason: `segment "${seg.slice(0, 32)}" has a character outside [A-Za-z0-9_@~=+:-]` };
    }
  }
  const base = subtree ? name.slice(0, -SUBTREE_SUFFIX.length) : name;
  return { ok: true, channel: name, subtree, base, namespace: segments[0] as string };
}

/** The whole grammar as one expression (what `checkChannel` accepts; a property test checks). */
const GRAMMAR = /^[\w@~=+:-]+(?:(?:\.[\w@~=+:-]+){0,15}|(?:\.[\w@~=+:-]+){0,14}\.\*\*)$/;

/**
 * Whether `name` is a valid channel or subtree pattern: `checkChannel(name).ok`, without the
 * reason (a few bytes for a browser bundle).
 */
export function isStreamName(name: string): boolean {
  return name.length <= MAX_CHANNEL_BYTES && GRAMMAR.test(name);
}

export function isValidChannel(name: unknown): name is string {
  return checkChannel(name, { allowSubtree: false }).ok;
}

export function isValidStream(name: unknown): name is string {
  return checkChannel(name).ok;
}

export function isSubtree(stream: string): boolean {
  return stream.endsWith(SUBTREE_SUFFIX);
}

/** The namespace of a channel or pattern: its first segment. */
export function namespaceOf(channel: string): string {
  const dot = channel.indexOf('.');
  return dot === -1 ? channel : channel.slice(0, dot);
}

/**
 * Every stream a publication to `channel` appears in, the exact stream first, then the subtree
 * streams from the deepest to the namespace: `a.b.c` → `a.b.c`, `a.b.c.**`, `a.b.**`, `a.**`.
 * `channel` must be a valid exact channel.
 */
export function streamsOf(channel: string): string[] {
  const out = [channel];
  let base = channel;
  for (;;) {
    out.push(base + SUBTREE_SUFFIX);
    const dot = base.lastIndexOf('.');
    if (dot === -1) break;
    base = base.slice(0, dot);
  }
  return out;
}

/** Whether a publication to `channel` belongs to `stream` (an exact channel or a subtree pattern). */
export function streamMatches(stream: string, channel: string): boolean {
  if (!isSubtree(stream)) return stream === channel;
  const base = stream.slice(0, -SUBTREE_SUFFIX.length);
  return channel === base || channel.startsWith(base + '.');
}
