/**
 * Repartitioned views (`repartition: true`) through the in-memory driver: an order-sensitive
 * view keyed unlike its Kafka key folds the records it keeps through `<app>.<view>.repartition`,
 * keyed by the view key. The expected state is computed in the test from that topic's records
 * as appended (each original record once, its first copy, in the topic's order), so a forward
 * re-produced by a replay of the source, and a replay of the repartition topic itself, must
 * both apply nothing twice and fire no change twice.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { defineApp, defineTrigger, defineView, repartitionTopic, tumbling, type SourceRecord } from '../../sdk/index.ts';

type Booking = { memberId: string; classId: string; n: number };
type Recent = { last: string[] };

const CAP = 3;
/** The last CAP bookings of a member, as `classId#n@topic/partition:offset`: order-sensitive. */
const recentBookings = defineView({
  name: 'recentBookings',
  source: 'bookings',
  repartition: true,
  key: (e: Booking) => e.memberId,
  filter: (e: Booking) => e.classId !== 'skip',
  initial: (): Recent => ({ last: [] }),
  reduce: (s, e, record) => ({ last: [...s.last, `${e.classId}#${e.n}@${record.topic}/${record.partition}:${record.offset}`].slice(-CAP) }),
});
const changesOf = defineTrigger({ view: recentBookings, function: 'notify' });
const app = defineApp({ name: 'gym', views: [recentBookings], triggers: [changesOf] });
const TOPIC = repartitionTopic('gym', 'recentBookings');
const REPARTITIONS = 2;

/** Reference: the fold of the repartition topic, each original record once (first copy), read from its headers. */
function referenceFold(records: readonly (readonly SourceRecord[])[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const partition of records) {
    for (const record of partition) {
      const origin = `${record.headers['tributary-origin-topic']}/${record.headers['tributary-origin-partition']}:${record.headers['tributary-origin-offset']}`;
      if (seen.has(origin)) continue;
      seen.add(origin);
      const event = JSON.parse(record.value!.toString()) as Booking;
      expect(record.key!.toString()).toBe(event.memberId);
      out.set(event.memberId, [...(out.get(event.memberId) ?? []), `${event.classId}#${event.n}@${origin}`].slice(-CAP));
    }
  }
  return out;
}

describe('repartitioned views', () => {
  it('fold the repartition topic in its order, each original record once, through source and repartition replays', async () => {
    const driver = createTestDriver(app, { partitions: { bookings: 3, [TOPIC]: REPARTITIONS } });
    const members = ['m1', 'm2', 'm3', 'm4', 'm5'];
    let n = 0;
    const batch = (partition: number, size: number) =>
      Array.from({ length: size }, () => {
        n += 1;
        const memberId = members[(n * 7) % members.length]!;
        // Kafka-keyed by class: one member's bookings come from every partition.
        return { partition, key: `c${partition}`, value: { memberId, classId: n % 11 === 0 ? 'skip' : `c${partition}`, n } };
      });
    await driver.send('bookings', [...batch(0, 6), ...batch(1, 5), ...batch(2, 7)]);
    await driver.send('bookings', [...batch(2, 4), ...batch(0, 3)]);
    // A crash after the forward, before the commit: the source is read and forwarded again.
    driver.restart();
    await driver.redeliver('bookings', 0, 0);
    await driver.redeliver('bookings', 2, 3);
    // A crash of the fold: the repartition topic is read again.
    driver.restart();
    for (let p = 0; p < REPARTITIONS; p++) await driver.redeliver(TOPIC, p, 0);
    await driver.send('bookings', [...batch(1, 6), ...batch(0, 2)]);

    const repartitioned = Array.from({ length: REPARTITIONS }, (_, p) => driver.records(TOPIC, p));
    const total = repartitioned.reduce((sum, list) => sum + list.length, 0);
    const reference = referenceFold(repartitioned);
    const unique = [...reference.values()].length > 0 ? new Set(repartitioned.flat().map((r) => `${r.headers['tributary-origin-partition']}:${r.headers['tributary-origin-offset']}`)).size : 0;
    const kept = n - Math.floor(n / 11);
    // The replays did re-produce copies, and filtered records were never forwarded.
    expect(unique).toBe(kept);
    expect(total).toBeGreaterThan(unique);
    expect(repartitioned.every((list) => list.length > 0)).toBe(true);
    for (const member of members) expect(driver.state('recentBookings', member), member).toEqual({ last: reference.get(member) });

    // One change per original record (every state differs), none twice, versions 1..k per member.
    const changes = driver.changes.filter((c) => c.trigger === changesOf.name).map((c) => c.change);
    expect(changes).toHaveLength(kept);
    expect(new Set(changes.map((c) => c.idempotencyKey)).size).toBe(kept);
    for (const member of members) {
      const versions = changes.filter((c) => c.key === member).map((c) => c.version);
      expect(versions).toEqual(versions.map((_, i) => i + 1));
    }
    // The fence is on the original coordinates; the repartition partition proves deliveries.
    const item = driver.item('recentBookings', 'm1')!;
    expect(Object.keys(item.offsets).some((k) => k.startsWith('origin:bookings/'))).toBe(true);
    expect(Object.keys(item.offsets).some((k) => k.startsWith(`${TOPIC}/`))).toBe(true);
    expect(driver.deadLetters).toEqual([]);
  });

  it('dead-letters a repartition record the engine did not write, and refuses repartition on a windowed view', async () => {
    const driver = createTestDriver(app, { partitions: { bookings: 1, [TOPIC]: 1 } });
    await driver.send(TOPIC, [{ key: 'm1', value: { memberId: 'm1', classId: 'c', n: 1 } }]);
    expect(driver.deadLetters.map((d) => d.code)).toEqual(['DECODE_FAILED']);
    expect(driver.deadLetters[0]!.kind === 'poison' && driver.deadLetters[0]!.reason).toContain('only the engine produces to a repartition topic');
    expect(driver.state('recentBookings', 'm1')).toBeUndefined();

    expect(() =>
      defineView({ name: 'w', source: 'bookings', repartition: true, key: (e: Booking) => e.memberId, window: tumbling({ sizeMs: 1000 }), graceMs: 0, initial: () => 0, reduce: (s) => s + 1 }),
    ).toThrow(/repartition is not supported with a window/);
  });
});
