/**
 * The chaos suite's judge. Every publication of a run is numbered per channel (`data.n` = 1, 2, 3, ...)
 * and published through the server API, one after the other per channel, with an idempotency key,
 * retried until acknowledged; the publisher records what was acknowledged and which numbers had an
 * attempt whose outcome it could not know (a timeout, a dropped connection, a 5xx). Each subscriber
 * records, per stream, what it was given (publications with their channel and number) and when it was
 * told that publications may be missing (`recovered: false`: the SDK's `unrecovered` event, a raw
 * client's `subscribed`/poll answer with `recovered: false`).
 *
 * Per stream of each subscriber, walking its events in order, per channel of the stream:
 * - a number seen before is a **duplicate** (unless it is a publication whose publish was retried
 *   after the store lost its data — the idempotency key was lost with it — and the subscriber was told
 *   of a hole in between: then it is counted apart as **re-applied**, see `StreamVerdict.reapplied`);
 * - a number below the highest seen is a **reordering** (it arrived late);
 * - acknowledged numbers skipped over (and never delivered later) are a **hole**: a *reported* one
 *   if the stream was told `recovered: false` since that channel's previous publication, else a
 *   **silent hole** (counted in publications);
 * - at the end, every channel of the stream must have delivered its **sentinel**: the last
 *   publication of the run, made after the faults stopped; a stream that did not is **dead**. (The
 *   runner publishes sentinels in rounds until every stream has the last one, so a stream told
 *   `recovered: false` just after a sentinel still gets a later one.)
 * Subscribers subscribe before the first publication, so every channel starts at 0. Offsets and
 * epochs are kept for the messages only: the verdict rests on the publisher's own numbers, which no
 * server bug can rewrite.
 */

/** What the publisher knows of one run. */
export interface PublishLog {
  /** Per channel: numbers acknowledged (200 from the server API). */
  readonly acked: ReadonlyMap<string, ReadonlySet<number>>;
  /** Per channel: numbers with an attempt whose outcome is unknown (retried with the same key). */
  readonly ambiguous: ReadonlyMap<string, ReadonlySet<number>>;
  /** Per channel: the number of the final sentinel publication. */
  readonly sentinel: ReadonlyMap<string, number>;
}

export type StreamEvent =
  | { kind: 'pub'; channel: string; n: number; epoch: string; offset: number; at: number }
  | { kind: 'hole'; at: number; detail: string };

/** What one subscriber saw on one stream. */
export interface StreamLog {
  readonly subscriber: string;
  /** `websocket`, `http-stream`, `sse`, `long-poll` (SDK) or `raw-sse`, `raw-poll` (no SDK). */
  readonly transport: string;
  readonly stream: string;
  readonly events: readonly StreamEvent[];
}

export interface StreamVerdict {
  delivered: number;
  /** `recovered: false` reports. */
  holesReported: number;
  /** Acknowledged publications skipped over after a report (the reported holes' size). */
  missedReported: number;
  /** Acknowledged publications skipped over with no report. */
  silentHoles: number;
  duplicates: number;
  /**
   * Publications delivered twice across a reported hole, whose publish had an attempt of unknown
   * outcome: the store lost its data (and with it the idempotency key) after applying the first
   * attempt, and the retry applied it again. Herald's at-most-once window cannot outlive the store's
   * data; counted apart, not as duplicates.
   */
  reapplied: number;
  reorderings: number;
  dead: boolean;
  /** Human-readable findings (the first few per kind), for failure messages. */
  problems: string[];
}

/** The channels a stream covers among `channels`: the channel itself, or every one under a subtree. */
export function channelsOf(stream: string, channels: readonly string[]): string[] {
  if (!stream.endsWith('.**')) return channels.filter((c) => c === stream);
  const root = stream.slice(0, -3);
  return channels.filter((c) => c === root || c.startsWith(`${root}.`));
}

const MAX_PROBLEMS = 5;

function describeRange(nums: number[]): string {
  if (nums.length === 0) return '';
  const first = nums[0] as number;
  const last = nums[nums.length - 1] as number;
  return nums.length === 1 ? `${first}` : `${first}..${last} (${nums.length})`;
}

export function checkStream(log: StreamLog, published: PublishLog, channels: readonly string[]): StreamVerdict {
  const covered = channelsOf(log.stream, channels);
  const v: StreamVerdict = {
    delivered: 0,
    holesReported: 0,
    missedReported: 0,
    silentHoles: 0,
    duplicates: 0,
    reapplied: 0,
    reorderings: 0,
    dead: false,
    problems: [],
  };
  const problem = (text: string): void => {
    if (v.problems.length < MAX_PROBLEMS) v.problems.push(`${log.subscriber} ${log.stream}: ${text}`);
  };
  const last = new Map<string, number>(covered.map((c) => [c, 0]));
  /** Per channel: numbers delivered, with the count of hole reports seen when each was. */
  const seen = new Map<string, Map<number, number>>(covered.map((c) => [c, new Map()]));
  const reported = new Map<string, boolean>(covered.map((c) => [c, false]));
  /** Per channel: acknowledged numbers skipped over, and whether a report covered them (a late arrival is a reordering instead). */
  const skipped = new Map<string, Map<number, { reported: boolean; before: StreamEvent }>>(
    covered.map((c) => [c, new Map()]),
  );
  for (const e of log.events) {
    if (e.kind === 'hole') {
      v.holesReported += 1;
      for (const c of covered) reported.set(c, true);
      continue;
    }
    v.delivered += 1;
    const mine = seen.get(e.channel);
    const prev = last.get(e.channel);
    if (mine === undefined || prev === undefined) {
      problem(`publication of channel ${e.channel}, which the stream does not cover`);
      v.reorderings += 1;
      continue;
    }
    const earlier = mine.get(e.n);
    if (earlier !== undefined) {
      if (earlier < v.holesReported && (published.ambiguous.get(e.channel)?.has(e.n) ?? false)) {
        v.reapplied += 1;
      } else {
        v.duplicates += 1;
        problem(`duplicate ${e.channel}#${e.n} (epoch ${e.epoch} offset ${e.offset})`);
      }
    } else if (e.n < prev) {
      v.reorderings += 1;
      skipped.get(e.channel)?.delete(e.n);
      problem(`${e.channel}#${e.n} after #${prev} (epoch ${e.epoch} offset ${e.offset})`);
    } else {
      const acked = published.acked.get(e.channel);
      const gaps = skipped.get(e.channel) as Map<number, { reported: boolean; before: StreamEvent }>;
      for (let k = prev + 1; k < e.n; k++)
        if (acked?.has(k) === true && !mine.has(k))
          gaps.set(k, { reported: reported.get(e.channel) === true, before: e });
      last.set(e.channel, e.n);
    }
    if (earlier === undefined) mine.set(e.n, v.holesReported);
    reported.set(e.channel, false);
  }
  for (const [c, gaps] of skipped) {
    const silent = [...gaps].filter(([, g]) => !g.reported);
    v.missedReported += gaps.size - silent.length;
    v.silentHoles += silent.length;
    // One finding per run of consecutive silent numbers.
    for (let i = 0; i < silent.length;) {
      let j = i;
      while (
        j + 1 < silent.length &&
        (silent[j + 1] as [number, unknown])[0] === (silent[j] as [number, unknown])[0] + 1
      )
        j++;
      const nums = silent.slice(i, j + 1).map(([n]) => n);
      const before = (silent[i] as [number, { before: StreamEvent }])[1].before as Extract<
        StreamEvent,
        { kind: 'pub' }
      >;
      problem(
        `silent hole: ${c}#${describeRange(nums)} missing before #${before.n} (epoch ${before.epoch} offset ${before.offset})`,
      );
      i = j + 1;
    }
  }
  for (const c of covered) {
    const final = published.sentinel.get(c);
    if (final === undefined || !(seen.get(c)?.has(final) ?? false)) {
      v.dead = true;
      problem(`dead: sentinel ${c}#${final ?? '?'} never arrived (last #${last.get(c)})`);
    }
  }
  return v;
}

/** One line of the table: a scenario's subscribers on one transport. */
export interface Row {
  scenario: string;
  transport: string;
  subscribers: number;
  streams: number;
  publications: number;
  delivered: number;
  holesReported: number;
  missedReported: number;
  silentHoles: number;
  duplicates: number;
  reapplied: number;
  reorderings: number;
  deadStreams: number;
  verdict: 'PASS' | 'FAIL';
  problems: string[];
}

/** Judges every stream log of one scenario; one row per transport, in the order transports first appear. */
export function judge(
  scenario: string,
  logs: readonly StreamLog[],
  published: PublishLog,
  channels: readonly string[],
): Row[] {
  const publications = [...published.acked.values()].reduce((n, s) => n + s.size, 0);
  const rows = new Map<string, Row & { subs: Set<string> }>();
  for (const log of logs) {
    let row = rows.get(log.transport);
    if (row === undefined) {
      row = {
        scenario,
        transport: log.transport,
        subscribers: 0,
        streams: 0,
        publications,
        delivered: 0,
        holesReported: 0,
        missedReported: 0,
        silentHoles: 0,
        duplicates: 0,
        reapplied: 0,
        reorderings: 0,
        deadStreams: 0,
        verdict: 'PASS',
        problems: [],
        subs: new Set(),
      };
      rows.set(log.transport, row);
    }
    const v = checkStream(log, published, channels);
    row.subs.add(log.subscriber);
    row.streams += 1;
    row.delivered += v.delivered;
    row.holesReported += v.holesReported;
    row.missedReported += v.missedReported;
    row.silentHoles += v.silentHoles;
    row.duplicates += v.duplicates;
    row.reapplied += v.reapplied;
    row.reorderings += v.reorderings;
    row.deadStreams += v.dead ? 1 : 0;
    if (row.problems.length < MAX_PROBLEMS * 2)
      row.problems.push(...v.problems.slice(0, MAX_PROBLEMS * 2 - row.problems.length));
  }
  return [...rows.values()].map(({ subs, ...row }) => {
    row.subscribers = subs.size;
    row.verdict =
      row.silentHoles + row.duplicates + row.reorderings + row.deadStreams === 0 && row.streams > 0 ? 'PASS' : 'FAIL';
    return row;
  });
}

const COLUMNS: [string, (r: Row) => string | number][] = [
  ['scenario', (r) => r.scenario],
  ['transport', (r) => r.transport],
  ['subscribers', (r) => r.subscribers],
  ['publications', (r) => r.publications],
  ['delivered', (r) => r.delivered],
  ['holes reported', (r) => (r.missedReported > 0 ? `${r.holesReported} (${r.missedReported} pubs)` : r.holesReported)],
  ['silent holes', (r) => r.silentHoles],
  ['duplicates', (r) => (r.reapplied > 0 ? `${r.duplicates} (+${r.reapplied} re-applied)` : r.duplicates)],
  ['reorderings', (r) => r.reorderings],
  ['dead streams', (r) => r.deadStreams],
  ['verdict', (r) => r.verdict],
];

/** The rows as a Markdown table (readable as plain text too). */
export function formatTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => COLUMNS.map(([, get]) => String(get(r))));
  const widths = COLUMNS.map(([h], i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const numeric = (i: number): boolean => i >= 2 && i < COLUMNS.length - 1;
  const line = (values: string[]): string =>
    `| ${values.map((v, i) => (numeric(i) ? v.padStart(widths[i] as number) : v.padEnd(widths[i] as number))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (numeric(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(COLUMNS.map(([h]) => h)), rule, ...cells.map(line)].join('\n');
}

/** The findings of failed rows, for a failure message. */
export function formatProblems(rows: readonly Row[]): string {
  return rows
    .filter((r) => r.problems.length > 0)
    .map((r) => `${r.scenario} / ${r.transport}:\n  ${r.problems.join('\n  ')}`)
    .join('\n');
}
