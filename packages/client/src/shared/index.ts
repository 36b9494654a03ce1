/**
 * `@herald/client/shared`: one Herald connection shared by the tabs of an origin (a SharedWorker,
 * or a leader tab elected with Web Locks). Opt-in, and loaded only when imported.
 *
 * ```ts
 * const herald = new SharedHerald('https://rt.example.com', { worker: '/js/herald-shared.min.js' });
 * herald.subscribe('chat.room1').on('publication', (p) => render(p.data));
 * ```
 */
export { SharedHerald, type SharedHeraldOptions, type SharedRole } from './shared-herald.js';
export { SharedSubscription } from './shared-subscription.js';
export { serveSharedWorker } from './worker.js';
