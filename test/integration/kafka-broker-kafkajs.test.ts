/**
 * Conformance of the embedded broker with kafkajs 2.2.4 (the client the engine uses): topics,
 * keyed produce with acks=-1, consumer groups with commits and rebalances, idempotent
 * producers and a broker restart on the same data directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Consumer, Kafka, type KafkaMessage, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConformanceBroker, conformanceBrokerKinds, startConformanceBroker } from './fixtures/conformance-brokers.ts';
import { murmur2 } from './fixtures/murmur2.ts';
import { uniqueName, waitFor } from './helpers.ts';

const PARTITIONS = 3;
const MESSAGES = 10_000;
const KEYS = 250;

interface Seen {
  partition: number;
  offset: number;
  key: string;
  value: string;
}

describe.each(conformanceBrokerKinds())('$kind broker with kafkajs', ({ kind, skip }) => {
  if (skip) console.log(`[conformance] apache broker skipped: ${skip}`);
  // Skipped, not dropped, so a run without Apache Kafka shows what it did not check.
  const scenario = skip ? it.skip : it;
  let dataDir: string;
  let broker: ConformanceBroker;
  let kafka: Kafka;
  const topic = uniqueName('kjs-orders');
  const group = uniqueName('kjs-group');
  const consumers: Consumer[] = [];

  const newKafka = (b: ConformanceBroker): Kafka =>
    new Kafka({ brokers: b.brokers, clientId: 'kafkajs-conformance', logLevel: logLevel.NOTHING, retry: { retries: 3, initialRetryTime: 100 } });

  const consumer = (groupId: string): Consumer => {
    const c = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 200, maxWaitTimeInMs: 200, rebalanceTimeout: 6000 });
    consumers.push(c);
    return c;
  };

  const toSeen = (partition: number, m: KafkaMessage): Seen => ({
    partition,
    offset: Number(m.offset),
    key: m.key?.toString() ?? '',
    value: m.value?.toString() ?? '',
  });

  const endOffsets = async (k: Kafka, t: string): Promise<number[]> => {
    const admin = k.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(t);
      return offsets.sort((a, b) => a.partition - b.partition).map((o) => Number(o.high));
    } finally {
      await admin.disconnect();
    }
  };

  beforeAll(async () => {
    if (skip) return;
    dataDir = await mkdtemp(join(tmpdir(), 'tributary-kafka-'));
    broker = await startConformanceBroker(kind, dataDir);
    kafka = newKafka(broker);
  });

  afterAll(async () => {
    for (const c of consumers) await c.disconnect().catch(() => {});
    await broker?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  scenario('creates a 3-partition topic and refuses to create it twice', async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] })).toBe(true);
      const meta = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(meta.topics[0]?.partitions.map((p) => p.partitionId).sort()).toEqual([0, 1, 2]);
      // kafkajs answers false (not an error) when every topic already exists.
      expect(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] })).toBe(false);
      // The admin client never asks for auto-creation: an unknown topic is reported, not created.
      await expect(admin.fetchTopicMetadata({ topics: [uniqueName('kjs-missing')] })).rejects.toMatchObject({
        type: 'UNKNOWN_TOPIC_OR_PARTITION',
      });
    } finally {
      await admin.disconnect();
    }
  });

  scenario('stores 10k keyed messages produced with acks=-1, partitioned by murmur2(key)', async () => {
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    for (let start = 0; start < MESSAGES; start += 1000) {
      const messages = Array.from({ length: 1000 }, (_, i) => ({ key: `key-${(start + i) % KEYS}`, value: `value-${start + i}` }));
      await producer.send({ topic, acks: -1, messages });
    }
    await producer.disconnect();
    const ends = await endOffsets(kafka, topic);
    expect(ends.reduce((a, b) => a + b, 0)).toBe(MESSAGES);

    // Expected count per partition from the client's default partitioner (murmur2, positive, mod n).
    const expected = [0, 0, 0];
    for (let i = 0; i < MESSAGES; i++) expected[(murmur2(Buffer.from(`key-${i % KEYS}`)) & 0x7fffffff) % PARTITIONS]!++;
    expect(ends).toEqual(expected);
  });

  scenario('consumes every message in a group with eachBatch, commits, and a restarted consumer resumes at the commit', async () => {
    const seen: Seen[] = [];
    const first = consumer(group);
    await first.connect();
    await first.subscribe({ topic, fromBeginning: true });
    await first.run({
      eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
        for (const m of batch.messages) {
          seen.push(toSeen(batch.partition, m));
          resolveOffset(m.offset);
        }
        await commitOffsetsIfNecessary();
      },
    });
    await waitFor(() => seen.length >= MESSAGES, { timeoutMs: 20_000, message: `${MESSAGES} messages consumed` });
    await first.disconnect();

    // Same key -> same partition, matching murmur2; every value exactly once.
    const partitionOfKey = new Map<string, number>();
    for (const s of seen) {
      expect(partitionOfKey.get(s.key) ?? s.partition).toBe(s.partition);
      partitionOfKey.set(s.key, s.partition);
      expect(s.partition).toBe((murmur2(Buffer.from(s.key)) & 0x7fffffff) % PARTITIONS);
    }
    expect(new Set(seen.map((s) => s.value)).size).toBe(MESSAGES);
    // Offsets within a partition are dense and ordered.
    for (let p = 0; p < PARTITIONS; p++) {
      const offsets = seen.filter((s) => s.partition === p).map((s) => s.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }

    const ends = await endOffsets(kafka, topic);
    const admin = kafka.admin();
    await admin.connect();
    const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    await admin.disconnect();
    expect(committed[0]!.partitions.sort((a, b) => a.partition - b.partition).map((p) => Number(p.offset))).toEqual(ends);

    // New messages after the commit; a restarted consumer gets exactly those.
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: Array.from({ length: 30 }, (_, i) => ({ key: `late-${i}`, value: `late-${i}` })) });
    await producer.disconnect();
    const resumed: Seen[] = [];
    const second = consumer(group);
    await second.connect();
    await second.subscribe({ topic, fromBeginning: true });
    await second.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) resumed.push(toSeen(batch.partition, m));
      },
    });
    await waitFor(() => resumed.length >= 30, { timeoutMs: 10_000, message: '30 late messages consumed' });
    await second.disconnect();
    expect(resumed).toHaveLength(30);
    expect(resumed.every((s) => s.value.startsWith('late-'))).toBe(true);
    for (const s of resumed) expect(s.offset).toBeGreaterThanOrEqual(ends[s.partition]!);
  });

  scenario('splits partitions between two group members and hands them over when one leaves', async () => {
    const splitGroup = uniqueName('kjs-split');
    const assigned = new Map<Consumer, number[]>();
    const track = (c: Consumer): void => {
      c.on(c.events.GROUP_JOIN, (e) => assigned.set(c, [...(e.payload.memberAssignment[topic] ?? [])].sort()));
    };
    const a = consumer(splitGroup);
    const b = consumer(splitGroup);
    track(a);
    track(b);
    for (const c of [a, b]) {
      await c.connect();
      await c.subscribe({ topic, fromBeginning: false });
      await c.run({ eachBatch: async () => {} });
    }
    await waitFor(
      () => {
        const pa = assigned.get(a) ?? [];
        const pb = assigned.get(b) ?? [];
        return pa.length > 0 && pb.length > 0 && [...pa, ...pb].sort().join() === '0,1,2';
      },
      { timeoutMs: 15_000, message: 'partitions split between two members' },
    );
    const leftAt = Date.now();
    await b.disconnect();
    await waitFor(() => (assigned.get(a) ?? []).join() === '0,1,2', { timeoutMs: 5_000, message: 'member a owns all partitions' });
    expect(Date.now() - leftAt).toBeLessThan(5_000);
    await a.disconnect();
  });

  scenario('serves an idempotent producer: every message stored once', async () => {
    const idemTopic = uniqueName('kjs-idem');
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: idemTopic, numPartitions: 1 }] });
    await admin.disconnect();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let i = 0; i < 20; i++) {
      await producer.send({ topic: idemTopic, acks: -1, messages: Array.from({ length: 10 }, (_, j) => ({ key: 'k', value: `${i}-${j}` })) });
    }
    await producer.disconnect();
    expect(await endOffsets(kafka, idemTopic)).toEqual([200]);
  });

  // kafkajs wraps a broker's error (KafkaJSProtocolError) in its retrier's errors; the type is on a cause.
  const errorTypes = (error: unknown): string[] => {
    const types: string[] = [];
    for (let e = error as { type?: string; cause?: unknown } | undefined; e !== undefined && e !== null; e = e.cause as typeof e) {
      if (typeof e.type === 'string') types.push(e.type);
    }
    return types;
  };

  scenario('refuses a record batch above message.max.bytes (1048588 by default) with MESSAGE_TOO_LARGE and stores nothing', async () => {
    const limitTopic = uniqueName('kjs-limit');
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: limitTopic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 0 } });
    await producer.connect();
    try {
      const refused = await producer.send({ topic: limitTopic, acks: -1, messages: [{ value: Buffer.alloc(1_200_000, 'x') }] }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(errorTypes(refused)).toContain('MESSAGE_TOO_LARGE');
      expect(await endOffsets(kafka, limitTopic)).toEqual([0]);
      await producer.send({ topic: limitTopic, acks: -1, messages: [{ value: Buffer.alloc(900_000, 'y') }] });
      expect(await endOffsets(kafka, limitTopic)).toEqual([1]);
    } finally {
      await producer.disconnect();
    }
  });

  scenario('auto-creates an unknown topic with 1 partition when a producer writes to it (auto.create.topics.enable defaults to true)', async () => {
    const autoTopic = uniqueName('kjs-auto');
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic: autoTopic, acks: -1, messages: [{ value: 'first' }] });
    } finally {
      await producer.disconnect();
    }
    await waitFor(async () => (await endOffsets(kafka, autoTopic)).join() === '1', { timeoutMs: 10_000, message: 'auto-created topic holds the message' });
  });

  scenario('keeps topics, messages and committed offsets across a broker restart on the same data directory', async () => {
    const before = await endOffsets(kafka, topic);
    const committedOffsets = async (): Promise<number[]> => {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        return t!.partitions.sort((a, b) => a.partition - b.partition).map((p) => Number(p.offset));
      } finally {
        await admin.disconnect();
      }
    };
    const committedBefore = await committedOffsets();
    expect(committedBefore).toEqual(before);
    for (const c of consumers) await c.disconnect().catch(() => {});
    await broker.stop();
    broker = await startConformanceBroker(kind, dataDir);
    kafka = newKafka(broker);

    expect(await endOffsets(kafka, topic)).toEqual(before);
    expect(await committedOffsets()).toEqual(committedBefore);

    // Data is readable from the start, byte for byte.
    const replay: Seen[] = [];
    const fresh = consumer(uniqueName('kjs-replay'));
    await fresh.connect();
    await fresh.subscribe({ topic, fromBeginning: true });
    await fresh.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) replay.push(toSeen(batch.partition, m));
      },
    });
    const total = before.reduce((a, b) => a + b, 0);
    await waitFor(() => replay.length >= total, { timeoutMs: 20_000, message: `${total} messages replayed after restart` });
    await fresh.disconnect();
    expect(new Set(replay.map((s) => `${s.partition}/${s.offset}`)).size).toBe(total);
    expect(replay.filter((s) => s.value === 'value-0')).toHaveLength(1);
  });
});
