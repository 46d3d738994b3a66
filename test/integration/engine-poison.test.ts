/**
 * Invariant 5 (docs/architecture.md) on the real stack: undecodable records, records whose key()
 * returns nothing, a throwing reducer and oversized state end in the dead-letter topic with their
 * reason, code and coordinates, and every other event is applied. A view with onPoison: 'stop'
 * stops the engine instead, without committing past the poison record.
 */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine } from '../../engine/index.ts';
import { createViewReader, defineApp, defineView } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName, waitFor } from './helpers.ts';
import { connectProducer, readView, testKafka, testStorage } from './fixtures/engine-support.ts';

type Score = { user?: string; points?: number; boom?: boolean; note?: string };

function scoresView(topic: string, onPoison: 'dead-letter' | 'stop' = 'dead-letter') {
  return defineView({
    name: 'scores',
    source: topic,
    key: (e: Score) => e.user,
    initial: () => ({ total: 0, notes: [] as string[] }),
    reduce: (s, e) => {
      if (e.boom) throw new Error(`cannot score ${e.user}`);
      return { total: s.total + (e.points ?? 0), notes: e.note === undefined ? s.notes : [...s.notes, e.note] };
    },
    maxStateBytes: 300,
    onPoison,
  });
}

const engines: Engine[] = [];
afterAll(async () => {
  await Promise.all(engines.map((e) => e.stop()));
});

function start(app: ReturnType<typeof defineApp>, table: string): Engine {
  const engine = startEngine({
    app,
    tableName: table,
    kafka: { clientId: 'engine-poison', brokers: stack().kafkaBrokers },
    dynamodb: dynamoClient(),
    logLevel: 'error',
    logSink: () => {},
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 1_000,
  });
  engines.push(engine);
  return engine;
}

async function readAll(kafka: Kafka, topic: string, count: number): Promise<{ value: any; headers: Record<string, string> }[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('dlq-reader') });
  const out: { value: any; headers: Record<string, string> }[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        out.push({ value: JSON.parse(message.value!.toString('utf8')), headers });
      },
    });
    await waitFor(() => out.length >= count, { timeoutMs: 30_000, message: `${count} dead letters in "${topic}"` });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

describe('engine poison handling', () => {
  it('dead-letters each kind of poison with its reason and coordinates and applies everything else', async () => {
    const topic = uniqueName('engine-poison');
    const table = uniqueName('engine-poison');
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, 1)]);
    const app = defineApp({ name: uniqueName('poison'), views: [scoresView(topic)] });
    const values: string[] = [
      JSON.stringify({ user: 'ann', points: 1 }), // 0
      '{not json', // 1: undecodable
      JSON.stringify({ points: 5 }), // 2: key() returns undefined
      JSON.stringify({ user: 'ann', points: 2 }), // 3
      JSON.stringify({ user: 'bob', boom: true }), // 4: reducer throws
      JSON.stringify({ user: 'bob', points: 7, note: 'x'.repeat(400) }), // 5: state over maxStateBytes
      JSON.stringify({ user: 'bob', points: 3, note: 'ok' }), // 6
    ];
    const kafka = testKafka('engine-poison-test');
    const producer = await connectProducer(kafka);
    await producer.send({ topic, acks: -1, messages: values.map((value, i) => ({ key: `r${i}`, value })) });
    await producer.disconnect();

    // The engine creates the dead-letter topic before it joins the group.
    await start(app, table).ready;
    const letters = await readAll(kafka, app.deadLetterTopic, 4);
    const byOffset = new Map(letters.map((l) => [l.value.source.offset, l]));
    expect([...byOffset.keys()].sort()).toEqual(['1', '2', '4', '5']);
    expect(byOffset.get('1')!.value).toMatchObject({ kind: 'poison', code: 'DECODE_FAILED', view: 'scores' });
    expect(byOffset.get('2')!.value).toMatchObject({ code: 'KEY_MISSING' });
    expect(byOffset.get('4')!.value).toMatchObject({ code: 'REDUCE_FAILED', key: 'bob', error: { message: 'cannot score bob' } });
    expect(byOffset.get('5')!.value).toMatchObject({ code: 'STATE_TOO_LARGE', key: 'bob' });
    for (const [offset, letter] of byOffset) {
      expect(letter.value.source).toMatchObject({ topic, partition: 0, offset });
      expect(letter.value.reason).toContain(`${topic}/0@${offset}`);
      expect(Buffer.from(letter.value.original.value, 'base64').toString('utf8')).toBe(values[Number(offset)]);
      expect(Buffer.from(letter.value.original.key, 'base64').toString('utf8')).toBe(`r${offset}`);
      expect(letter.headers['tributary-code']).toBe(letter.value.code);
      expect(letter.headers['tributary-source']).toBe(`${topic}/0@${offset}`);
    }
    const storage = testStorage(table);
    await waitFor(async () => (await readView(storage, 'scores')).get('bob'), { timeoutMs: 20_000, message: 'bob applied' });
    expect(Object.fromEntries(await readView(storage, 'scores'))).toEqual({
      ann: { total: 3, notes: [] },
      bob: { total: 3, notes: ['ok'] },
    });
  });

  it('dead-letters poison records near the broker size limit without stalling: large letters are split into requests, an oversized one omits the value', async () => {
    // Kafka refuses a record batch over message.max.bytes (1,048,588 by default) for good, so a
    // dead letter carrying a 900 KB record in base64 (1.2 MB), or three 300 KB letters in one
    // request, would be retried forever and the partition would never move again.
    const topic = uniqueName('engine-big-poison');
    const table = uniqueName('engine-big-poison');
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, 1)]);
    const app = defineApp({ name: uniqueName('bigpoison'), views: [scoresView(topic)] });
    const kafka = testKafka('engine-big-poison-test');
    const producer = await connectProducer(kafka);
    const big = '{' + 'x'.repeat(900_000); // undecodable, one record under the broker's limit
    const medium = (i: number): string => `{${String(i)}` + 'y'.repeat(300_000); // undecodable, 400 KB in base64
    const values = [JSON.stringify({ user: 'ann', points: 1 }), big, medium(1), medium(2), medium(3), JSON.stringify({ user: 'ann', points: 2 })];
    for (const [i, value] of values.entries()) await producer.send({ topic, acks: -1, messages: [{ key: `r${i}`, value }] });
    await producer.disconnect();

    await start(app, table).ready;
    const letters = await readAll(kafka, app.deadLetterTopic, 4);
    const byOffset = new Map(letters.map((l) => [l.value.source.offset, l.value]));
    expect([...byOffset.keys()].sort()).toEqual(['1', '2', '3', '4']);
    expect(byOffset.get('1')).toMatchObject({
      code: 'DECODE_FAILED',
      original: { value: null },
      omitted: { fields: ['original.value', 'original.headers'], originalValueBytes: big.length },
    });
    expect(byOffset.get('1').omitted.reason).toContain(`${topic}/0@1`);
    for (const offset of ['2', '3', '4']) {
      expect(byOffset.get(offset).omitted).toBeUndefined();
      expect(Buffer.from(byOffset.get(offset).original.value, 'base64').toString('utf8')).toBe(values[Number(offset)]);
    }
    const storage = testStorage(table);
    await waitFor(async () => ((await readView(storage, 'scores')).get('ann') as { total?: number } | undefined)?.total === 3, {
      timeoutMs: 30_000,
      message: 'ann applied past the large poison records',
    });
  });

  it('stores numbers past 2^53 exactly and dead-letters states DynamoDB cannot hold', async () => {
    const topic = uniqueName('engine-numbers');
    const table = uniqueName('engine-numbers');
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, 1)]);
    type Set = { user: string; set: Record<string, number | null> };
    const metrics = defineView({
      name: 'metrics',
      source: topic,
      key: (e: Set) => e.user,
      initial: () => ({}) as Record<string, number>,
      // JSON events carry 1e200 as a number; null stands for NaN, which JSON cannot carry.
      reduce: (s, e) => ({ ...s, ...Object.fromEntries(Object.entries(e.set).map(([k, v]) => [k, v === null ? Number.NaN : v])) }),
    });
    const app = defineApp({ name: uniqueName('numbers'), views: [metrics] });
    const values = [
      { user: 'cy', set: { big: 2 ** 60 } }, // 0: past Number.MAX_SAFE_INTEGER, a double DynamoDB holds
      { user: 'cy', set: { huge: 1e200 } }, // 1: over DynamoDB's 1e126
      { user: 'cy', set: { nan: null } }, // 2: NaN, which JSON would store as null
      { user: 'cy', set: { exp: 1.5e21, tiny: 2.5e-100 } }, // 3
    ];
    const kafka = testKafka('engine-numbers-test');
    const producer = await connectProducer(kafka);
    await producer.send({ topic, acks: -1, messages: values.map((v) => ({ value: JSON.stringify(v) })) });
    await producer.disconnect();
    await start(app, table).ready;
    const letters = await readAll(kafka, app.deadLetterTopic, 2);
    expect(letters.map((l) => [l.value.source.offset, l.value.code]).sort()).toEqual([
      ['1', 'STATE_NOT_STORABLE'],
      ['2', 'STATE_NOT_STORABLE'],
    ]);
    expect(letters.find((l) => l.value.source.offset === '1')!.value.reason).toContain('state.huge is 1e+200');
    const reader = createViewReader({ dynamodb: dynamoClient(), tableName: table });
    const expected = { big: 2 ** 60, exp: 1.5e21, tiny: 2.5e-100 };
    await waitFor(async () => (await reader.get(metrics, 'cy', { consistent: true }))?.state.exp !== undefined, {
      timeoutMs: 20_000,
      message: 'offset 3 applied',
    });
    // Read back as numbers (not BigInt), equal to what the reducer returned.
    expect((await reader.get(metrics, 'cy', { consistent: true }))?.state).toEqual(expected);
  });

  it("stops the engine on poison when the view says onPoison: 'stop', without committing past it", async () => {
    const topic = uniqueName('engine-stop');
    const table = uniqueName('engine-stop');
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, 1)]);
    const app = defineApp({ name: uniqueName('stop'), views: [scoresView(topic, 'stop')] });
    const kafka = new Kafka({ clientId: 'engine-stop-test', brokers: stack().kafkaBrokers, logLevel: logLevel.NOTHING });
    const producer = await connectProducer(kafka);
    await producer.send({
      topic,
      acks: -1,
      messages: [{ value: JSON.stringify({ user: 'ann', points: 1 }) }, { value: '{broken' }],
    });
    await producer.disconnect();
    const engine = start(app, table);
    await expect(engine.done).rejects.toMatchObject({
      code: 'POISON_RECORD',
      context: { view: 'scores', topic, partition: 0, offset: '1', poisonCode: 'DECODE_FAILED' },
    });
    expect(engine.state()).toBe('failed');
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId: app.name, topics: [topic] });
      // Nothing committed at or past the poison record.
      expect(BigInt(committed!.partitions[0]!.offset)).toBeLessThanOrEqual(1n);
    } finally {
      await admin.disconnect();
    }
  });
});
