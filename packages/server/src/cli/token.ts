/**
 * `herald token`: prints a token for development and tests, signed with the configured HMAC secret
 * (`auth.hmacSecret` / `HERALD_AUTH_HMAC_SECRET`, from the same config file and environment as
 * `herald serve`) or with a private key file. Production tokens come from the application.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { checkChannel } from '@herald/protocol';
import { parseDuration } from '../config/duration.js';
import { loadConfig } from '../config/load-config.js';
import { keyAlgorithms, readPem } from '../config/pem.js';
import { JWT_ALGORITHMS, type JwtAlgorithm } from '../config/config.js';
import { PERMISSION_ACTIONS, type PermissionAction } from '../auth/permissions.js';
import { commandHelp } from './help.js';
import { UsageError, parseErrorMessage } from './output.js';

/** `herald token --help` (help.ts has the text). */
export const TOKEN_USAGE = commandHelp('token');

/** A mistake in the command line or the configuration: one line on stderr, exit code 2. */
export class TokenUsageError extends Error {
  override name = 'TokenUsageError';
}

const OPTIONS = {
  sub: { type: 'string' },
  subscribe: { type: 'string', multiple: true },
  publish: { type: 'string', multiple: true },
  history: { type: 'string', multiple: true },
  presence: { type: 'string', multiple: true },
  channel: { type: 'string' },
  info: { type: 'string' },
  ttl: { type: 'string' },
  'private-key': { type: 'string' },
  alg: { type: 'string' },
  kid: { type: 'string' },
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Builds the token for `herald token` arguments. `now` is ms since the epoch. Throws a
 * `TokenUsageError` for a wrong argument, a `ConfigError` for a wrong configuration.
 */
export async function buildToken(argv: string[], env: NodeJS.ProcessEnv, now: number): Promise<string> {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (err) {
    throw new TokenUsageError(parseErrorMessage(err));
  }
  const sub = values.sub;
  if (sub === undefined || sub === '') throw new TokenUsageError('--sub is required (the user id)');

  const ttl = parseDuration(values.ttl ?? '1h');
  if (ttl === undefined || !Number.isSafeInteger(ttl) || ttl < 1000) {
    throw new TokenUsageError(`--ttl must be a duration of at least 1s, like 30m or 1h; got ${values.ttl ?? ''}`);
  }

  const claims: Record<string, unknown> = { sub };
  if (values.info !== undefined) {
    try {
      claims['info'] = JSON.parse(values.info);
    } catch {
      throw new TokenUsageError('--info must be JSON, like \'{"name":"Ann"}\'');
    }
  }
  const grants: Partial<Record<PermissionAction, string[]>> = {};
  for (const action of PERMISSION_ACTIONS) {
    const patterns = values[action];
    if (patterns === undefined) continue;
    for (const p of patterns) {
      const check = checkChannel(p.replaceAll('$sub', 'x'));
      if (!check.ok) throw new TokenUsageError(`--${action} ${p}: ${check.reason}`);
    }
    grants[action] = patterns;
  }
  if (values.channel !== undefined) {
    const check = checkChannel(values.channel);
    if (!check.ok) throw new TokenUsageError(`--channel ${values.channel}: ${check.reason}`);
    if (Object.keys(grants).length > 0) {
      throw new TokenUsageError('a subscription token (--channel) carries no --subscribe/--publish/... grants');
    }
    claims['channel'] = values.channel;
  } else if (Object.keys(grants).length > 0) {
    claims['channels'] = grants;
  }

  const { config } = await loadConfig({ env, ...(values.config !== undefined ? { configFile: values.config } : {}) });
  let key: KeyObject | Uint8Array;
  let fits: readonly JwtAlgorithm[];
  if (values['private-key'] !== undefined) {
    try {
      const privateKey = createPrivateKey({ key: readPem(values['private-key']), format: 'pem' });
      fits = keyAlgorithms(privateKey).algorithms;
      key = privateKey;
    } catch (err) {
      throw new TokenUsageError(`--private-key ${(err as Error).message}`);
    }
  } else {
    if (config.auth.hmacSecret === '') {
      throw new TokenUsageError(
        'no HMAC secret is configured: set auth.hmacSecret (config file) or HERALD_AUTH_HMAC_SECRET, or give --private-key',
      );
    }
    key = new TextEncoder().encode(config.auth.hmacSecret);
    fits = ['HS256', 'HS384', 'HS512'];
  }
  let alg = fits[0] as JwtAlgorithm;
  if (values.alg !== undefined) {
    const wanted = JWT_ALGORITHMS.find((a) => a.toLowerCase() === values.alg?.toLowerCase());
    if (wanted === undefined || !fits.includes(wanted)) {
      throw new TokenUsageError(`--alg must be one of ${fits.join(', ')} for this key, got ${values.alg}`);
    }
    alg = wanted;
  }
  const seconds = Math.floor(now / 1000);
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg, typ: 'JWT', ...(values.kid !== undefined ? { kid: values.kid } : {}) })
    .setIssuedAt(seconds)
    .setExpirationTime(seconds + Math.floor(ttl / 1000));
  if (config.auth.issuer !== '') jwt.setIssuer(config.auth.issuer);
  if (config.auth.audience !== '') jwt.setAudience(config.auth.audience);
  return jwt.sign(key);
}

function parse(argv: string[]) {
  return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
}

export async function runToken(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(TOKEN_USAGE);
    return 0;
  }
  try {
    console.log(await buildToken(argv, process.env, Date.now()));
    return 0;
  } catch (err) {
    // One line, exit code 2 (main.ts prints it with a pointer to --help).
    if (err instanceof TokenUsageError) throw new UsageError(err.message);
    throw err;
  }
}
