/**
 * Invariants 4 and 6 (docs/architecture.md) through the real engine, end to end: Kafka -> engine
 * (in process) -> DynamoDB view -> Lambda Invoke API -> a function in this test, observed in
 * memory.
 *
 * - order: 20k events over 500 keys arrive at the function in version order per key, with no
 *   gaps (each `before` is the previous `after`), ending at the view state and the reference fold;
 *   and the same when the view key differs from the Kafka key, so that batches of several
 *   partitions write one item (an edge-triggered when() must see each crossing once);
 * - failures: transient function failures are retried until delivered (no dead letters); a key
 *   the function always fails goes to the dead-letter topic while every other key is delivered;
 * - backpressure: with a slow function the engine stops fetching instead of buffering the backlog.
 *
 * The engine runs in this process (startEngine) against the shared broker and DynamoDB Local and
 * a Lambda endpoint this file starts, so every invocation is seen here.
 */
import { isDeepStrictEqual } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { Kafka, Producer } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine, type EngineOptions } from '../../engine/index.ts';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import {
  createViewReader,
  defineApp,
  defineTrigger,
  defineView,
  type App,
  type Change,
  type RetryOptions,
  type View,
  type ViewChangeEvent,
} from '../../sdk/index.ts';
import { connectProducer, seededRandom, testKafka } from './fixtures/engine-support.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, stack, uniqueName, waitFor } from './helpers.ts';

const PARTITIONS = 3;

/** A source event: view key `k` (also the Kafka key), a number to sum, its production sequence. */
interface TestEvent {
  readonly k: string;
  readonly n: number;
  readonly seq: number;
  /** Padding, to give the backpressure test a backlog that weighs something in memory. */
  readonly pad?: string;
}

/** View state: per key how many events, their sum, and the sequence number of the last one. */
interface Totals {
  readonly count: number;
  readonly sum: number;
  readonly last: number;
}

const INITIAL: Totals = { count: 0, sum: 0, last: -1 };

function totalsView(topic: string): View<TestEvent, Totals> {
  return defineView({
    name: 'totals',
    source: topic,
    key: (e: TestEvent) => e.k,
    initial: (): Totals => ({ ...INITIAL }),
    reduce: (s: Totals, e: TestEvent): Totals => ({ count: s.count + 1, sum: s.sum + e.n, last: e.seq }),
  });
}

/** `count` random events over `keys` keys named `k0..k{keys-1}`. */
function randomEvents(count: number, keys: number, seed: number, pad?: string): TestEvent[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, seq) => ({
    k: `k${Math.floor(random() * keys)}`,
    n: Math.floor(random() * 1000),
    seq,
    ...(pad === undefined ? {} : { pad }),
  }));
}

/** The expected final state of every key, folded by hand in production (= partition) order. */
function referenceFold(events: readonly TestEvent[]): Map<string, Totals> {
  const out = new Map<string, Totals>();
  for (const e of events) {
    const s = out.get(e.k) ?? INITIAL;
    out.set(e.k, { count: s.count + 1, sum: s.sum + e.n, last: e.seq });
  }
  return out;
}

/**
 * Produces events keyed by view key, in small sends: each send is one record batch per
 * partition, so the engine's consumer batches stay small and every key gets many versions.
 */
async function produce(producer: Producer, topic: string, events: readonly TestEvent[], perSend: number): Promise<void> {
  for (let i = 0; i < events.length; i += perSend) {
    await producer.send({
      topic,
      acks: -1,
      messages: events.slice(i, i + perSend).map((e) => ({ key: e.k, value: JSON.stringify(e) })),
    });
  }
}

/**
 * What the test function acknowledged, per key in arrival order, and what it saw going wrong
 * while it was called (two changes of one key in one invocation, concurrency above the bound).
 */
class Received {
  readonly byKey = new Map<string, Change<Totals>[]>();
  readonly violations: string[] = [];
  invocations = 0;
  inFlight = 0;
  maxInFlight = 0;
  total = 0;

  /** Call at the start of an invocation. */
  enter(event: ViewChangeEvent<Totals>): void {
    this.invocations++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const keys = new Set<string>();
    for (const change of event.changes) {
      if (keys.has(change.key)) this.violations.push(`two changes of key ${change.key} in one invocation`);
      keys.add(change.key);
    }
  }

  leave(): void {
    this.inFlight--;
  }

  /** The function acknowledged `change` (returned without reporting it as failed). */
  ack(change: Change<Totals>): void {
    const list = this.byKey.get(change.key) ?? [];
    list.push(change);
    this.byKey.set(change.key, list);
    this.total++;
  }

  lastAfter(key: string): Totals | undefined {
    const list = this.byKey.get(key);
    return list?.[list.length - 1]?.after;
  }
}

/**
 * Invariant 4 on what a function received for each key, in arrival order: versions strictly
 * increase (a repeat of an already-seen version is allowed only as an identical redelivery),
 * and no change is skipped: each `before` is the previous change's `after` (the first change's
 * `before` is undefined or the initial state). `deadLettered` changes count as delivered for
 * the chain (the next change starts from them). Returns one line per violation.
 */
function orderViolations(received: Received, deadLettered: ReadonlyMap<string, Change<Totals>[]> = new Map()): string[] {
  const problems: string[] = [];
  const keys = new Set([...received.byKey.keys(), ...deadLettered.keys()]);
  for (const key of keys) {
    const chain = [
      ...(received.byKey.get(key) ?? []).map((change) => ({ change, how: 'received' })),
      ...(deadLettered.get(key) ?? []).map((change) => ({ change, how: 'dead-lettered' })),
    ];
    // Dead letters are merged in by version: the function never saw them, so arrival order is moot.
    if (deadLettered.has(key)) chain.sort((a, b) => a.change.version - b.change.version);
    const byVersion = new Map<number, Change<Totals>>();
    let previous: Change<Totals> | undefined;
    for (const { change, how } of chain) {
      const seen = byVersion.get(change.version);
      if (seen !== undefined) {
        const same = (c: Change<Totals>) => ({ before: c.before, after: c.after, idempotencyKey: c.idempotencyKey });
        if (!isDeepStrictEqual(same(seen), same(change))) {
          problems.push(`${key} v${change.version} ${how} again with different content: ${JSON.stringify(same(seen))} then ${JSON.stringify(same(change))}`);
        }
        continue;
      }
      if (previous !== undefined && change.version <= previous.version) {
        problems.push(`${key}: v${change.version} ${how} after v${previous.version}`);
      }
      const expectedBefore = previous?.after;
      const beforeOk =
        previous === undefined
          ? change.before === undefined || isDeepStrictEqual(change.before, INITIAL)
          : isDeepStrictEqual(change.before, expectedBefore);
      if (!beforeOk) {
        problems.push(
          `${key} v${change.version} (${how}): before ${JSON.stringify(change.before)} is not the after of the previous change v${previous?.version} ${JSON.stringify(expectedBefore)}`,
        );
      }
      if (change.after.count <= (previous?.after.count ?? 0)) {
        problems.push(`${key} v${change.version}: count ${change.after.count} does not grow past ${previous?.after.count ?? 0}`);
      }
      byVersion.set(change.version, change);
      previous = change;
    }
  }
  return problems;
}

/** Everything on a topic from the beginning, as parsed JSON values, once `count` arrived. */
async function readTopic(kafka: Kafka, topic: string, count: number, timeoutMs: number): Promise<Record<string, any>[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('dlq-reader'), maxWaitTimeInMs: 200 });
  const values: Record<string, any>[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        values.push(JSON.parse(message.value!.toString('utf8')));
      },
    });
    await waitFor(() => values.length >= count, { timeoutMs, message: `${count} records on "${topic}"` });
  } finally {
    await consumer.disconnect();
  }
  return values;
}

/** Records on a topic: the sum of its partitions' high watermarks. */
async function topicSize(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Live memory after a full garbage collection: heap plus Buffers (record values are Buffers,
 * outside the heap). Without a collection `heapUsed` mostly measures garbage not yet collected.
 */
function liveMemoryBytes(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

describe('triggers through the engine (Kafka -> engine -> view -> Lambda)', () => {
  const kafka = testKafka('triggers-engine-test');
  const dynamodb = dynamoClient();
  let endpoint: LambdaEndpoint;
  let lambda: LambdaClient;
  let producer: Producer;
  const engines: Engine[] = [];
  let logs: string[] = [];

  beforeAll(async () => {
    endpoint = await startLambdaEndpoint();
    lambda = lambdaClient(endpoint.endpoint);
    producer = await connectProducer(kafka);
  });

  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop()));
    logs = [];
  });

  afterAll(async () => {
    await producer?.disconnect();
    lambda?.destroy();
    await endpoint?.stop();
    dynamodb.destroy();
  });

  /** A fresh topic, table and app (its own group and dead-letter topic) for one test. */
  async function setUp(prefix: string): Promise<{ topic: string; table: string; appName: string; fn: string }> {
    const topic = uniqueName(`${prefix}-src`);
    const table = uniqueName(`${prefix}-views`);
    await Promise.all([createTopic(stack().kafkaBrokers, topic, PARTITIONS), createTable(table, dynamodb)]);
    return { topic, table, appName: uniqueName(prefix), fn: uniqueName(`${prefix}Fn`) };
  }

  async function runEngine(app: App, table: string, options: Partial<EngineOptions> = {}): Promise<Engine> {
    const engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'triggers-engine', brokers: stack().kafkaBrokers },
      dynamodb,
      lambda,
      groupId: uniqueName(`${app.name}-group`),
      healthPort: null,
      logLevel: 'warn',
      logSink: (line) => logs.push(line),
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 1_000,
      ...options,
    });
    engines.push(engine);
    await engine.ready;
    return engine;
  }

  /** The engine's last log lines, for failure messages. */
  const tail = () => logs.slice(-20).join('\n');

  it('delivers 20k events over 500 keys in version order per key, without gaps, ending at the view state and the reference', async () => {
    const EVENTS = 20_000;
    const KEYS = 500;
    const { topic, table, appName, fn } = await setUp('trg-order');
    const view = totalsView(topic);
    // Coalesced: many versions per key through many consumer batches, in few invocations (this
    // test asserts that not one invocation fails). 'every' is triggers-every.test.ts.
    const trigger = defineTrigger({ view, function: fn, name: 'totalsChanged', changes: 'coalesced' });
    const app = defineApp({ name: appName, views: [view], triggers: [trigger] });
    const received = new Received();
    endpoint.register(fn, async (event: ViewChangeEvent<Totals>) => {
      received.enter(event);
      try {
        // Yield once: invocations overlap, as they would on Lambda.
        await new Promise((resolve) => setImmediate(resolve));
        for (const change of event.changes) received.ack(change);
      } finally {
        received.leave();
      }
    });

    // Small fetches: many consumer batches, so every key goes through many versions.
    const engine = await runEngine(app, table, { maxBytesPerPartition: 32 * 1024 });
    const events = randomEvents(EVENTS, KEYS, 4_2026);
    const reference = referenceFold(events);
    expect(reference.size).toBe(KEYS);
    const started = Date.now();
    await produce(producer, topic, events, 300);
    const producedMs = Date.now() - started;

    await waitFor(() => [...reference].every(([key, state]) => isDeepStrictEqual(received.lastAfter(key), state)), {
      timeoutMs: 60_000,
      intervalMs: 200,
      message: 'the final state of every key at the function',
    }).catch((error: Error) => {
      throw new Error(`${error.message}; ${received.total} changes received; engine log:\n${tail()}`);
    });

    expect(received.violations).toEqual([]);
    expect(orderViolations(received)).toEqual([]);
    const deliveredMs = Date.now() - started;
    expect(received.maxInFlight).toBeLessThanOrEqual(trigger.concurrency);
    // The view in DynamoDB (consistent read) ends where the function's last change ended.
    const keys = [...reference.keys()];
    const stored = await createViewReader({ dynamodb, tableName: table }).getMany(view, keys, { consistent: true });
    keys.forEach((key, i) => {
      expect(stored[i]?.state, `view state of ${key}`).toEqual(reference.get(key));
      expect(received.lastAfter(key), `last change of ${key}`).toEqual(stored[i]?.state);
      expect(received.byKey.get(key)?.at(-1)?.version, `last version of ${key}`).toBe(stored[i]?.version);
    });
    await waitFor(() => engine.stats().eventsApplied === EVENTS, { message: 'the engine to count every event applied' });
    const stats = engine.stats();
    expect(stats.deadLetters).toBe(0);
    expect(stats.triggerErrors).toBe(0);
    // Many versions per key went through (the ordering was actually exercised), batched across keys.
    const versionsPerKey = keys.map((key) => received.byKey.get(key)!.length);
    expect(Math.min(...versionsPerKey)).toBeGreaterThan(3);
    expect(received.invocations).toBeLessThan(received.total / 10);
    console.log(
      `[triggers-engine] order: ${EVENTS} events produced in ${producedMs} ms, all delivered after ${deliveredMs} ms, ${stats.batches} engine batches, ${stats.writes} writes, ${received.total} changes in ${received.invocations} invocations, versions per key ${Math.min(...versionsPerKey)}..${Math.max(...versionsPerKey)}`,
    );
  });

  it('keeps each change starting where the previous delivered one ended when several partitions write one view key', async () => {
    // Invariant 1 allows a view key unlike the Kafka key: then batches of different partitions
    // write the same item concurrently, and invariant 4 still promises `before` = the state last
    // delivered. An edge-triggered when() (count crosses 100) relies on it to fire once.
    const EVENTS = 6_000;
    const KAFKA_KEYS = 500;
    const BUCKETS = 20;
    const { topic, table, appName, fn } = await setUp('trg-cross');
    const bucketOf = (e: TestEvent) => `b${Number(e.k.slice(1)) % BUCKETS}`;
    const view = defineView({
      name: 'buckets',
      source: topic,
      key: bucketOf,
      initial: (): Totals => ({ ...INITIAL }),
      // Order-independent across partitions, so a reference fold can predict it.
      reduce: (s: Totals, e: TestEvent): Totals => ({ count: s.count + 1, sum: s.sum + e.n, last: Math.max(s.last, e.seq) }),
    });
    const trigger = defineTrigger({ view, function: fn, name: 'bucketChanged' });
    const app = defineApp({ name: appName, views: [view], triggers: [trigger] });
    const received = new Received();
    endpoint.register(fn, async (event: ViewChangeEvent<Totals>) => {
      received.enter(event);
      try {
        await new Promise((resolve) => setImmediate(resolve));
        for (const change of event.changes) received.ack(change);
      } finally {
        received.leave();
      }
    });

    await runEngine(app, table, { maxBytesPerPartition: 16 * 1024 });
    const events = randomEvents(EVENTS, KAFKA_KEYS, 21_2026);
    const reference = new Map<string, Totals>();
    for (const e of events) {
      const s = reference.get(bucketOf(e)) ?? INITIAL;
      reference.set(bucketOf(e), { count: s.count + 1, sum: s.sum + e.n, last: Math.max(s.last, e.seq) });
    }
    await produce(producer, topic, events, 200);
    await waitFor(() => [...reference].every(([key, state]) => isDeepStrictEqual(received.lastAfter(key), state)), {
      timeoutMs: 45_000,
      intervalMs: 200,
      message: 'the final state of every bucket at the function',
    }).catch((error: Error) => {
      throw new Error(`${error.message}; engine log:\n${tail()}`);
    });
    const stored = await createViewReader({ dynamodb, tableName: table }).getMany(view, [...reference.keys()], { consistent: true });
    expect(stored.map((s) => s?.state)).toEqual([...reference.values()]);
    expect(received.violations).toEqual([]);

    // What an edge-triggered function sees: each hundred crossed by exactly one change.
    const crossings: string[] = [];
    for (const [key, list] of received.byKey) {
      for (let threshold = 100; threshold <= reference.get(key)!.count; threshold += 100) {
        const firing = list.filter((c) => (c.before?.count ?? 0) < threshold && c.after.count >= threshold);
        if (firing.length !== 1) crossings.push(`${key} crossed ${threshold} in ${firing.length} changes (${firing.map((c) => `v${c.version} ${c.before?.count ?? 0}->${c.after.count}`).join(', ')})`);
      }
    }
    const violations = orderViolations(received);
    const chains = [...received.byKey.keys()].slice(0, 2).map((key) =>
      `${key}: ${received.byKey.get(key)!.slice(0, 8).map((c) => `v${c.version} ${c.before?.count ?? '-'}->${c.after.count}`).join(' | ')}`,
    );
    expect(
      {
        outOfOrder: violations.filter((v) => v.includes(' received after v')).length,
        violations: violations.slice(0, 5),
        count: violations.length,
        crossings: crossings.slice(0, 5),
        crossingCount: crossings.length,
      },
      `changes per bucket as received (version before.count->after.count):\n${chains.join('\n')}`,
    ).toEqual({ outOfOrder: 0, violations: [], count: 0, crossings: [], crossingCount: 0 });
  });

  describe('function failures', () => {
    const RETRY: RetryOptions = { maxAttempts: 3, initialBackoffMs: 20, maxBackoffMs: 100 };

    it('retries transient failures of 10% of keys (thrown and partial batch failures) until every change is delivered, no dead letters', async () => {
      const EVENTS = 4_000;
      const KEYS = 200;
      const { topic, table, appName, fn } = await setUp('trg-flaky');
      const view = totalsView(topic);
      const trigger = defineTrigger({ view, function: fn, name: 'totalsChanged', batchSize: 25, concurrency: 4, retry: RETRY });
      const app = defineApp({ name: appName, views: [view], triggers: [trigger] });
      // 10% of the keys fail the first two invocations they appear in: half make the whole
      // invocation throw, half are reported in batchItemFailures.
      const throwing = new Set(Array.from({ length: KEYS / 20 }, (_, i) => `k${i * 20}`));
      const reporting = new Set(Array.from({ length: KEYS / 20 }, (_, i) => `k${i * 20 + 10}`));
      // Per flaky key: invocations that held it (throwing keys) or that reported it (the others).
      const failedFor = new Map<string, number>();
      const failures = { thrown: 0, reported: 0 };
      const received = new Received();
      endpoint.register(fn, async (event: ViewChangeEvent<Totals>) => {
        received.enter(event);
        try {
          const throwers = event.changes.filter((c) => throwing.has(c.key));
          for (const change of throwers) failedFor.set(change.key, (failedFor.get(change.key) ?? 0) + 1);
          const thrower = throwers.find((c) => failedFor.get(c.key)! <= 2);
          if (thrower !== undefined) {
            failures.thrown++;
            throw Object.assign(new Error(`transient failure on ${thrower.idempotencyKey}`), { name: 'TransientError' });
          }
          const failed: { itemIdentifier: string }[] = [];
          for (const change of event.changes) {
            const reports = reporting.has(change.key) ? (failedFor.get(change.key) ?? 0) : 2;
            if (reports < 2) {
              failedFor.set(change.key, reports + 1);
              failures.reported++;
              failed.push({ itemIdentifier: change.idempotencyKey });
            } else {
              received.ack(change);
            }
          }
          return { batchItemFailures: failed };
        } finally {
          received.leave();
        }
      });

      const engine = await runEngine(app, table, { maxBytesPerPartition: 16 * 1024 });
      const events = randomEvents(EVENTS, KEYS, 7_2026);
      const reference = referenceFold(events);
      await produce(producer, topic, events, 200);
      await waitFor(() => [...reference].every(([key, state]) => isDeepStrictEqual(received.lastAfter(key), state)), {
        timeoutMs: 45_000,
        intervalMs: 200,
        message: 'the final state of every key at the function',
      }).catch((error: Error) => {
        throw new Error(`${error.message}; engine log:\n${tail()}`);
      });
      await waitFor(() => engine.stats().eventsApplied === EVENTS, { message: 'the engine to count every event applied' });

      // The failures happened (the test can fail), for every flaky key, and were ridden out.
      expect(failures.thrown).toBeGreaterThan(0);
      expect(failures.reported).toBe(2 * reporting.size);
      for (const key of throwing) expect(failedFor.get(key), `invocations holding ${key}`).toBeGreaterThan(2);
      const stats = engine.stats();
      expect(stats.triggerErrors).toBeGreaterThan(0);
      expect(stats.deadLetters).toBe(0);
      expect(await topicSize(kafka, app.deadLetterTopic)).toBe(0);
      expect(received.violations).toEqual([]);
      expect(orderViolations(received)).toEqual([]);
      const stored = await createViewReader({ dynamodb, tableName: table }).getMany(view, [...reference.keys()], { consistent: true });
      expect(stored.map((s) => s?.state)).toEqual([...reference.values()]);
    });

    it('dead-letters the changes of a key the function always fails, with the error, while every other key is delivered', async () => {
      const EVENTS = 3_000;
      const KEYS = 100;
      const POISON = 'k13';
      const { topic, table, appName, fn } = await setUp('trg-poison');
      const view = totalsView(topic);
      const trigger = defineTrigger({ view, function: fn, name: 'totalsChanged', batchSize: 25, concurrency: 4, retry: RETRY });
      const app = defineApp({ name: appName, views: [view], triggers: [trigger] });
      const received = new Received();
      const poisonAttempts = new Map<number, number>();
      endpoint.register(fn, async (event: ViewChangeEvent<Totals>) => {
        received.enter(event);
        try {
          const poison = event.changes.find((c) => c.key === POISON);
          if (poison !== undefined) {
            if (event.changes.length === 1) poisonAttempts.set(poison.version, (poisonAttempts.get(poison.version) ?? 0) + 1);
            throw Object.assign(new Error(`cannot handle key ${POISON}`), { name: 'PoisonKeyError' });
          }
          for (const change of event.changes) received.ack(change);
        } finally {
          received.leave();
        }
      });

      const engine = await runEngine(app, table, { maxBytesPerPartition: 16 * 1024 });
      const events = randomEvents(EVENTS, KEYS, 13_2026);
      const reference = referenceFold(events);
      expect(reference.has(POISON)).toBe(true);
      await produce(producer, topic, events, 200);
      const produced = Date.now();
      const healthy = [...reference].filter(([key]) => key !== POISON);
      // Bounded delay: the healthy keys do not wait behind the poison key beyond its few retries.
      await waitFor(() => healthy.every(([key, state]) => isDeepStrictEqual(received.lastAfter(key), state)), {
        timeoutMs: 30_000,
        intervalMs: 100,
        message: 'the final state of every healthy key at the function',
      }).catch((error: Error) => {
        throw new Error(`${error.message}; engine log:\n${tail()}`);
      });
      const healthyMs = Date.now() - produced;
      await waitFor(() => engine.stats().eventsApplied === EVENTS, { timeoutMs: 20_000, message: 'the engine to count every event applied' });

      // Every version of the poison key went to the dead-letter topic, in order, with the error.
      const poisonItem = await createViewReader({ dynamodb, tableName: table }).get(view, POISON, { consistent: true });
      expect(poisonItem?.state).toEqual(reference.get(POISON));
      const versions = poisonItem!.version;
      const letters = await readTopic(kafka, app.deadLetterTopic, versions, 20_000);
      expect(letters).toHaveLength(versions);
      expect(engine.stats().deadLetters).toBe(versions);
      expect(received.byKey.has(POISON)).toBe(false);
      for (const letter of letters) {
        expect(letter).toMatchObject({
          kind: 'trigger',
          app: appName,
          code: 'TRIGGER_DELIVERY_FAILED',
          trigger: 'totalsChanged',
          view: 'totals',
          key: POISON,
          function: fn,
          attempts: RETRY.maxAttempts,
          error: { type: 'PoisonKeyError', message: `cannot handle key ${POISON}` },
          change: { view: 'totals', key: POISON },
        });
        expect(letter.reason).toContain(`key "${POISON}"`);
      }
      const deadChanges = letters.map((l) => l.change as Change<Totals>);
      expect(deadChanges.map((c) => c.version)).toEqual(Array.from({ length: versions }, (_, i) => i + 1));
      expect(deadChanges.at(-1)!.after).toEqual(reference.get(POISON));
      // The function saw each poison change alone exactly maxAttempts times (bisected out of batches).
      expect([...poisonAttempts.values()].every((n) => n === RETRY.maxAttempts)).toBe(true);
      expect(poisonAttempts.size).toBe(versions);
      // Order and no gaps for every key, the dead-lettered changes included in their key's chain.
      expect(received.violations).toEqual([]);
      expect(orderViolations(received, new Map([[POISON, deadChanges]]))).toEqual([]);
      console.log(`[triggers-engine] poison: ${versions} dead letters of ${POISON}; other keys final ${healthyMs} ms after producing`);
    });
  });

  it("judges each change with the trigger's when() exactly once, and dead-letters a change whose when() throws as TRIGGER_WHEN_FAILED", async () => {
    const { topic, table, appName, fn } = await setUp('trg-when');
    const view = totalsView(topic);
    // when() sees each (key, version) once: the batch loop judges it, the dispatcher does not again.
    const judged: string[] = [];
    let threw = false;
    const trigger = defineTrigger({
      view,
      function: fn,
      name: 'judgedOnce',
      when: (change) => {
        judged.push(`${change.key}@${change.version}`);
        // Once, on the first k-bad change past its first event (a batch may coalesce several events).
        if (change.key === 'k-bad' && change.after.count >= 2 && !threw) {
          threw = true;
          throw new Error('when() cannot judge this k-bad change');
        }
        return true;
      },
    });
    const app = defineApp({ name: appName, views: [view], triggers: [trigger] });
    const received = new Received();
    endpoint.register(fn, async (event: ViewChangeEvent<Totals>) => {
      for (const change of event.changes) received.ack(change);
    });
    await runEngine(app, table);
    const events: TestEvent[] = [];
    for (let seq = 0; seq < 30; seq++) events.push({ k: seq % 3 === 0 ? 'k-bad' : `k${seq % 3}`, n: seq, seq });
    // One event per send: consecutive batches, so every key goes through several versions.
    await produce(producer, topic, events, 1);

    const reference = referenceFold(events);
    await waitFor(() => ['k1', 'k2'].every((k) => received.lastAfter(k)?.count === reference.get(k)!.count), {
      timeoutMs: 30_000,
      message: `every change of k1 and k2 delivered (${tail()})`,
    });
    const letters = await readTopic(kafka, app.deadLetterTopic, 1, 30_000);
    expect(letters[0]).toMatchObject({ kind: 'trigger', code: 'TRIGGER_WHEN_FAILED', trigger: 'judgedOnce', key: 'k-bad' });
    expect(letters[0]!.reason).toContain('when() cannot judge this k-bad change');
    // k-bad's last change is delivered, or is the dead-lettered one when a batch held the rest.
    const deadCount = (letters[0]!.change as Change<Totals>).after.count;
    await waitFor(() => Math.max(received.lastAfter('k-bad')?.count ?? 0, deadCount) === reference.get('k-bad')!.count, {
      timeoutMs: 30_000,
      message: `k-bad delivered up to its last event (${tail()})`,
    });
    const twice = judged.filter((id, i) => judged.indexOf(id) !== i);
    expect(twice).toEqual([]);
    expect(new Set(judged).size).toBeGreaterThanOrEqual(3);
  });

  it('pauses consumption instead of buffering when a slow function (200 ms, concurrency 2) falls behind', async () => {
    const EVENTS = 20_000;
    const KEYS = 500;
    const SAMPLE_MS = 12_000;
    const MAX_BYTES_PER_PARTITION = 16 * 1024;
    const { topic, table, appName, fn } = await setUp('trg-slow');
    const view = totalsView(topic);
    const trigger = defineTrigger({ view, function: fn, name: 'totalsChanged', batchSize: 10, concurrency: 2 });
    const app = defineApp({ name: appName, views: [view], triggers: [trigger] });
    const received = new Received();
    endpoint.register(fn, async (event: ViewChangeEvent<Totals>) => {
      received.enter(event);
      try {
        await new Promise((resolve) => setTimeout(resolve, 200));
        for (const change of event.changes) received.ack(change);
      } finally {
        received.leave();
      }
    });
    // About 1 KB per event: 20 MB of backlog, which would show in memory if it were fetched.
    let events: TestEvent[] | undefined = randomEvents(EVENTS, KEYS, 11_2026, 'x'.repeat(1_000));
    await produce(producer, topic, events, 100);
    events = undefined;
    expect(await topicSize(kafka, topic)).toBe(EVENTS);

    const memoryBefore = liveMemoryBytes();
    const engine = await runEngine(app, table, { maxBytesPerPartition: MAX_BYTES_PER_PARTITION, shutdownGraceMs: 5_000 });
    const samples: { consumed: number; applied: number }[] = [];
    const memory: number[] = [];
    const started = Date.now();
    await waitFor(
      () => {
        const stats = engine.stats();
        samples.push({ consumed: stats.recordsConsumed, applied: stats.eventsApplied });
        // A full collection costs tens of milliseconds: once a second is enough to see a backlog.
        if (samples.length % 40 === 0) memory.push(liveMemoryBytes() - memoryBefore);
        return Date.now() - started >= SAMPLE_MS;
      },
      { timeoutMs: SAMPLE_MS + 5_000, intervalMs: 25, message: 'the sampling window' },
    );

    const last = samples.at(-1)!;
    // Progress: the engine is consuming and the function is receiving, just slowly.
    expect(last.applied).toBeGreaterThan(0);
    expect(received.total).toBeGreaterThan(0);
    expect(received.maxInFlight).toBeLessThanOrEqual(2);
    // Bounded: records fetched but not yet durable (applied, delivered, committed) stay within
    // one fetch: each partition returns at most maxBytesPerPartition, or one record batch (about
    // 100/3 records) when that is larger. Fetching the backlog would put thousands here.
    const maxUncommitted = Math.max(...samples.map((s) => s.consumed - s.applied));
    expect(maxUncommitted).toBeLessThanOrEqual(600);
    // Paused, not buffering: most of the backlog is still in Kafka, unfetched, at the end.
    expect(EVENTS - last.applied).toBeGreaterThan(EVENTS / 2);
    expect(last.consumed).toBeLessThan(EVENTS / 2);
    // Memory: the 20 MB backlog never came into the process (generous bound for noise).
    const memoryGrowth = Math.max(...memory);
    expect(memory.length).toBeGreaterThan(5);
    expect(memoryGrowth).toBeLessThan(12 * 1024 * 1024);
    expect(received.violations).toEqual([]);
    expect(orderViolations(received)).toEqual([]);
    console.log(
      `[triggers-engine] backpressure: after ${SAMPLE_MS} ms ${last.consumed} consumed, ${last.applied} applied of ${EVENTS}; max uncommitted ${maxUncommitted}; ${received.total} changes in ${received.invocations} invocations; live memory growth ${(memoryGrowth / 1024 / 1024).toFixed(1)} MB (samples ${memory.map((m) => (m / 1024 / 1024).toFixed(1)).join(', ')})`,
    );
  });
});
