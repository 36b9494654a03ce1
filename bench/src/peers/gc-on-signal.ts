/**
 * Preloaded into every Node server of the memory scenario (`node --expose-gc --import`): a SIGUSR2
 * runs a full garbage collection, so that an RSS reading shows what is live and not how far V8's
 * collector happened to have got (see `FULL_GC_ON_SIGNAL` in scenarios.ts). No output, no other effect.
 */
process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
});
