/**
 * A re-keyed view with one right answer on the real stack: the example's `memberBookings`
 * (keyed by member, bookings partitioned by class over 3 partitions) run by two engine
 * processes, the second joining mid-stream (a rebalance moves partitions between them). Each
 * member's item gathers the events of several partitions in an interleaving nobody defines;
 * the view commutes across partitions (README, "Views keyed unlike their Kafka key"), so the
 * stored state must equal the one answer computed here from the events alone, as a set: the
 * counts, the newest event time and its activity (tie-broken by booking id), and the bookings
 * not cancelled that start after that time, soonest first.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBookingGenerator } from '../../functions/generator.ts';
import { toMessage, type BookingEvent } from '../../functions/events.ts';
import type { MemberBookings } from '../../functions/views.ts';
import { createTable, createTopic, stack, uniqueName } from './helpers.ts';
import {
  connectProducer,
  highWatermarks,
  readView,
  spawnEngine,
  testKafka,
  testStorage,
  waitForCheckpoints,
  type EngineProcess,
} from './fixtures/engine-support.ts';

/** The one answer per member, from the events as a set (plus each class's own order for cancels). */
function expected(events: readonly BookingEvent[]): Map<string, MemberBookings> {
  const byMember = new Map<string, BookingEvent[]>();
  for (const e of events) byMember.set(e.memberId, [...(byMember.get(e.memberId) ?? []), e]);
  const out = new Map<string, MemberBookings>();
  for (const [memberId, list] of byMember) {
    const rank = (e: BookingEvent) => [Date.parse(e.at), e.bookingId, e.type === 'cancelled' ? 1 : 0] as const;
    const last = list.reduce((a, b) => {
      const [x, y] = [rank(a), rank(b)];
      return y[0] > x[0] || (y[0] === x[0] && (y[1] > x[1] || (y[1] === x[1] && y[2] > x[2]))) ? b : a;
    });
    const newest = Date.parse(last.at);
    const live = new Map<string, BookingEvent>();
    for (const e of list) e.type === 'booked' ? live.set(e.bookingId, e) : live.delete(e.bookingId);
    const upcoming = [...live.values()]
      .filter((e) => Date.parse(e.classStartsAt) > newest)
      .sort((a, b) => Date.parse(a.classStartsAt) - Date.parse(b.classStartsAt) || (a.bookingId < b.bookingId ? -1 : 1))
      .map((e) => ({ classId: e.classId, bookingId: e.bookingId, classStartsAt: e.classStartsAt }));
    out.set(memberId, {
      memberId,
      upcoming,
      bookedCount: list.filter((e) => e.type === 'booked').length,
      cancelledCount: list.filter((e) => e.type === 'cancelled').length,
      lastActivity: { value: last.type, atMs: newest, bookingId: last.bookingId },
    });
  }
  return out;
}

describe('a re-keyed view run by two engine processes', () => {
  const live: EngineProcess[] = [];
  afterEach(async () => {
    await Promise.all(
      live.map(async (e) => {
        if (e.child.exitCode === null && e.child.signalCode === null) {
          e.child.kill('SIGKILL');
          await e.exited;
        }
      }),
    );
    live.length = 0;
  });

  it('equals the one answer computed from the events, across a rebalance', async () => {
    const topic = uniqueName('rekeyed');
    const table = uniqueName('rekeyed');
    const appName = uniqueName('rekeyed');
    await Promise.all([
      createTable(table),
      createTopic(stack().kafkaBrokers, topic, 3),
      createTopic(stack().kafkaBrokers, `${appName}.dead-letter`, 1),
    ]);
    const env = {
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/rekeyed-app.ts',
      TRIBUTARY_GROUP_ID: uniqueName('rekeyed-group'),
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(8 * 1024),
      REKEYED_TOPIC: topic,
      REKEYED_APP: appName,
    };
    const generator = createBookingGenerator({ seed: 4242, classes: 30, members: 60, startAt: '2026-03-01T00:00:00.000Z' });
    const events: BookingEvent[] = [];
    const producer = await connectProducer(testKafka('rekeyed-test'));
    const produce = async (n: number) => {
      const batch = generator.take(n);
      events.push(...batch);
      await producer.send({ topic, acks: -1, messages: batch.map(toMessage) });
    };
    try {
      await produce(3_000);
      const first = spawnEngine(env);
      live.push(first);
      await first.running;
      await produce(2_000);
      const second = spawnEngine(env);
      live.push(second);
      await second.running;
      await produce(2_000);
      const storage = testStorage(table);
      await waitForCheckpoints(storage, topic, await highWatermarks(testKafka('rekeyed-admin'), topic), 120_000);
      const stored = await readView(storage, 'memberBookings');
      const answer = expected(events);
      expect(stored.size).toBe(answer.size);
      for (const [memberId, state] of answer) expect(stored.get(memberId), `memberBookings ${memberId}`).toEqual(state);
    } finally {
      await producer.disconnect();
    }
  }, 150_000);
});
