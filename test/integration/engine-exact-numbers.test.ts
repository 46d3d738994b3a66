/**
 * Numbers past 2^53 end to end on the real stack: BIGINT keys and amounts produced as JSON
 * numbers (as a Java or SQL producer writes them), folded by the engine with
 * `decode: 'json-bigint'`, stored in DynamoDB Local and read through the SDK, stay exact and
 * distinct — also after an engine restart, which reads the state back from the table.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine } from '../../engine/index.ts';
import { createViewReader, defineApp, defineView } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName, waitFor } from './helpers.ts';
import { connectProducer, readView, testKafka, testStorage } from './fixtures/engine-support.ts';

const engines: Engine[] = [];
afterAll(async () => {
  await Promise.all(engines.map((e) => e.stop()));
});

function start(app: ReturnType<typeof defineApp>, table: string): Engine {
  const engine = startEngine({
    app,
    tableName: table,
    kafka: { clientId: 'engine-exact-numbers', brokers: stack().kafkaBrokers },
    dynamodb: dynamoClient(),
    logLevel: 'error',
    logSink: () => {},
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 1_000,
  });
  engines.push(engine);
  return engine;
}

type Payment = { account: number | bigint; amount: number | bigint };

describe('exact numbers past 2^53', () => {
  it('keeps BIGINT keys 2^53 and 2^53+1 apart and their sums exact: produce, fold, store, read through the SDK', async () => {
    const topic = uniqueName('engine-bigint');
    const table = uniqueName('engine-bigint');
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, 2)]);
    const payments = defineView({
      name: 'payments',
      source: topic,
      decode: 'json-bigint',
      key: (e: Payment) => e.account,
      initial: () => ({ n: 0, total: 0n }),
      reduce: (s, e) => ({ n: s.n + 1, total: s.total + BigInt(e.amount) }),
    });
    const app = defineApp({ name: uniqueName('bigint'), views: [payments] });
    // JSON texts, not JSON.stringify of JavaScript numbers: those could not hold these values.
    const payment = (account: string, amount: string, partition: number) => ({ partition, value: `{"account":${account},"amount":${amount}}` });
    const kafka = testKafka('engine-bigint-test');
    const producer = await connectProducer(kafka);
    await producer.send({
      topic,
      acks: -1,
      messages: [
        payment('9007199254740992', '9007199254740993', 0),
        payment('9007199254740993', '1', 1),
        payment('9007199254740992', '9007199254740993', 1),
        payment('9007199254740993', '2', 0),
        payment('-9223372036854775807', '9223372036854775807', 0), // ±(2^63−1)
      ],
    });
    const engine = start(app, table);
    await engine.ready;

    const reader = createViewReader({ dynamodb: dynamoClient(), tableName: table });
    // Computed independently of the engine: 2 * (2^53 + 1), and 1 + 2.
    const expected = new Map<bigint, { n: number; total: bigint }>([
      [9007199254740992n, { n: 2, total: 18014398509481986n }],
      [9007199254740993n, { n: 2, total: 3n }],
      [-9223372036854775807n, { n: 1, total: 9223372036854775807n }],
    ]);
    await waitFor(async () => (await reader.get(payments, 9007199254740992n, { consistent: true }))?.state.n === 2, {
      timeoutMs: 30_000,
      message: 'both payments of account 2^53 applied',
    });
    await waitFor(async () => (await reader.getMany(payments, [...expected.keys()], { consistent: true })).every((item) => item !== undefined), {
      timeoutMs: 30_000,
      message: 'every account folded',
    });
    for (const [key, state] of expected) expect((await reader.get(payments, key, { consistent: true }))?.state).toEqual(state);
    const many = await reader.getMany(payments, [...expected.keys()], { consistent: true });
    expect(many.map((item) => [item?.key, item?.state])).toEqual([...expected].map(([key, state]) => [String(key), state]));
    // Three items, not two: 2^53 and 2^53+1 did not merge. Stored tagged, exact to the digit.
    const raw = await readView(testStorage(table), 'payments');
    expect([...raw.keys()].sort()).toEqual(['-9223372036854775807', '9007199254740992', '9007199254740993']);
    expect(raw.get('9007199254740992')).toEqual({ n: 2, total: { $bigint: '18014398509481986' } });

    // A new engine has no cache: it folds on top of the state read back from DynamoDB.
    await engine.stop();
    await producer.send({ topic, acks: -1, messages: [payment('9007199254740993', '18446744073709551616', 1)] }); // 2^64
    await start(app, table).ready;
    await waitFor(async () => (await reader.get(payments, 9007199254740993n, { consistent: true }))?.state.n === 3, {
      timeoutMs: 30_000,
      message: 'the payment after the restart applied',
    });
    expect((await reader.get(payments, 9007199254740993n, { consistent: true }))?.state).toEqual({ n: 3, total: 18446744073709551619n });
    expect((await reader.get(payments, 9007199254740992n, { consistent: true }))?.state).toEqual(expected.get(9007199254740992n));
    await producer.disconnect();
  });
});
