import { describe, expect, it } from 'vitest';
import * as fromPackage from '@herald/protocol';
import * as fromSource from '../src/index.js';

describe('@herald/protocol resolution in tests', () => {
  it('resolves to the TypeScript sources (the herald-source condition), not to dist/', () => {
    // The same module instance is only shared when both specifiers resolve to src/index.ts.
    expect(fromPackage.decodeCommand).toBe(fromSource.decodeCommand);
    expect(fromPackage.ErrorCodes).toBe(fromSource.ErrorCodes);
  });
});
