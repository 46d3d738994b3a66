/**
 * Seed of the gym app for `npm run dev` (`tributary dev --seed functions/seed.ts`): a generated
 * stream of bookings and cancellations at `--rate` events per second.
 *
 * It is one deterministic stream across runs: the generator always starts from the same seed
 * and start time and skips the events the topic already holds, so a restart continues where the
 * last run stopped (cancellations name bookings the views really hold) instead of mixing a second
 * stream into the state of the first. The stream's event time starts when the topic was empty
 * (kept in `gym-seed.json` of the data folder): windows are kept for their retention from their
 * end by the wall clock, so event time must be near now. Delete `.tributary/` to start over.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { SeedContext } from 'tributary/local';
import { BOOKINGS_TOPIC, toMessage } from './events.ts';
import { createBookingGenerator } from './generator.ts';

/** Small enough that classes fill up and waitlists form within a minute at 20 events/s. */
const SEED_CLASSES = 12;
const SEED_MEMBERS = 150;
/** Events are sent four times a second: a steady trickle rather than one burst per second. */
const TICKS_PER_SECOND = 4;

/** The stream `npm run dev` produces: same options every run, so it can be continued. */
export function devBookingGenerator(startAt: string) {
  return createBookingGenerator({ seed: 1, classes: SEED_CLASSES, members: SEED_MEMBERS, startAt });
}

/** When the stream began: read back on later runs, set to now while the topic is empty. */
function streamStart(dataDir: string, already: number): string {
  const file = path.join(dataDir, 'gym-seed.json');
  if (already > 0 && existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { startAt: string }).startAt;
  const startAt = new Date().toISOString();
  writeFileSync(file, `${JSON.stringify({ startAt })}\n`);
  return startAt;
}

export async function seed(context: SeedContext): Promise<void> {
  const already = await context.recordsIn(BOOKINGS_TOPIC);
  const generator = devBookingGenerator(streamStart(context.dataDir, already));
  for (let i = 0; i < already; i += 1) generator.next();
  context.log(`producing ${context.rate} bookings/s to "${BOOKINGS_TOPIC}"${already > 0 ? `, continuing the stream after its first ${already} events` : ''}${context.events === undefined ? '' : `, ${context.events} in all`}`);

  const perTick = Math.max(1, Math.round(context.rate / TICKS_PER_SECOND));
  let produced = 0;
  while (!context.signal.aborted && (context.events === undefined || produced < context.events)) {
    const n = context.events === undefined ? perTick : Math.min(perTick, context.events - produced);
    const events = generator.take(n);
    await context.produce(BOOKINGS_TOPIC, events.map((event) => ({ key: toMessage(event).key, value: event })));
    produced += n;
    // Pacing, not synchronisation: the seed emulates producers sending at a steady rate.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1_000 / TICKS_PER_SECOND);
      context.signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }
  if (context.events !== undefined) context.log(`produced ${produced} events; the app keeps running`);
}
