/**
 * App of the paused-engine trigger test (triggers-fence.test.ts), loaded by engine/main.ts in
 * the spawned engine processes: one counting view over `FENCE_TOPIC` and one trigger calling
 * `FENCE_FUNCTION` one change at a time, so an engine holds most of a batch's changes in hand
 * while the function works on the first.
 */
import { defineApp, defineTrigger, defineView } from '../../sdk/index.ts';

/** State of the test view: how many events a key has seen. */
export interface Tally {
  readonly count: number;
}

export const tally = defineView({
  name: 'tally',
  source: process.env.FENCE_TOPIC ?? 'fence-tally',
  key: (event: { key: string }) => event.key,
  initial: (): Tally => ({ count: 0 }),
  reduce: (state: Tally) => ({ count: state.count + 1 }),
});

export const tallyChanged = defineTrigger({
  view: tally,
  function: process.env.FENCE_FUNCTION ?? 'fenceTally',
  name: 'tallyChanged',
  batchSize: 1,
  concurrency: 1,
  retry: { maxAttempts: 10, initialBackoffMs: 20, maxBackoffMs: 500 },
});

export const app = defineApp({
  name: process.env.FENCE_APP ?? 'fence-tally',
  views: [tally],
  triggers: [tallyChanged],
});
