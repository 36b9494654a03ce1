import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  DisconnectCodes,
  ErrorCodes,
  HeraldError,
  isServerFault,
  disconnectByCode,
  isErrorCode,
  shouldReconnect,
  type DisconnectName,
  type ErrorCode,
} from '@herald/protocol';
import { renderErrorsDoc } from '../../../scripts/render-errors-doc.mjs';

const errorEntries = Object.entries(ErrorCodes) as [ErrorCode, (typeof ErrorCodes)[ErrorCode]][];
const disconnectEntries = Object.entries(DisconnectCodes) as [
  DisconnectName,
  (typeof DisconnectCodes)[DisconnectName],
][];

describe('reply error codes', () => {
  it('are named HERALD_ERR_<AREA>_<WHAT> (or HERALD_ERR_<WHAT>) in upper snake case', () => {
    for (const [code] of errorEntries) expect(code).toMatch(/^HERALD_ERR_[A-Z]+(?:_[A-Z]+)*$/);
  });

  it('have an HTTP error status and a one-line description', () => {
    for (const [code, info] of errorEntries) {
      expect(Number.isInteger(info.status) && info.status >= 400 && info.status <= 599, code).toBe(true);
      expect(info.description.length, code).toBeGreaterThan(0);
      expect(info.description, code).not.toMatch(/[\r\n|]/);
    }
  });

  it('have unique descriptions (no code is a copy of another)', () => {
    const descriptions = errorEntries.map(([, info]) => info.description);
    expect(new Set(descriptions).size).toBe(descriptions.length);
  });

  it('isErrorCode knows exactly the table', () => {
    for (const [code] of errorEntries) expect(isErrorCode(code)).toBe(true);
    for (const v of [
      'toString',
      'constructor',
      '__proto__',
      'hasOwnProperty',
      'HERALD_ERR_NOPE',
      '',
      1,
      null,
      undefined,
    ]) {
      expect(isErrorCode(v)).toBe(false);
    }
  });
});

describe('isServerFault', () => {
  it('is true for exactly the codes whose status is 5xx', () => {
    for (const [code, info] of errorEntries) expect(isServerFault(code), code).toBe(info.status >= 500);
  });
});

describe('HeraldError', () => {
  it('carries the code and defaults its message to the code', () => {
    const e = new HeraldError('HERALD_ERR_CHANNEL_INVALID');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('HeraldError');
    expect(e.code).toBe('HERALD_ERR_CHANNEL_INVALID');
    expect(e.message).toBe('HERALD_ERR_CHANNEL_INVALID');
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: e.code, message: e.message });
  });

  it('keeps a given message', () => {
    const e = new HeraldError('HERALD_ERR_TIMEOUT', 'history took longer than 5000 ms');
    expect(e.toJSON()).toEqual({ code: 'HERALD_ERR_TIMEOUT', message: 'history took longer than 5000 ms' });
  });
});

describe('disconnect codes', () => {
  it('are unique close codes within 3000-3999', () => {
    const codes = disconnectEntries.map(([, info]) => info.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const [name, info] of disconnectEntries) {
      expect(Number.isInteger(info.code) && info.code >= 3000 && info.code <= 3999, name).toBe(true);
      expect(name).toMatch(/^[A-Z]+(?:_[A-Z]+)*$/);
      expect(info.description.length, name).toBeGreaterThan(0);
      expect(info.description, name).not.toMatch(/[\r\n|]/);
    }
  });

  it('say reconnect exactly when their range does (3000-3499 yes, 3500-3999 no)', () => {
    for (const [name, info] of disconnectEntries) {
      expect(info.reconnect, `${name} (${info.code}) has reconnect: ${info.reconnect}`).toBe(
        shouldReconnect(info.code),
      );
    }
  });

  it('shouldReconnect follows the ranges, and reconnects on any other close code', () => {
    for (const code of [1000, 1001, 1006, 1011, 2999, 3000, 3499, 4000, 4999]) expect(shouldReconnect(code)).toBe(true);
    for (const code of [3500, 3501, 3750, 3999]) expect(shouldReconnect(code)).toBe(false);
  });

  it('disconnectByCode finds each code by its number', () => {
    for (const [name, info] of disconnectEntries) expect(disconnectByCode(info.code)).toEqual({ name, ...info });
    for (const code of [0, 1000, 1006, 3000, 3999, 4000]) {
      if (!disconnectEntries.some(([, info]) => info.code === code)) expect(disconnectByCode(code)).toBeUndefined();
    }
  });
});

describe('docs/errors.md', () => {
  const doc = renderErrorsDoc(ErrorCodes, DisconnectCodes);

  it('documents every code', () => {
    for (const [code, info] of errorEntries) expect(doc).toContain(`| \`${code}\` | ${info.status} `);
    for (const [name, info] of disconnectEntries) {
      expect(doc).toContain(`| \`${name}\` | ${info.code} | ${info.reconnect ? 'yes' : 'no'} |`);
    }
  });

  it('is up to date with the code tables (run `npm run docs:errors` to regenerate it)', async () => {
    const onDisk = await readFile(new URL('../../../docs/errors.md', import.meta.url), 'utf8').catch(
      (e: unknown) => `docs/errors.md could not be read: ${String(e)}`,
    );
    expect(onDisk, 'docs/errors.md is out of date: run `npm run docs:errors`').toBe(doc);
  });
});
