/**
 * App of the end-to-end trigger test (triggers-e2e.test.ts), loaded by the engine child
 * process: one counting view over the topic named by `E2E_TOPIC`, and one trigger on it
 * calling the function named by `E2E_FUNCTION` (served by the test's own Lambda endpoint),
 * taking the changes named by `E2E_CHANGES` (`coalesced` unless set; triggers-every.test.ts
 * sets `every`).
 */
import { defineApp, defineTrigger, defineView } from '../../sdk/index.ts';

/** State of the test view: how many events a key has seen. */
export interface Tally {
  readonly count: number;
}

const topic = process.env.E2E_TOPIC ?? 'e2e-tally';

export const tally = defineView({
  name: 'tally',
  source: topic,
  key: (event: { key: string }) => event.key,
  initial: (): Tally => ({ count: 0 }),
  reduce: (state: Tally) => ({ count: state.count + 1 }),
});

export const tallyChanged = defineTrigger({
  view: tally,
  function: process.env.E2E_FUNCTION ?? 'e2eTally',
  name: 'tallyChanged',
  batchSize: 20,
  concurrency: 4,
  // Generous attempts: the test kills the engine mid-delivery, never wants a dead letter.
  retry: { maxAttempts: 10, initialBackoffMs: 20, maxBackoffMs: 500 },
  changes: process.env.E2E_CHANGES === 'every' ? 'every' : 'coalesced',
});

export const app = defineApp({
  name: process.env.E2E_APP ?? 'e2e-tally',
  views: [tally],
  triggers: [tallyChanged],
  deadLetterTopic: process.env.E2E_DEAD_LETTER_TOPIC,
});
