/**
 * `npm run bench -- --scenario cardinality`: where coalescing stops paying, and what
 * at-least-once costs in correctness.
 *
 * 1. Sweep: the same number of events over 50, 500, 5,000 and 50,000 keys, each folded by three
 *    contenders, one after the other, each with its own consumer group and table:
 *    - the engine;
 *    - naive: one `UpdateItem` per event (the Kafka-triggered Lambda pattern);
 *    - batched naive: each delivered batch grouped by key, one `UpdateItem ADD` per key
 *      (bench/internal/batched-naive.ts).
 *    Per contender: DynamoDB item writes per event, write and read units per event and the
 *    on-demand cost per million events (bench/internal/cost.ts), events/s from "joined the
 *    group" to the last event.
 * 2. Retry: on the 500-key topic, the batched handler has one batch delivered twice (its
 *    first attempt writes, then fails before its offsets are committed, as a Lambda invocation
 *    that timed out after its writes); the engine, in its own process, is killed with SIGKILL
 *    right after its first durable batch and started again. Both views are then compared
 *    with the reference: the produced events folded in memory, no Kafka or DynamoDB involved.
 */
import { DynamoDBClient, ScanCommand, type ScanCommandOutput } from '@aws-sdk/client-dynamodb';
import { Kafka, logLevel, type Consumer, type EachBatchPayload } from 'kafkajs';
import { startEngine } from '../../engine/index.ts';
import { decodeBookingEvent, toMessage, type BookingEvent } from '../../functions/events.ts';
import { createBookingGenerator } from '../../functions/generator.ts';
import { ensureViewsTable, startLocalStack, type LocalStack } from '../../local/index.ts';
import { createViewReader } from '../../sdk/index.ts';
import { batchedUpdate, checkAgainstReference, groupByClass, type ReferenceCheck } from './batched-naive.ts';
import { classCountsApp, classCountsView, naiveUpdate } from './class-counts.ts';
import { contenderCost, meterCapacity, priceNote, priceUpdates, type ContenderCost } from './cost.ts';
import { countDynamoDbRequests, num, renderGrid } from './metrics.ts';
import type { BenchOptions } from './options.ts';
import type { WorkerConfig } from './worker.ts';
import { checkpointTotal, forkEngine } from './engine-process.ts';

/** Key counts of the sweep: from ~100 events per key and batch down to about one event per key in the whole run. */
export const SWEEP_KEYS = [50, 500, 5_000, 50_000] as const;

type SweepContender = 'engine' | 'batched naive' | 'naive';
const SWEEP_CONTENDERS: readonly SweepContender[] = ['engine', 'batched naive', 'naive'];

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface SweepResult {
  readonly itemWritesPerEvent: number;
  readonly cost: ContenderCost;
  readonly eventsPerSecond: number;
}

/** A running contender of the sweep: how many events it has applied, and how to stop it. */
interface Running {
  applied(): number;
  stop(): Promise<void>;
}

/**
 * A kafkajs consumer with the Lambda Kafka event source's shape: one batch per partition at a
 * time, partitions in parallel, offsets committed after the handler returns.
 */
async function startHandler(kafka: Kafka, group: string, topic: string, handle: (events: BookingEvent[], payload: EachBatchPayload) => Promise<void>): Promise<Consumer> {
  const consumer = kafka.consumer({ groupId: group, retry: { retries: 10, initialRetryTime: 100 } });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let joined!: () => void;
  const ready = new Promise<void>((resolve) => (joined = resolve));
  consumer.on(consumer.events.GROUP_JOIN, () => joined());
  await consumer.run({
    partitionsConsumedConcurrently: 64,
    eachBatchAutoResolve: false,
    autoCommit: true,
    eachBatch: async (payload) => {
      const events = payload.batch.messages.map((m) => decodeBookingEvent(m.value ?? Buffer.alloc(0)));
      if (events.length === 0) return;
      // A slow batch must not cost the partition: heartbeats go on while the handler runs.
      const beat = setInterval(() => void payload.heartbeat().catch(() => {}), 1_000);
      try {
        await handle(events, payload);
      } finally {
        clearInterval(beat);
      }
      payload.resolveOffset(payload.batch.lastOffset());
      await payload.commitOffsetsIfNecessary();
    },
  });
  await ready;
  return consumer;
}

async function startSweepContender(contender: SweepContender, kafka: Kafka, stack: LocalStack, ddb: DynamoDBClient, topic: string, table: string, group: string): Promise<Running> {
  if (contender === 'engine') {
    const engine = startEngine({
      app: classCountsApp(group, topic),
      tableName: table,
      groupId: group,
      kafka: { brokers: [...stack.kafka.brokers] },
      dynamodb: ddb,
      healthPort: null,
      logLevel: 'warn',
      // Metric lines (CloudWatch EMF) are not the bench's business.
      logSink: (line) => {
        if (!line.startsWith('{"_aws"')) process.stderr.write(`[engine] ${line}\n`);
      },
    });
    await engine.ready;
    return { applied: () => engine.stats().eventsApplied, stop: () => engine.stop() };
  }
  let applied = 0;
  const consumer = await startHandler(kafka, group, topic, async (events, { batch, resolveOffset, isRunning, isStale }) => {
    if (contender === 'naive') {
      // As the throughput scenario's naive worker: each event's offset resolved once its write is done.
      for (let i = 0; i < events.length; i++) {
        if (!isRunning() || isStale()) throw new Error('bench: partition lost mid-batch');
        await ddb.send(naiveUpdate(table, events[i]!));
        resolveOffset(batch.messages[i]!.offset);
        applied++;
      }
      return;
    }
    await Promise.all([...groupByClass(events)].map(([classId, delta]) => ddb.send(batchedUpdate(table, classId, delta))));
    applied += events.length;
  });
  return { applied: () => applied, stop: () => consumer.disconnect() };
}

/** Every naive-format item of `table` as counts per class. */
async function naiveCounts(ddb: DynamoDBClient, table: string): Promise<Map<string, { booked: number; cancelled: number; net: number }>> {
  const out = new Map<string, { booked: number; cancelled: number; net: number }>();
  let start: Record<string, any> | undefined;
  do {
    const page: ScanCommandOutput = await ddb.send(new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: start }));
    for (const item of page.Items ?? []) {
      out.set(String(item.sk?.S).slice('key#'.length), { booked: Number(item.booked?.N ?? 0), cancelled: Number(item.cancelled?.N ?? 0), net: Number(item.net?.N ?? 0) });
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return out;
}

async function waitFor(what: string, timeoutMs: number, done: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * Runs the cardinality scenario on its own embedded stack and prints its tables.
 *
 * @example
 * await runCardinalityScenario(parseBenchOptions(['--scenario', 'cardinality'], {}), console.log);
 */
export async function runCardinalityScenario(options: BenchOptions, log: (line: string) => void): Promise<void> {
  const runId = Date.now().toString(36);
  log(`scenario cardinality: ${num()(options.events)} events over ${SWEEP_KEYS.join(', ')} keys, ${options.partitions} partitions; contenders ${SWEEP_CONTENDERS.join(', ')}`);
  const stack = await startLocalStack({ log: options.verbose ? (line) => log(`stack: ${line}`) : () => {} });
  const plain = new DynamoDBClient({ region: stack.region, endpoint: stack.dynamodb.endpoint, credentials });
  const kafka = new Kafka({ clientId: 'bench-cardinality', brokers: [...stack.kafka.brokers], logLevel: logLevel.NOTHING });
  const results = new Map<string, SweepResult>();
  const retryRows: string[][] = [];
  let retryEvents: { topic: string; events: BookingEvent[] } | undefined;
  try {
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    for (const keys of SWEEP_KEYS) {
      const topic = `bench-card-${runId}-${keys}`;
      await admin.createTopics({ topics: [{ topic, numPartitions: options.partitions }, { topic: `${topic}.dead-letter`, numPartitions: 1 }], waitForLeaders: true });
      const events = createBookingGenerator({ seed: options.seed, classes: keys, members: Math.max(100, Math.min(100_000, keys * 10)), pick: 'uniform' }).take(options.events);
      for (let i = 0; i < events.length; i += 1_000) await producer.send({ topic, acks: -1, messages: events.slice(i, i + 1_000).map(toMessage) });
      if (keys === 500) retryEvents = { topic, events };
      log(`${num()(keys)} keys: produced ${num()(events.length)} events (${num()(new Set(events.map((e) => e.classId)).size)} distinct keys)`);
      for (const contender of SWEEP_CONTENDERS) {
        const name = `bench-card-${runId}-${keys}-${contender.replace(' ', '-')}`;
        await ensureViewsTable(plain, name);
        const metered = new DynamoDBClient({ region: stack.region, endpoint: stack.dynamodb.endpoint, credentials });
        const counts = countDynamoDbRequests(metered);
        const capacity = meterCapacity(metered);
        const running = await startSweepContender(contender, kafka, stack, metered, topic, name, name);
        const started = performance.now();
        try {
          await waitFor(`${contender} at ${keys} keys`, options.phaseTimeoutMs, () => running.applied() >= options.events);
        } finally {
          await running.stop();
        }
        const seconds = (performance.now() - started) / 1000;
        const metering = capacity();
        const result: SweepResult = {
          itemWritesPerEvent: counts().itemWrites / options.events,
          cost: contenderCost(metering, await priceUpdates(plain, metering.updates), options.events),
          eventsPerSecond: options.events / seconds,
        };
        metered.destroy();
        results.set(`${keys}/${contender}`, result);
        log(`  ${contender}: ${num()(result.eventsPerSecond)} events/s, ${result.itemWritesPerEvent.toFixed(4)} item writes/event, $${result.cost.usdPerMillionEvents.toFixed(4)} per million events`);
      }
    }
    await producer.disconnect();
    await admin.disconnect();

    // Phase 2: one redelivery each, checked against the produced events.
    if (retryEvents) {
      const { topic, events } = retryEvents;
      const reference = groupByClass(events);
      const row = (contender: string, fault: string, check: ReferenceCheck) => [
        contender,
        fault,
        num()(events.length),
        num()(events.length + check.extraEvents),
        num()(check.extraEvents),
        num()(check.keysWrong),
      ];

      const batchedTable = `bench-card-${runId}-retry-batched`;
      await ensureViewsTable(plain, batchedTable);
      let injected: number | undefined;
      const consumer = await startHandler(kafka, batchedTable, topic, async (batch) => {
        await Promise.all([...groupByClass(batch)].map(([classId, delta]) => plain.send(batchedUpdate(batchedTable, classId, delta))));
        if (injected === undefined) {
          // The writes landed; the invocation "times out" before it returns: no offsets committed.
          injected = batch.length;
          throw new Error('bench: injected timeout after the writes of this batch');
        }
      });
      const offsets = kafka.admin();
      await offsets.connect();
      try {
        // Done when the group's committed offsets reach the end of the topic (a count of handled
        // events would include the redelivered ones).
        await waitFor('batched naive with a retried batch', options.phaseTimeoutMs, async () => {
          const [committed] = await offsets.fetchOffsets({ groupId: batchedTable, topics: [topic] });
          return (committed?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0) >= events.length;
        });
      } finally {
        await offsets.disconnect();
        await consumer.disconnect();
      }
      const batchedCheck = checkAgainstReference(reference, await naiveCounts(plain, batchedTable));
      retryRows.push(row('batched naive', `1 batch of ${num()(injected ?? 0)} events delivered twice`, batchedCheck));
      log(`batched naive after one retried batch: ${JSON.stringify(batchedCheck)}`);

      const engineTable = `bench-card-${runId}-retry-engine`;
      await ensureViewsTable(plain, engineTable);
      const config: WorkerConfig = {
        mode: 'engine',
        brokers: [...stack.kafka.brokers],
        topic,
        tableName: engineTable,
        group: engineTable,
        region: stack.region,
        dynamodbEndpoint: stack.dynamodb.endpoint,
        cacheMaxEntries: undefined,
        triggerFunction: undefined,
        verbose: false,
      };
      const first = forkEngine(config, stack.env);
      await first.started;
      try {
        await waitFor('engine first durable batch', options.phaseTimeoutMs, async () => ((await first.stats()).eventsApplied ?? 0) > 0);
      } finally {
        await first.kill();
      }
      const killedAt = { durable: await checkpointTotal(plain, engineTable, topic) };
      log(`engine killed (SIGKILL) after its first durable batch; checkpoints then covered ${num()(killedAt.durable)} of ${num()(events.length)} events`);
      const second = forkEngine(config, stack.env);
      try {
        await second.started;
        await waitFor('engine after restart', options.phaseTimeoutMs, async () => (await checkpointTotal(plain, engineTable, topic)) >= events.length);
      } finally {
        await second.stop();
      }
      const reader = createViewReader({ dynamodb: plain, tableName: engineTable });
      const view = classCountsView(topic);
      const keys = [...reference.keys()];
      const stored = new Map<string, { booked: number; cancelled: number; net: number }>();
      for (let i = 0; i < keys.length; i += 100) {
        const items = await reader.getMany(view, keys.slice(i, i + 100), { consistent: true });
        for (const item of items) if (item) stored.set(item.key, item.state);
      }
      const engineCheck = checkAgainstReference(reference, stored);
      retryRows.push(row('engine', `SIGKILL after the first durable batch (checkpoints at ${num()(killedAt.durable)} events), restarted`, engineCheck));
      log(`engine after kill -9 and restart: ${JSON.stringify(engineCheck)}`);
    }
  } finally {
    plain.destroy();
    await stack.stop();
  }

  const at = (keys: number, c: SweepContender) => results.get(`${keys}/${c}`);
  const f = (v: number | undefined, digits: number) => (v === undefined ? 'n/a' : num(digits)(v));
  console.log('');
  console.log(`Key cardinality — ${num()(options.events)} events per key count, ${options.partitions} partitions, seed ${options.seed}: DynamoDB item writes / event and on-demand cost`);
  console.log(
    renderGrid(
      ['keys', 'events/key', 'engine writes/ev', 'batched writes/ev', 'naive writes/ev', 'engine WU/ev', 'batched WU/ev', 'naive WU/ev', 'engine RU/ev', 'engine $/M ev', 'batched $/M ev', 'naive $/M ev'],
      SWEEP_KEYS.map((keys) => [
        num()(keys),
        num(1)(options.events / keys),
        f(at(keys, 'engine')?.itemWritesPerEvent, 4),
        f(at(keys, 'batched naive')?.itemWritesPerEvent, 4),
        f(at(keys, 'naive')?.itemWritesPerEvent, 4),
        f(at(keys, 'engine')?.cost.writeUnitsPerEvent, 4),
        f(at(keys, 'batched naive')?.cost.writeUnitsPerEvent, 4),
        f(at(keys, 'naive')?.cost.writeUnitsPerEvent, 4),
        f(at(keys, 'engine')?.cost.readUnitsPerEvent, 4),
        f(at(keys, 'engine')?.cost.usdPerMillionEvents, 4),
        f(at(keys, 'batched naive')?.cost.usdPerMillionEvents, 4),
        f(at(keys, 'naive')?.cost.usdPerMillionEvents, 4),
      ]),
      'number',
    ),
  );
  console.log(priceNote());
  console.log('');
  console.log('Key cardinality — events/s, from "joined the group" to the last event (all three in this process, one after the other)');
  console.log(
    renderGrid(
      ['keys', 'engine', 'batched naive', 'naive', 'engine/naive'],
      SWEEP_KEYS.map((keys) => {
        const e = at(keys, 'engine')?.eventsPerSecond;
        const n = at(keys, 'naive')?.eventsPerSecond;
        return [num()(keys), f(e, 0), f(at(keys, 'batched naive')?.eventsPerSecond, 0), f(n, 0), e !== undefined && n ? `${(e / n).toFixed(2)}x` : 'n/a'];
      }),
      'number',
    ),
  );
  if (retryRows.length > 0) {
    console.log('');
    console.log('Redelivery — the 500-key events, one fault each, views checked against the produced events folded in memory');
    console.log(renderGrid(['contender', 'fault injected', 'events produced', 'events counted', 'double-counted', 'keys wrong'], retryRows, 'label'));
  }
}
