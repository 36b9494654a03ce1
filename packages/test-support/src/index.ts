/**
 * `@herald/test-support`: what the tests of every package share, in one place.
 *
 * - Waiting: `until` (a condition, sync or async), `untilValue`, `withTimeout` (wait.ts).
 * - Loopback TCP: `freePort`, `canConnect`, `startTcpProxy` (net.ts).
 * - Awaiting what arrives: `Inbox`, and SSE / NDJSON parsers (inbox.ts).
 * - Programs nobody here wrote (curl, nginx, redis-server, ...): `findProgram`, `needProgram`,
 *   `Child`, `tempDir`, `selfSignedCert` (programs.ts).
 *
 * A Herald server to test against is `@herald/test-support/server` (server.ts); Redis servers of a
 * test's own are `@herald/test-support/redis` (redis.ts). Support that only one package's tests use
 * stays in that package's `test/support` folder.
 */
export { until, untilValue, withTimeout } from './wait.js';
export { canConnect, freePort, startTcpProxy, type TcpProxy } from './net.js';
export { Inbox, LineSplitter, SseParser, type SseEvent } from './inbox.js';
export { CI, Child, findProgram, needProgram, selfSignedCert, tempDir } from './programs.js';
export * from './chromium.js';
