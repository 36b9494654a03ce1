// @ts-check
/**
 * Writes docs/errors.md from the built protocol package. Run through `npm run docs:errors`, which
 * builds packages/protocol first.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { DisconnectCodes, ErrorCodes } from '../packages/protocol/dist/index.js';
import { renderErrorsDoc } from './render-errors-doc.mjs';

const target = new URL('../docs/errors.md', import.meta.url);
await mkdir(new URL('.', target), { recursive: true });
await writeFile(target, renderErrorsDoc(ErrorCodes, DisconnectCodes));
console.log(
  `wrote docs/errors.md: ${Object.keys(ErrorCodes).length} reply errors, ${Object.keys(DisconnectCodes).length} disconnect codes`,
);
