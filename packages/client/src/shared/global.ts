/**
 * Entry of the `<script>` bundle `herald-shared.min.js`. In a page, it defines the global
 * `SharedHerald` (with `SharedHerald.Herald`, `.HeraldError`, `.Subscription`) and makes its own URL
 * the default worker script. Run as a SharedWorker (`new SharedWorker(thatUrl)`), it serves the tabs.
 */
import { HeraldError } from '@herald/protocol';
import { Herald, Subscription } from '../index.js';
import { SharedHerald } from './shared-herald.js';
import { serveSharedWorker } from './worker.js';

const g = globalThis as {
  SharedWorkerGlobalScope?: abstract new () => unknown;
  document?: { currentScript?: { src?: string } | null };
  SharedHerald?: unknown;
};
if (g.SharedWorkerGlobalScope !== undefined && globalThis instanceof g.SharedWorkerGlobalScope) serveSharedWorker();
else SharedHerald.workerUrl = g.document?.currentScript?.src || undefined;
g.SharedHerald = Object.assign(SharedHerald, { Herald, HeraldError, Subscription });
