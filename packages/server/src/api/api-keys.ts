import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Checks `Authorization: apikey <key>` against the configured keys in constant time: every key is
 * compared (as SHA-256 digests, so lengths leak nothing), whatever matched first. Keys are never
 * logged.
 */
export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map((k) => digest(k));
  }

  check(header: string | undefined): boolean {
    if (header === undefined) return false;
    const m = /^apikey\s+(\S+)\s*$/i.exec(header);
    if (m === null) return false;
    const given = digest(m[1] as string);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, given) || ok;
    return ok;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
