/**
 * Windowed views on the real stack (Kafka, engine/main.ts processes, DynamoDB Local, a Lambda
 * endpoint): out-of-order events with bounded disorder fold into tumbling and hopping windows
 * exactly as a reference computed here from the events; final results of closed windows reach
 * the function at least once each, with the complete state, never early, also when the engine
 * is SIGKILLed repeatedly while windows are closing.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import type { Change } from '../../sdk/index.ts';
import { createTable, createTopic, stack, uniqueName, waitFor } from './helpers.ts';
import { connectProducer, highWatermarks, seededRandom, spawnEngine, testKafka, testStorage, waitForCheckpoints, type EngineProcess } from './fixtures/engine-support.ts';
import { GRACE_MS, HOP_ADVANCE_MS, HOP_SIZE_MS, SIZE_MS, type WindowEvent, type WindowState } from './fixtures/windows-app.ts';

const PARTITIONS = 3;
const KEYS = 10;
const APP_MODULE = 'test/integration/fixtures/windows-app.ts';
/** Event time of the first event; each event is 2 ms after the previous, give or take the disorder. */
const EPOCH = 1_767_225_600_000;
/** How far an event may be produced after later ones: beyond GRACE_MS, so some are late. */
const MAX_DISORDER_MS = 2_600;

type Produced = WindowEvent & { readonly partition: number };

/** Events with bounded disorder: event i is due at EPOCH + 2i and delayed by up to MAX_DISORDER_MS. */
function disorderedEvents(random: () => number, count: number, firstSeq: number): Produced[] {
  const out: Produced[] = [];
  for (let i = 0; i < count; i++) {
    const seq = firstSeq + i;
    const k = `m${Math.floor(random() * KEYS)}`;
    out.push({ k, at: EPOCH + seq * 2 - Math.floor(random() * MAX_DISORDER_MS), n: Math.floor(random() * 100), seq, partition: Number(k.slice(1)) % PARTITIONS });
  }
  return out;
}

/**
 * The expected windows, from the events in partition order: an event is late for a window when
 * the largest event time of its partition so far is past the window's end plus grace.
 */
function referenceWindows(events: readonly Produced[]): { tumbling: Map<string, WindowState>; hopping: Map<string, WindowState> } {
  const tumbling = new Map<string, WindowState>();
  const hopping = new Map<string, WindowState>();
  const add = (map: Map<string, WindowState>, id: string, e: WindowEvent) => {
    const s = map.get(id) ?? { count: 0, sum: 0, seqs: 0 };
    map.set(id, { count: s.count + 1, sum: s.sum + e.n, seqs: s.seqs + e.seq });
  };
  for (let partition = 0; partition < PARTITIONS; partition++) {
    let max = -1;
    for (const e of events) {
      if (e.partition !== partition) continue;
      max = Math.max(max, e.at);
      const start = e.at - (e.at % SIZE_MS);
      if (!(max > start + SIZE_MS + GRACE_MS)) add(tumbling, `${e.k}@${start}`, e);
      for (let s = 0; s < HOP_SIZE_MS; s += HOP_ADVANCE_MS) {
        const hop = e.at - (e.at % HOP_ADVANCE_MS) - s;
        if (!(max > hop + HOP_SIZE_MS + GRACE_MS)) add(hopping, `${e.k}@${hop}`, e);
      }
    }
  }
  return { tumbling, hopping };
}

/** Every item of a view, `key@windowStart` -> { state, version, closing attributes }. */
async function readWindows(table: string, view: string): Promise<Map<string, { state: WindowState; version: number; closeShard?: string }>> {
  const storage = testStorage(table);
  const out = new Map<string, { state: WindowState; version: number; closeShard?: string }>();
  let start: Record<string, unknown> | undefined;
  do {
    const page = await storage.documentClient.send(
      new ScanCommand({
        TableName: table,
        FilterExpression: '#view = :view',
        ExpressionAttributeNames: { '#view': 'view' },
        ExpressionAttributeValues: { ':view': view },
        ExclusiveStartKey: start,
        ConsistentRead: true,
      }),
    );
    for (const item of page.Items ?? []) {
      out.set(`${item.key}@${item.windowStart}`, {
        state: item.state as WindowState,
        version: item.version as number,
        ...(item.closeShard !== undefined ? { closeShard: item.closeShard as string } : {}),
      });
    }
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return out;
}

describe('windowed views on the real stack', () => {
  let endpoint: LambdaEndpoint;
  const live: EngineProcess[] = [];
  beforeAll(async () => {
    endpoint = await startLambdaEndpoint();
  });
  afterEach(async () => {
    for (const e of live) if (e.child.exitCode === null && e.child.signalCode === null) e.child.kill('SIGKILL');
    await Promise.all(live.map((e) => e.exited));
    live.length = 0;
  });
  afterAll(async () => {
    await endpoint?.stop();
  });

  /** A topic, table and function of one scenario, and what the function received. */
  async function setUp(prefix: string) {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName(prefix), PARTITIONS);
    const table = await createTable(uniqueName(prefix));
    const fn = uniqueName('windowFinal').replace(/-/g, '');
    const received: Change<WindowState>[] = [];
    endpoint.register(fn, async (event: { changes: Change<WindowState>[] }) => {
      received.push(...event.changes);
    });
    const env = {
      AWS_ENDPOINT_URL_LAMBDA: endpoint.endpoint,
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: APP_MODULE,
      TRIBUTARY_GROUP_ID: uniqueName(`${prefix}-group`),
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(64 * 1024),
      WINDOWS_FIXTURE_TOPIC: topic,
      WINDOWS_FIXTURE_APP: uniqueName(prefix),
      WINDOWS_FIXTURE_FUNCTION: fn,
    };
    const kafka = testKafka(`${prefix}-test`);
    const producer = await connectProducer(kafka);
    const produce = async (events: readonly Produced[]) => {
      for (let i = 0; i < events.length; i += 2_000) {
        await producer.send({
          topic,
          acks: -1,
          messages: events.slice(i, i + 2_000).map((e) => ({ key: e.k, partition: e.partition, value: JSON.stringify(e) })),
        });
      }
    };
    const spawn = () => {
      const engine = spawnEngine(env);
      live.push(engine);
      return engine;
    };
    return { topic, table, received, produce, spawn, kafka, producer };
  }

  /** A far-future event on every partition: every real window closes on every partition. */
  const flushEvents = (seq: number): Produced[] =>
    Array.from({ length: PARTITIONS }, (_, partition) => ({ k: `flush${partition}`, at: EPOCH + 100_000_000, n: 0, seq: seq + partition, partition }));

  /**
   * Every closed window's final result reached the function at least once, each delivery with
   * the reference state, the item's last version and the same idempotency key; nothing else came.
   */
  async function expectFinals(table: string, received: readonly Change<WindowState>[], expected: Map<string, WindowState>) {
    // The closing attributes go once the function acknowledged: a moment after it received.
    const items = await waitFor(
      async () => {
        const read = await readWindows(table, 'finalPerSecond');
        return [...expected.keys()].every((id) => read.get(id)?.closeShard === undefined) && read;
      },
      { timeoutMs: 30_000, message: 'closing attributes removed after delivery' },
    );
    const byWindow = new Map<string, Change<WindowState>[]>();
    for (const change of received) {
      expect(change.final).toBe(true);
      expect(change.window!.end - change.window!.start).toBe(SIZE_MS);
      const id = `${change.key}@${change.window!.start}`;
      byWindow.set(id, [...(byWindow.get(id) ?? []), change]);
    }
    const unexpected = [...byWindow.keys()].filter((id) => !expected.has(id));
    expect(unexpected).toEqual([]);
    for (const [id, state] of expected) {
      const finals = byWindow.get(id);
      expect(finals, `final of ${id}`).toBeDefined();
      const item = items.get(id)!;
      for (const final of finals!) {
        // The whole state: nothing was applied to the window after its final result.
        expect(final.after, `final state of ${id}`).toEqual(state);
        expect(final.version, `final version of ${id}`).toBe(item.version);
        expect(final.idempotencyKey).toBe(finals![0]!.idempotencyKey);
      }
      expect(item.closeShard, `closing attributes of ${id} removed after delivery`).toBeUndefined();
    }
    return { windows: expected.size, deliveries: received.length };
  }

  it('folds 50k out-of-order events into tumbling and hopping windows as the reference does, and delivers every final result', async () => {
    const { topic, table, received, produce, spawn, kafka, producer } = await setUp('windows-ref');
    const random = seededRandom(4242);
    const events = disorderedEvents(random, 50_000, 0);
    try {
      await produce(events);
      await produce(flushEvents(events.length));
    } finally {
      await producer.disconnect();
    }
    const all = [...events, ...flushEvents(events.length)];
    const reference = referenceWindows(all);
    const started = Date.now();
    spawn();
    await waitForCheckpoints(testStorage(table), topic, await highWatermarks(kafka, topic), 120_000);
    const folded = Date.now() - started;
    const late = events.length * 1 - [...reference.tumbling.values()].reduce((n, s) => n + s.count, 0) + PARTITIONS;
    expect(late, 'some events are late for their tumbling window').toBeGreaterThan(20);
    expect(Object.fromEntries([...(await readWindows(table, 'perSecond'))].map(([id, i]) => [id, i.state]))).toEqual(Object.fromEntries(reference.tumbling));
    expect(Object.fromEntries([...(await readWindows(table, 'lastThree'))].map(([id, i]) => [id, i.state]))).toEqual(Object.fromEntries(reference.hopping));
    const expectedFinals = new Map([...reference.tumbling].filter(([id]) => !id.startsWith('flush')));
    await waitFor(() => new Set(received.map((c) => `${c.key}@${c.window!.start}`)).size >= expectedFinals.size, {
      timeoutMs: 60_000,
      message: `${expectedFinals.size} final results`,
    });
    const { windows, deliveries } = await expectFinals(table, received, expectedFinals);
    console.info(`[windows-engine] 50k events folded in ${folded} ms; ${late} late; ${windows} final windows, ${deliveries} deliveries`);
  }, 180_000);

  it('delivers every final result at least once, complete and never early, across SIGKILLs while windows close', async () => {
    const { topic, table, received, produce, spawn, kafka, producer } = await setUp('windows-crash');
    const random = seededRandom(777);
    const produced: Produced[] = [];
    const wave = async (count: number) => {
      const events = disorderedEvents(random, count, produced.length);
      produced.push(...events);
      await produce(events);
    };
    let engine = spawn();
    let kills = 0;
    try {
      await wave(4_000);
      for (let round = 0; round < 4; round++) {
        await engine.running;
        // Kill once final results are flowing: some delivered, more due.
        const before = received.length;
        await waitFor(() => received.length > before, { timeoutMs: 60_000, message: 'final results flowing before a kill' });
        await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 400)));
        engine.child.kill('SIGKILL');
        expect((await engine.exited).signal).toBe('SIGKILL');
        kills += 1;
        await wave(3_000);
        engine = spawn();
      }
      const flush = flushEvents(produced.length);
      produced.push(...flush);
      await produce(flush);
    } finally {
      await producer.disconnect();
    }
    expect(kills).toBeGreaterThanOrEqual(3);
    await waitForCheckpoints(testStorage(table), topic, await highWatermarks(kafka, topic), 120_000);
    const reference = referenceWindows(produced);
    expect(Object.fromEntries([...(await readWindows(table, 'perSecond'))].map(([id, i]) => [id, i.state]))).toEqual(Object.fromEntries(reference.tumbling));
    const expectedFinals = new Map([...reference.tumbling].filter(([id]) => !id.startsWith('flush')));
    await waitFor(() => new Set(received.map((c) => `${c.key}@${c.window!.start}`)).size >= expectedFinals.size, {
      timeoutMs: 60_000,
      message: `${expectedFinals.size} final results`,
    });
    const { windows, deliveries } = await expectFinals(table, received, expectedFinals);
    console.info(`[windows-engine] ${produced.length} events, ${kills} kills; ${windows} final windows, ${deliveries} deliveries (${deliveries - windows} redelivered)`);
  }, 180_000);
});
