/**
 * A repartitioned view on the real stack: `recent` (fixtures/repartition-app.ts, keyed by
 * member, bookings Kafka-keyed by class over 3 partitions) keeps an order-sensitive capped list.
 * Two engine processes share it (the second joins mid-stream: a rebalance), then one is
 * SIGKILLed mid-stream. The one right answer is computed independently: the engine-created
 * repartition topic is read back with a plain kafkajs consumer and folded per member, each
 * original record (by its origin headers) once, its first copy, in the topic's order. The
 * stored states must equal it, every produced booking must be in it once, and each member's
 * applied count must equal its bookings (no double application).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTable, createTopic, stack, uniqueName, waitFor } from './helpers.ts';
import {
  connectProducer,
  highWatermarks,
  readView,
  seededRandom,
  spawnEngine,
  testKafka,
  testStorage,
  waitForCheckpoints,
  type EngineProcess,
} from './fixtures/engine-support.ts';
import { RECENT_CAP, type BookingEvent, type Recent } from './fixtures/repartition-app.ts';

const MEMBERS = 25;
const CLASSES = 9;

/** Every record of a topic, per partition in offset order, read with a plain consumer. */
async function readTopic(topic: string, watermarks: Map<number, string>): Promise<Map<number, { key: string; value: string; headers: Record<string, string> }[]>> {
  const kafka = testKafka('repartition-reader');
  const consumer = kafka.consumer({ groupId: uniqueName('repartition-reader'), sessionTimeout: 6_000 });
  const out = new Map<number, { key: string; value: string; headers: Record<string, string> }[]>([...watermarks.keys()].map((p) => [p, []]));
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(Array.isArray(value) ? value[0] : value);
        out.get(partition)!.push({ key: message.key!.toString(), value: message.value!.toString(), headers });
      },
    });
    await waitFor(async () => [...watermarks].every(([p, high]) => out.get(p)!.length >= Number(high)), {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: `reading "${topic}" to ${JSON.stringify([...watermarks])}`,
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

describe('a repartitioned view run by two engine processes', () => {
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

  it('equals the fold of its repartition topic, each booking once, across a rebalance and a SIGKILL', async () => {
    const source = uniqueName('repartition-bookings');
    const table = uniqueName('repartition');
    const appName = uniqueName('repartition');
    const internal = `${appName}.recent.repartition`;
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, source, 3), createTopic(stack().kafkaBrokers, `${appName}.dead-letter`, 1)]);
    const env = {
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/repartition-app.ts',
      TRIBUTARY_GROUP_ID: uniqueName('repartition-group'),
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(4 * 1024),
      REPARTITION_SOURCE_TOPIC: source,
      REPARTITION_APP: appName,
    };
    const kafka = testKafka('repartition-test');
    const producer = await connectProducer(kafka);
    const random = seededRandom(1414);
    const produced = new Map<string, number[]>();
    let seq = 0;
    const produce = async (count: number) => {
      const messages = [];
      for (let i = 0; i < count; i += 1) {
        const event: BookingEvent = { memberId: `m${Math.floor(random() * MEMBERS)}`, classId: `c${Math.floor(random() * CLASSES)}`, seq };
        produced.set(event.memberId, [...(produced.get(event.memberId) ?? []), seq]);
        messages.push({ key: event.classId, value: JSON.stringify(event) });
        seq += 1;
      }
      await producer.send({ topic: source, acks: -1, messages });
    };
    const spawnOne = () => {
      const engine = spawnEngine(env);
      live.push(engine);
      return engine;
    };
    /** Running, or the engine's last lines when it exited instead. */
    const up = (engine: EngineProcess) =>
      Promise.race([
        engine.running,
        engine.exited.then((exit) => {
          throw new Error(`engine exited (${JSON.stringify(exit)}) before running:\n${engine.lines.slice(-15).join('\n')}`);
        }),
      ]);
    try {
      await produce(250);
      const first = spawnOne();
      await up(first);
      await produce(250);
      const second = spawnOne();
      await up(second);
      // Mid-stream: the first task dies while it folds and forwards (batches produced, not committed).
      await produce(250);
      first.child.kill('SIGKILL');
      expect((await first.exited).signal).toBe('SIGKILL');
      await produce(250);

      const storage = testStorage(table);
      await waitForCheckpoints(storage, source, await highWatermarks(kafka, source), 60_000);
      const watermarks = await highWatermarks(kafka, internal);
      expect(watermarks.size, 'the repartition topic has the source topic\'s partitions').toBe(3);
      await waitForCheckpoints(storage, internal, watermarks, 60_000);

      // The reference: the repartition topic as it is, each original record once (first copy).
      const records = await readTopic(internal, watermarks);
      const reference = new Map<string, Recent>();
      const origins = new Set<string>();
      let copies = 0;
      for (const partition of records.values()) {
        for (const record of partition) {
          copies += 1;
          const origin = `${record.headers['tributary-origin-topic']}/${record.headers['tributary-origin-partition']}@${record.headers['tributary-origin-offset']}`;
          if (origins.has(origin)) continue;
          origins.add(origin);
          const event = JSON.parse(record.value) as BookingEvent;
          expect(record.key).toBe(event.memberId);
          const s = reference.get(event.memberId) ?? { applied: 0, last: [] };
          reference.set(event.memberId, { applied: s.applied + 1, last: [...s.last, event.seq].slice(-RECENT_CAP) });
        }
      }
      expect(origins.size, 'every booking forwarded').toBe(seq);
      const stored = await readView(storage, 'recent');
      expect(stored.size).toBe(produced.size);
      for (const [memberId, seqs] of produced) {
        expect(stored.get(memberId), `recent ${memberId}`).toEqual(reference.get(memberId));
        expect((stored.get(memberId) as Recent).applied, `${memberId} applied once each`).toBe(seqs.length);
      }
      console.log(`[repartition] ${seq} bookings, ${copies} repartition records (${copies - seq} re-produced copies fenced)`);
    } finally {
      await producer.disconnect();
    }
  }, 120_000);
});
