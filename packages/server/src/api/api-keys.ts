import { createHash, timingSafeEqual } from 'node:crypto';

/** Accepted `Authorization` values remembered, so that a backend's next request skips the hashing. */
const REMEMBERED = 64;

/**
 * Checks `Authorization: apikey <key>` against the configured keys in constant time: every key is
 * compared (as SHA-256 digests, so lengths leak nothing), whatever matched first. Keys are never
 * logged.
 *
 * A header value that was accepted once is remembered (at most `REMEMBERED` of them, the whole
 * header as a Map key), and the same value is accepted again by one Map lookup: a backend sends the
 * same header with every request, and the hash was most of the check's cost. The lookup does not
 * leak a key byte by byte: a wrong value is compared with a remembered one only when their string
 * hashes collide, which a sender cannot aim at without knowing the key; and only correct values
 * are ever remembered.
 */
export class ApiKeys {
  private readonly digests: Buffer[];
  /** Accepted header values, with whether they use the Bearer scheme. */
  private readonly accepted = new Map<string, boolean>();

  constructor(keys: readonly string[]) {
    this.digests = keys.map((k) => digest(k));
  }

  /** `Authorization: apikey <key>`; with `bearer`, `Bearer <key>` too. */
  check(header: string | undefined, bearer = false): boolean {
    if (header === undefined) return false;
    const known = this.accepted.get(header);
    if (known !== undefined) return bearer || !known;
    const m = (bearer ? /^(?:apikey|bearer)\s+(\S+)\s*$/i : /^apikey\s+(\S+)\s*$/i).exec(header);
    if (m === null) return false;
    const given = digest(m[1] as string);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, given) || ok;
    if (ok && this.accepted.size < REMEMBERED) this.accepted.set(header, /^bearer/i.test(header));
    return ok;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
