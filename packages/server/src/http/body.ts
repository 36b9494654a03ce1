import type { IncomingMessage } from 'node:http';
import { HeraldError } from '@herald/protocol';

/**
 * Reads a request body up to `limit` bytes. Rejects with HERALD_ERR_API_UNSUPPORTED_ENCODING (415)
 * when the body is compressed (`Content-Encoding` other than `identity`: Herald decodes none, and
 * parsing gzip bytes as JSON would only give a misleading "not valid JSON"; decoding would also let a
 * small body inflate past `limit`), with HERALD_ERR_API_BODY_TOO_LARGE as soon as the limit is passed
 * (without buffering the rest) and with HERALD_ERR_API_BAD_REQUEST when the client goes away mid-body.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && !isIdentity(encoding)) {
      req.resume();
      reject(
        new HeraldError(
          'HERALD_ERR_API_UNSUPPORTED_ENCODING',
          `Content-Encoding ${JSON.stringify(encoding.slice(0, 64))} is not supported: send the body uncompressed`,
        ),
      );
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new HeraldError('HERALD_ERR_API_BODY_TOO_LARGE', `body is ${declared} bytes; the limit is ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        req.resume();
        reject(new HeraldError('HERALD_ERR_API_BODY_TOO_LARGE', `body is larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      // A small body comes in one chunk: no copy.
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    });
    req.on('error', () => {
      if (done) return;
      done = true;
      reject(new HeraldError('HERALD_ERR_API_BAD_REQUEST', 'the request body could not be read'));
    });
    req.on('aborted', () => {
      if (done) return;
      done = true;
      reject(new HeraldError('HERALD_ERR_API_BAD_REQUEST', 'the client aborted the request'));
    });
  });
}

/** A `Content-Encoding` that names only `identity` (any case, possibly more than once) or nothing. */
function isIdentity(header: string): boolean {
  return header.split(',').every((part) => {
    const coding = part.trim().toLowerCase();
    return coding === '' || coding === 'identity';
  });
}
