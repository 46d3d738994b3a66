/**
 * Wire-level edge cases of the embedded broker, driven over raw sockets with kafkajs's own
 * request encoders and response decoders (an independent implementation of the protocol):
 * Fetch long-poll timing, min/max bytes, unknown APIs, garbage frames, CRC checks,
 * idempotent-producer sequence checks, and the limits and defaults Apache Kafka applies
 * (message.max.bytes, auto.create.topics.enable).
 */
import { appendFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Socket, connect } from 'node:net';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KafkaBroker, startKafkaBroker } from '../../local/internal/kafka/index.ts';
import { uniqueName, waitFor } from './helpers.ts';

const require = createRequire(import.meta.url);
type Encodable = { apiKey: number; apiVersion: number; encode: () => Promise<unknown> };
type Decoder = { decode: (payload: Buffer) => Promise<any> };
const encodeRequest = require('kafkajs/src/protocol/request') as (r: {
  correlationId: number;
  clientId: string;
  request: Encodable;
}) => Promise<{ buffer: Buffer }>;
const Long = require('kafkajs/src/utils/long') as { fromValue: (v: string | number) => unknown };
const apiVersionsV0 = require('kafkajs/src/protocol/requests/apiVersions/v0/request') as () => Encodable;
const apiVersionsV0Response = require('kafkajs/src/protocol/requests/apiVersions/v0/response') as Decoder;
const produceV3 = require('kafkajs/src/protocol/requests/produce/v3/request') as (a: object) => Encodable;
const produceV3Response = require('kafkajs/src/protocol/requests/produce/v3/response') as Decoder;
const fetchV4 = require('kafkajs/src/protocol/requests/fetch/v4/request') as (a: object) => Encodable;
const fetchV4Response = require('kafkajs/src/protocol/requests/fetch/v4/response') as Decoder;
const initProducerIdV0 = require('kafkajs/src/protocol/requests/initProducerId/v0/request') as (a: object) => Encodable;
const initProducerIdV0Response = require('kafkajs/src/protocol/requests/initProducerId/v0/response') as Decoder;
const joinGroupV1 = require('kafkajs/src/protocol/requests/joinGroup/v1/request') as (a: object) => Encodable;
const joinGroupV1Response = require('kafkajs/src/protocol/requests/joinGroup/v1/response') as Decoder;
const syncGroupV0 = require('kafkajs/src/protocol/requests/syncGroup/v0/request') as (a: object) => Encodable;
const syncGroupV0Response = require('kafkajs/src/protocol/requests/syncGroup/v0/response') as Decoder;
const heartbeatV0 = require('kafkajs/src/protocol/requests/heartbeat/v0/request') as (a: object) => Encodable;
const heartbeatV0Response = require('kafkajs/src/protocol/requests/heartbeat/v0/response') as Decoder;
const describeGroupsV0 = require('kafkajs/src/protocol/requests/describeGroups/v0/request') as (a: object) => Encodable;
const describeGroupsV0Response = require('kafkajs/src/protocol/requests/describeGroups/v0/response') as Decoder;

/** A bare Kafka connection: frames requests, matches responses by correlation id. */
class WireClient {
  private buffered = Buffer.alloc(0);
  private readonly waiting = new Map<number, (payload: Buffer) => void>();
  private nextId = 1;
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, d]);
      while (this.buffered.length >= 4 && this.buffered.length >= 4 + this.buffered.readInt32BE(0)) {
        const size = this.buffered.readInt32BE(0);
        const frame = this.buffered.subarray(4, 4 + size);
        this.buffered = this.buffered.subarray(4 + size);
        this.waiting.get(frame.readInt32BE(0))?.(frame.subarray(4));
      }
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static open(port: number): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new WireClient(s)));
      s.once('error', reject);
    });
  }

  /** Sends a kafkajs-encoded request; resolves with the response payload (after the correlation id). */
  async send(request: Encodable): Promise<Buffer> {
    const correlationId = this.nextId++;
    const { buffer } = await encodeRequest({ correlationId, clientId: 'wire-test', request });
    return this.sendFrame(buffer, correlationId);
  }

  sendFrame(frame: Buffer, correlationId: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiting.set(correlationId, resolve);
      this.socket.write(frame);
    });
  }

  /** A frame with an arbitrary header (api key/version), as a client would send it. */
  rawRequest(apiKey: number, apiVersion: number, body: Buffer = Buffer.alloc(0)): { frame: Buffer; correlationId: number } {
    const correlationId = this.nextId++;
    const clientId = Buffer.from('wire-test');
    const header = Buffer.alloc(10 + clientId.length);
    header.writeInt16BE(apiKey, 0);
    header.writeInt16BE(apiVersion, 2);
    header.writeInt32BE(correlationId, 4);
    header.writeInt16BE(clientId.length, 8);
    clientId.copy(header, 10);
    const size = Buffer.alloc(4);
    size.writeInt32BE(header.length + body.length);
    return { frame: Buffer.concat([size, header, body]), correlationId };
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('embedded broker wire protocol', () => {
  let broker: KafkaBroker;
  let kafka: Kafka;
  const clients: WireClient[] = [];
  const open = async (): Promise<WireClient> => {
    const c = await WireClient.open(broker.port);
    clients.push(c);
    return c;
  };
  const createTopic = async (partitions = 1): Promise<string> => {
    const topic = uniqueName('wire');
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
    await admin.disconnect();
    return topic;
  };
  const produce = (topic: string, firstSequence: number, count: number, producerId = -1) =>
    produceV3({
      acks: -1,
      timeout: 1000,
      producerId: Long.fromValue(producerId),
      producerEpoch: 0,
      topicData: [
        {
          topic,
          partitions: [
            { partition: 0, firstSequence, messages: Array.from({ length: count }, (_, i) => ({ key: 'k', value: `v${firstSequence + i}` })) },
          ],
        },
      ],
    });
  const fetch = (topic: string, fetchOffset: number, o: { maxWaitTime: number; minBytes?: number; partitionMaxBytes?: number }) =>
    fetchV4({
      replicaId: -1,
      maxWaitTime: o.maxWaitTime,
      minBytes: o.minBytes ?? 1,
      maxBytes: 10 * 1024 * 1024,
      isolationLevel: 0,
      topics: [{ topic, partitions: [{ partition: 0, fetchOffset: String(fetchOffset), maxBytes: o.partitionMaxBytes ?? 1024 * 1024 }] }],
    });

  beforeAll(async () => {
    broker = await startKafkaBroker();
    kafka = new Kafka({ brokers: broker.brokers, clientId: 'wire-admin', logLevel: logLevel.NOTHING });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await broker?.stop();
  });

  it('answers ApiVersions with the APIs it serves', async () => {
    const c = await open();
    const res = await apiVersionsV0Response.decode(await c.send(apiVersionsV0()));
    expect(res.errorCode).toBe(0);
    const keys = (res.apiVersions as { apiKey: number }[]).map((a) => a.apiKey);
    for (const key of [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22]) expect(keys).toContain(key);
  });

  it('returns a parked Fetch as soon as data arrives, well before maxWait', async () => {
    const topic = await createTopic();
    const consumerConn = await open();
    const otherConn = await open();
    const maxWaitTime = 10_000;
    const started = Date.now();
    let answered = false;
    const response = consumerConn.send(fetch(topic, 0, { maxWaitTime })).then((payload) => {
      answered = true;
      return payload;
    });
    // A full round trip on another connection: the fetch has reached the broker and is parked.
    await otherConn.send(apiVersionsV0());
    expect(answered).toBe(false);
    await otherConn.send(produce(topic, 0, 3));
    const res = await fetchV4Response.decode(await response);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(maxWaitTime / 2);
    const partition = res.responses[0].partitions[0];
    expect(partition.errorCode).toBe(0);
    expect(partition.messages.map((m: { value: Buffer }) => m.value.toString())).toEqual(['v0', 'v1', 'v2']);
  });

  it('honours maxWait when no data comes, and minBytes / partition max bytes', async () => {
    const topic = await createTopic();
    const c = await open();
    let started = Date.now();
    const empty = await fetchV4Response.decode(await c.send(fetch(topic, 0, { maxWaitTime: 300 })));
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(empty.responses[0].partitions[0].messages).toEqual([]);

    // Three separate batches of 2 records each.
    for (let i = 0; i < 3; i++) await c.send(produce(topic, 0, 2));
    // minBytes above what is there: waits for maxWait, then returns what there is.
    started = Date.now();
    const waited = await fetchV4Response.decode(await c.send(fetch(topic, 0, { maxWaitTime: 400, minBytes: 1024 * 1024 })));
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(waited.responses[0].partitions[0].messages).toHaveLength(6);
    // A tiny partition max bytes still returns the first whole batch, and only that one.
    const one = await fetchV4Response.decode(await c.send(fetch(topic, 0, { maxWaitTime: 0, partitionMaxBytes: 1 })));
    expect(one.responses[0].partitions[0].messages).toHaveLength(2);
    // Fetching from the middle of the log starts at the batch holding that offset.
    const tail = await fetchV4Response.decode(await c.send(fetch(topic, 4, { maxWaitTime: 0 })));
    expect(tail.responses[0].partitions[0].messages.map((m: { offset: string }) => m.offset)).toEqual(['4', '5']);
    // Past the end is OFFSET_OUT_OF_RANGE.
    const past = await fetchV4Response.decode(await c.send(fetch(topic, 99, { maxWaitTime: 0 })));
    expect(past.responses[0].partitions[0].errorCode).toBe(1);
  });

  it('answers an unknown API key with an error response and keeps the connection usable', async () => {
    const c = await open();
    const { frame, correlationId } = c.rawRequest(999, 0);
    const payload = await c.sendFrame(frame, correlationId);
    expect(payload.readInt16BE(0)).toBe(35); // UNSUPPORTED_VERSION
    const unsupportedVersion = c.rawRequest(3, 99);
    expect((await c.sendFrame(unsupportedVersion.frame, unsupportedVersion.correlationId)).readInt16BE(0)).toBe(35);
    const res = await apiVersionsV0Response.decode(await c.send(apiVersionsV0()));
    expect(res.errorCode).toBe(0);
    expect(c.closed).toBe(false);
  });

  it('closes only the connection that sent a garbage frame', async () => {
    const good = await open();
    const bad = await open();
    const truncated = await open();
    bad.write(Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8]));
    // A well-framed Metadata v0 request whose topic array claims 1000 entries it does not hold.
    const body = Buffer.alloc(4);
    body.writeInt32BE(1000);
    const lying = truncated.rawRequest(3, 0, body);
    truncated.write(lying.frame);
    await waitFor(() => bad.closed && truncated.closed, { timeoutMs: 5_000, message: 'garbage connections closed' });
    const res = await apiVersionsV0Response.decode(await good.send(apiVersionsV0()));
    expect(res.errorCode).toBe(0);
    expect(good.closed).toBe(false);
  });

  it('rejects a batch whose CRC32C does not match with CORRUPT_MESSAGE and stores nothing', async () => {
    const topic = await createTopic();
    const c = await open();
    const { buffer } = await encodeRequest({ correlationId: 4242, clientId: 'wire-test', request: produce(topic, 0, 2) });
    // The last byte is the last record's header count; changing it breaks the CRC.
    const corrupted = Buffer.from(buffer);
    corrupted[corrupted.length - 1] = corrupted[corrupted.length - 1]! ^ 0x01;
    const res = await produceV3Response.decode(await c.sendFrame(corrupted, 4242));
    expect(res.topics[0].partitions[0].errorCode).toBe(2);
    const after = await fetchV4Response.decode(await c.send(fetch(topic, 0, { maxWaitTime: 0 })));
    expect(after.responses[0].partitions[0].highWatermark).toBe('0');
  });

  it('checks idempotent producer sequences: duplicates return the original offset, gaps are refused', async () => {
    const topic = await createTopic();
    const c = await open();
    const init = await initProducerIdV0Response.decode(await c.send(initProducerIdV0({ transactionalId: null, transactionTimeout: 1000 })));
    expect(init.errorCode).toBe(0);
    const producerId = Number(init.producerId);
    expect(producerId).toBeGreaterThanOrEqual(0);
    const send = async (seq: number, count: number) =>
      (await produceV3Response.decode(await c.send(produce(topic, seq, count, producerId)))).topics[0].partitions[0];

    await c.send(produce(topic, 0, 2)); // a non-idempotent batch first: offsets 0-1
    expect(await send(0, 5)).toMatchObject({ errorCode: 0, baseOffset: '2' });
    expect(await send(0, 5)).toMatchObject({ errorCode: 0, baseOffset: '2' }); // retried duplicate
    expect((await send(10, 5)).errorCode).toBe(45); // OUT_OF_ORDER_SEQUENCE_NUMBER
    expect(await send(5, 5)).toMatchObject({ errorCode: 0, baseOffset: '7' });
    const all = await fetchV4Response.decode(await c.send(fetch(topic, 0, { maxWaitTime: 0 })));
    expect(all.responses[0].partitions[0].highWatermark).toBe('12');
  });

  describe('group coordinator', () => {
    const join = async (c: WireClient, groupId: string, memberId: string, o: { sessionTimeout?: number; rebalanceTimeout?: number } = {}) =>
      joinGroupV1Response.decode(
        await c.send(
          joinGroupV1({
            groupId,
            sessionTimeout: o.sessionTimeout ?? 10_000,
            rebalanceTimeout: o.rebalanceTimeout ?? 500,
            memberId,
            protocolType: 'consumer',
            groupProtocols: [{ name: 'range', metadata: Buffer.from(memberId || 'new') }],
          }),
        ),
      );
    const sync = async (c: WireClient, groupId: string, generationId: number, memberId: string, assignment: { memberId: string; memberAssignment: Buffer }[]) =>
      syncGroupV0Response.decode(await c.send(syncGroupV0({ groupId, generationId, memberId, groupAssignment: assignment })));
    const heartbeat = async (c: WireClient, groupId: string, generationId: number, memberId: string): Promise<number> => {
      // The kafkajs decoder throws on error codes; read the code itself.
      const payload = await c.send(heartbeatV0({ groupId, groupGenerationId: generationId, memberId }));
      return payload.readInt16BE(0);
    };
    const describeGroup = async (c: WireClient, groupId: string) =>
      (await describeGroupsV0Response.decode(await c.send(describeGroupsV0({ groupIds: [groupId] })))).groups[0];

    it('rebalances when a member joins: members that rejoin stay, members that do not are dropped after the rebalance timeout', async () => {
      const groupId = uniqueName('wire-group');
      const [a, b, c] = [await open(), await open(), await open()];
      const ja = await join(a, groupId, '');
      expect(ja).toMatchObject({ errorCode: 0, generationId: 1 });
      expect(ja.leaderId).toBe(ja.memberId);
      const memberA = ja.memberId as string;
      const sa = await sync(a, groupId, 1, memberA, [{ memberId: memberA, memberAssignment: Buffer.from('all') }]);
      expect(sa.memberAssignment.toString()).toBe('all');
      expect(await heartbeat(a, groupId, 1, memberA)).toBe(0);

      // B joins; A learns of the rebalance from its heartbeat and rejoins: both are in generation 2.
      const joinB = join(b, groupId, '');
      await waitFor(async () => (await heartbeat(a, groupId, 1, memberA)) === 27, { timeoutMs: 2_000, message: 'REBALANCE_IN_PROGRESS on heartbeat' });
      const [ja2, jb] = await Promise.all([join(a, groupId, memberA), joinB]);
      expect(ja2).toMatchObject({ errorCode: 0, generationId: 2, leaderId: memberA });
      expect(jb).toMatchObject({ errorCode: 0, generationId: 2, leaderId: memberA });
      expect(ja2.members).toHaveLength(2);
      expect(jb.members).toHaveLength(0);
      const memberB = jb.memberId as string;
      const syncB = sync(b, groupId, 2, memberB, []);
      await sync(a, groupId, 2, memberA, [
        { memberId: memberA, memberAssignment: Buffer.from('p0') },
        { memberId: memberB, memberAssignment: Buffer.from('p1') },
      ]);
      expect((await syncB).memberAssignment.toString()).toBe('p1');
      const stable = await describeGroup(c, groupId);
      expect(stable.state).toBe('Stable');
      expect(stable.members).toHaveLength(2);

      // C joins; neither A nor B rejoins: after the rebalance timeout (500 ms) C is alone.
      const started = Date.now();
      const jc = await join(c, groupId, '');
      expect(jc).toMatchObject({ errorCode: 0, generationId: 3 });
      expect(jc.leaderId).toBe(jc.memberId);
      expect(jc.members).toHaveLength(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(await heartbeat(a, groupId, 2, memberA)).toBe(25); // UNKNOWN_MEMBER_ID
    });

    it('removes a member whose session expires without heartbeats', async () => {
      const groupId = uniqueName('wire-session');
      const a = await open();
      const ja = await join(a, groupId, '', { sessionTimeout: 1_000, rebalanceTimeout: 1_000 });
      await sync(a, groupId, ja.generationId, ja.memberId, [{ memberId: ja.memberId, memberAssignment: Buffer.from('x') }]);
      expect((await describeGroup(a, groupId)).state).toBe('Stable');
      const started = Date.now();
      await waitFor(async () => (await describeGroup(a, groupId)).state === 'Empty', { timeoutMs: 5_000, message: 'group empty after session expiry' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(await heartbeat(a, groupId, ja.generationId, ja.memberId)).toBe(25);
    });

    it('refuses session timeouts outside the broker limits', async () => {
      const a = await open();
      const payload = await a.send(
        joinGroupV1({ groupId: uniqueName('wire-bad'), sessionTimeout: 10, rebalanceTimeout: 10, memberId: '', protocolType: 'consumer', groupProtocols: [{ name: 'range' }] }),
      );
      expect(payload.readInt16BE(0)).toBe(26); // INVALID_SESSION_TIMEOUT
    });
  });

  it('serves ListOffsets by timestamp, acks=0 produce, ListGroups/DescribeGroups and DeleteTopics through kafkajs', async () => {
    const topic = await createTopic();
    const producer = kafka.producer();
    await producer.connect();
    const base = Date.now() - 60_000;
    for (let i = 0; i < 5; i++) {
      await producer.send({ topic, acks: 1, messages: [{ value: `t${i}`, timestamp: String(base + i * 1000) }, { value: `t${i}b`, timestamp: String(base + i * 1000 + 500) }] });
    }
    await producer.send({ topic, acks: 0, messages: [{ value: 'fire-and-forget' }] });
    await producer.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    await waitFor(async () => (await admin.fetchTopicOffsets(topic))[0]?.high === '11', { timeoutMs: 5_000, message: 'acks=0 message stored' });
    // First record with timestamp >= base + 2500 is the second record of the third batch: offset 5.
    expect((await admin.fetchTopicOffsetsByTimestamp(topic, base + 2500))[0]?.offset).toBe('5');
    expect((await admin.fetchTopicOffsetsByTimestamp(topic, base + 2000))[0]?.offset).toBe('4');
    expect((await admin.fetchTopicOffsets(topic))[0]).toMatchObject({ low: '0', high: '11' });

    const groupId = uniqueName('wire-listed');
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let consumed = 0;
    await consumer.run({ eachMessage: async () => void consumed++ });
    await waitFor(() => consumed >= 11, { timeoutMs: 10_000, message: '11 messages consumed' });
    expect((await admin.listGroups()).groups.map((g) => g.groupId)).toContain(groupId);
    const described = (await admin.describeGroups([groupId])).groups[0]!;
    expect(described).toMatchObject({ state: 'Stable', protocolType: 'consumer' });
    expect(described.members).toHaveLength(1);
    await consumer.disconnect();

    await admin.deleteTopics({ topics: [topic] });
    await expect(admin.fetchTopicMetadata({ topics: [topic] })).rejects.toMatchObject({ type: 'UNKNOWN_TOPIC_OR_PARTITION' });
    await admin.disconnect();
  });

  describe('limits and defaults of Apache Kafka', () => {
    // kafkajs wraps a broker's error (KafkaJSProtocolError) in its retrier's errors; the type is on a cause.
    const errorTypes = (error: unknown): string[] => {
      const types: string[] = [];
      for (let e = error as { type?: string; cause?: unknown } | undefined; e !== undefined && e !== null; e = e.cause as typeof e) {
        if (typeof e.type === 'string') types.push(e.type);
      }
      return types;
    };
    const highWatermark = async (k: Kafka, topic: string): Promise<string | undefined> => {
      const admin = k.admin();
      await admin.connect();
      try {
        return (await admin.fetchTopicOffsets(topic))[0]?.high;
      } finally {
        await admin.disconnect();
      }
    };

    // The defaults (message.max.bytes, auto-create) are conformance scenarios, run on both brokers.
    it('applies a maxMessageBytes given at start instead of the default', async () => {
      const own = await startKafkaBroker({ maxMessageBytes: 2_000 });
      try {
        const k = new Kafka({ brokers: own.brokers, clientId: 'small-limit', logLevel: logLevel.NOTHING });
        const producer = k.producer({ retry: { retries: 0 } });
        await producer.connect();
        try {
          const topic = uniqueName('wire-small');
          await producer.send({ topic, acks: -1, messages: [{ value: Buffer.alloc(1_000, 'a') }] });
          const refused = await producer.send({ topic, acks: -1, messages: [{ value: Buffer.alloc(3_000, 'b') }] }).then(
            () => undefined,
            (error: unknown) => error,
          );
          expect(errorTypes(refused)).toContain('MESSAGE_TOO_LARGE');
          expect(await highWatermark(k, topic)).toBe('1');
        } finally {
          await producer.disconnect();
        }
      } finally {
        await own.stop();
      }
    });

    it('refuses a producer writing to an unknown topic with UNKNOWN_TOPIC_OR_PARTITION when autoCreateTopics is false', async () => {
      const own = await startKafkaBroker({ autoCreateTopics: false });
      try {
        const k = new Kafka({ brokers: own.brokers, clientId: 'no-auto-create', logLevel: logLevel.NOTHING });
        const producer = k.producer({ retry: { retries: 0 } });
        await producer.connect();
        try {
          const refused = await producer.send({ topic: uniqueName('wire-no-auto'), acks: -1, messages: [{ value: 'lost' }] }).then(
            () => undefined,
            (error: unknown) => error,
          );
          expect(errorTypes(refused)).toContain('UNKNOWN_TOPIC_OR_PARTITION');
        } finally {
          await producer.disconnect();
        }
      } finally {
        await own.stop();
      }
    });
  });

  it('drops a torn write at the end of a partition log on restart and keeps appending after the last whole batch', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tributary-kafka-torn-'));
    let own = await startKafkaBroker({ dataDir });
    try {
      const topic = uniqueName('wire-torn');
      const produceSome = async (b: KafkaBroker, values: string[]): Promise<void> => {
        const k = new Kafka({ brokers: b.brokers, clientId: 'torn', logLevel: logLevel.NOTHING });
        const admin = k.admin();
        await admin.connect();
        await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
        await admin.disconnect();
        const p = k.producer();
        await p.connect();
        await p.send({ topic, acks: -1, messages: values.map((value) => ({ value })) });
        await p.disconnect();
      };
      await produceSome(own, ['a', 'b', 'c']);
      await own.stop();
      const logsDir = join(dataDir, 'logs');
      const [topicDir] = readdirSync(logsDir);
      appendFileSync(join(logsDir, topicDir!, '0.log'), Buffer.alloc(30, 7)); // half a batch header
      own = await startKafkaBroker({ dataDir });
      await produceSome(own, ['d', 'e']);
      await own.stop();
      own = await startKafkaBroker({ dataDir });
      const c = await WireClient.open(own.port);
      clients.push(c);
      const res = await fetchV4Response.decode(await c.send(fetch(topic, 0, { maxWaitTime: 0 })));
      const partition = res.responses[0].partitions[0];
      expect(partition.highWatermark).toBe('5');
      expect(partition.messages.map((m: { value: Buffer }) => m.value.toString())).toEqual(['a', 'b', 'c', 'd', 'e']);
    } finally {
      await own.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
