/**
 * Conformance of the embedded broker with @platformatic/kafka 1.35, a second client that
 * speaks the newer, flexible protocol versions (Metadata v12, Fetch v13 with topic ids,
 * JoinGroup v6, OffsetFetch v8 ...): topics, keyed produce with acks=-1, consumer groups,
 * idempotent producers and a broker restart on the same data directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Admin,
  Consumer,
  type Message,
  type MessagesStream,
  ProduceAcks,
  Producer,
  stringDeserializers,
  stringSerializers,
} from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConformanceBroker, conformanceBrokerKinds, startConformanceBroker } from './fixtures/conformance-brokers.ts';
import { murmur2 } from './fixtures/murmur2.ts';
import { uniqueName, waitFor } from './helpers.ts';

// @platformatic/kafka's default partitioner is (murmur2 >>> 0) % n; kafkajs's is (murmur2 & 0x7fffffff) % n.
const PARTITIONS = 3;
const MESSAGES = 10_000;
const KEYS = 250;
type Msg = Message<string, string, string, string>;
type Stream = MessagesStream<string, string, string, string>;

describe.each(conformanceBrokerKinds())('$kind broker with @platformatic/kafka', ({ kind, skip }) => {
  if (skip) console.log(`[conformance] apache broker skipped: ${skip}`);
  // Skipped, not dropped, so a run without Apache Kafka shows what it did not check.
  const scenario = skip ? it.skip : it;
  let dataDir: string;
  let broker: ConformanceBroker;
  const topic = uniqueName('plt-orders');
  const group = uniqueName('plt-group');
  const closers: (() => Promise<unknown>)[] = [];

  const admin = (): Admin => {
    const a = new Admin({ clientId: 'plt-admin', bootstrapBrokers: broker.brokers, retries: 2 });
    closers.push(() => a.close());
    return a;
  };
  const producer = (idempotent = false): Producer<string, string, string, string> => {
    const p = new Producer({ clientId: 'plt-producer', bootstrapBrokers: broker.brokers, serializers: stringSerializers, idempotent, retries: 2 });
    closers.push(() => p.close());
    return p;
  };
  const consumer = (groupId: string): Consumer<string, string, string, string> => {
    const c = new Consumer({
      groupId,
      clientId: 'plt-consumer',
      bootstrapBrokers: broker.brokers,
      deserializers: stringDeserializers,
      maxWaitTime: 200,
      sessionTimeout: 6000,
      rebalanceTimeout: 6000,
      heartbeatInterval: 200,
      retries: 2,
    });
    closers.push(async () => c.close(true));
    return c;
  };
  const endOffsets = async (t: string): Promise<number[]> => {
    const [listed] = await admin().listOffsets({
      topics: [{ name: t, partitions: Array.from({ length: PARTITIONS }, (_, i) => ({ partitionIndex: i, timestamp: -1n })) }],
    });
    return listed!.partitions.sort((a, b) => a.partitionIndex - b.partitionIndex).map((p) => Number(p.offset));
  };
  const committedOffsets = async (groupId: string): Promise<number[]> => {
    const [g] = await admin().listConsumerGroupOffsets({ groups: [groupId] });
    const parts = g!.topics.find((t) => t.name === topic)!.partitions;
    return parts.sort((a, b) => a.partitionIndex - b.partitionIndex).map((p) => Number(p.committedOffset));
  };
  const collect = (stream: Stream, into: Msg[]): void => {
    stream.on('data', (m: Msg) => into.push(m));
  };

  beforeAll(async () => {
    if (skip) return;
    dataDir = await mkdtemp(join(tmpdir(), 'tributary-kafka-plt-'));
    broker = await startConformanceBroker(kind, dataDir);
  });

  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    await broker?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  scenario('creates a 3-partition topic and refuses to create it twice', async () => {
    const a = admin();
    const [created] = await a.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 });
    expect(created).toMatchObject({ name: topic, partitions: PARTITIONS });
    const meta = await a.metadata({ topics: [topic] });
    expect(meta.topics.get(topic)?.partitionsCount).toBe(PARTITIONS);
    await expect(a.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 })).rejects.toThrow();
  });

  scenario('stores 10k keyed messages produced with acks=-1, partitioned by the default partitioner', async () => {
    // Idempotent, so a request retried after a timeout on a loaded machine is stored once (a
    // plain producer's retry may store a batch twice, which is Kafka's at-least-once, not a
    // broker difference); the counts below then hold exactly.
    const p = producer(true);
    for (let start = 0; start < MESSAGES; start += 1000) {
      await p.send({
        acks: ProduceAcks.ALL,
        messages: Array.from({ length: 1000 }, (_, i) => ({ topic, key: `key-${(start + i) % KEYS}`, value: `value-${start + i}` })),
      });
    }
    const expected = [0, 0, 0];
    for (let i = 0; i < MESSAGES; i++) expected[(murmur2(Buffer.from(`key-${i % KEYS}`)) >>> 0) % PARTITIONS]!++;
    expect(await endOffsets(topic)).toEqual(expected);
  });

  scenario('consumes every message in a group, commits, and a restarted consumer resumes at the commit', async () => {
    const seen: Msg[] = [];
    const first = consumer(group);
    const stream = await first.consume({ topics: [topic], mode: 'earliest', autocommit: false });
    collect(stream, seen);
    await waitFor(() => seen.length >= MESSAGES, { timeoutMs: 20_000, message: `${MESSAGES} messages consumed` });
    // Commit the last message of each partition (commits its offset + 1).
    for (let p = 0; p < PARTITIONS; p++) await seen.filter((m) => m.partition === p).at(-1)!.commit();
    await first.close(true);

    for (const m of seen) expect(m.partition).toBe((murmur2(Buffer.from(m.key)) >>> 0) % PARTITIONS);
    expect(new Set(seen.map((m) => m.value)).size).toBe(MESSAGES);
    const ends = await endOffsets(topic);
    expect(await committedOffsets(group)).toEqual(ends);

    await producer().send({
      acks: ProduceAcks.ALL,
      messages: Array.from({ length: 30 }, (_, i) => ({ topic, key: `late-${i}`, value: `late-${i}` })),
    });
    const resumed: Msg[] = [];
    const second = consumer(group);
    collect(await second.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false }), resumed);
    await waitFor(() => resumed.length >= 30, { timeoutMs: 10_000, message: '30 late messages consumed' });
    await second.close(true);
    expect(resumed).toHaveLength(30);
    expect(resumed.every((m) => m.value.startsWith('late-'))).toBe(true);
    for (const m of resumed) expect(Number(m.offset)).toBeGreaterThanOrEqual(ends[m.partition]!);
  });

  scenario('splits partitions between two group members and hands them over when one leaves', async () => {
    const splitGroup = uniqueName('plt-split');
    const a = consumer(splitGroup);
    const b = consumer(splitGroup);
    const owned = (c: Consumer<string, string, string, string>): number[] =>
      [...(c.assignments?.find((x) => x.topic === topic)?.partitions ?? [])].sort();
    await a.consume({ topics: [topic], mode: 'latest', autocommit: false });
    await b.consume({ topics: [topic], mode: 'latest', autocommit: false });
    await waitFor(
      () => owned(a).length > 0 && owned(b).length > 0 && [...owned(a), ...owned(b)].sort().join() === '0,1,2',
      { timeoutMs: 15_000, message: 'partitions split between two members' },
    );
    const leftAt = Date.now();
    await b.close(true);
    await waitFor(() => owned(a).join() === '0,1,2', { timeoutMs: 5_000, message: 'member a owns all partitions' });
    expect(Date.now() - leftAt).toBeLessThan(5_000);
    await a.close(true);
  });

  scenario('serves an idempotent producer: every message stored once', async () => {
    const idemTopic = uniqueName('plt-idem');
    await admin().createTopics({ topics: [idemTopic], partitions: 1, replicas: 1 });
    const p = producer(true);
    for (let i = 0; i < 20; i++) {
      const result = await p.send({ messages: Array.from({ length: 10 }, (_, j) => ({ topic: idemTopic, key: 'k', value: `${i}-${j}` })) });
      expect(Number(result.offsets?.[0]?.offset)).toBe(i * 10);
    }
    const [listed] = await admin().listOffsets({ topics: [{ name: idemTopic, partitions: [{ partitionIndex: 0, timestamp: -1n }] }] });
    expect(Number(listed!.partitions[0]!.offset)).toBe(200);
  });

  scenario('keeps topics, messages and committed offsets across a broker restart on the same data directory', async () => {
    const before = await endOffsets(topic);
    const committedBefore = await committedOffsets(group);
    for (const close of closers.splice(0).reverse()) await close().catch(() => {});
    await broker.stop();
    broker = await startConformanceBroker(kind, dataDir);

    expect(await endOffsets(topic)).toEqual(before);
    expect(await committedOffsets(group)).toEqual(committedBefore);
    const replay: Msg[] = [];
    collect(await consumer(uniqueName('plt-replay')).consume({ topics: [topic], mode: 'earliest', autocommit: false }), replay);
    const total = before.reduce((a, b) => a + b, 0);
    await waitFor(() => replay.length >= total, { timeoutMs: 20_000, message: `${total} messages replayed after restart` });
    expect(new Set(replay.map((m) => `${m.partition}/${m.offset}`)).size).toBe(total);
    expect(replay.filter((m) => m.value === 'value-0')).toHaveLength(1);
  });
});
