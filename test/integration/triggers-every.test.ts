/**
 * `changes: 'every'` on the real stack, across a SIGKILL of the engine (docs/architecture.md,
 * invariant 4): three events of one key, folded in one batch and one write, reach the function
 * as three ordered changes with their own before/after/version, although the engine is killed
 * while the first of them is in the function's hands and a new engine process delivers them.
 *
 * The engine runs as a child process (triggers-e2e.engine.ts on triggers-e2e.app.ts, with
 * `E2E_CHANGES=every`); the function runs in this process on a Lambda endpoint the test starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { viewItemKey } from '../../sdk/contract/index.ts';
import type { Change } from '../../sdk/index.ts';
import type { Tally } from './triggers-e2e.app.ts';
import { connectProducer, testKafka } from './fixtures/engine-support.ts';
import { createTable, createTopic, dynamoClient, stack, stackEnv, uniqueName, waitFor } from './helpers.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

interface Engine {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<number | null>;
}

function startEngineProcess(env: Record<string, string>): Engine {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/integration/triggers-e2e.engine.ts'], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output, exited };
}

async function waitReady(engine: Engine): Promise<void> {
  await waitFor(
    () => {
      if (engine.child.exitCode !== null) throw new Error(`engine exited: ${engine.output.join('')}`);
      return engine.output.join('').includes('E2E_ENGINE_READY');
    },
    { timeoutMs: 30_000, message: 'the engine to join its group' },
  );
}

describe("triggers with changes: 'every' across a SIGKILL", () => {
  const dynamodb = dynamoClient();
  const documents = DynamoDBDocumentClient.from(dynamodb);
  let endpoint: LambdaEndpoint;
  const engines: Engine[] = [];

  beforeAll(async () => {
    endpoint = await startLambdaEndpoint();
  });

  afterAll(async () => {
    for (const engine of engines) if (engine.child.exitCode === null) engine.child.kill('SIGKILL');
    await Promise.all(engines.map((e) => e.exited));
    await endpoint?.stop();
    dynamodb.destroy();
  });

  it('delivers three events of one key in one batch as three ordered changes, the first cut off by the kill', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('every-tally'), 1);
    const appName = uniqueName('every');
    await createTopic(stack().kafkaBrokers, `${appName}.dead-letter`, 1);
    const table = await createTable(uniqueName('every-views'));
    const fn = uniqueName('everyTally');

    // Completed changes in arrival order; the invocations cut off by the kill.
    const received: Change<Tally>[] = [];
    const cutOff: Change<Tally>[] = [];
    let holding = true;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    endpoint.register(fn, async (event: { changes: Change<Tally>[] }) => {
      if (holding) {
        // The first invocation hangs until the engine is killed, then fails: not acknowledged.
        cutOff.push(...event.changes);
        await gate;
        throw new Error('function instance lost');
      }
      received.push(...event.changes);
    });

    // Produced before any engine runs, in one request: the engine's first fetch holds all three,
    // so they are folded in one batch (the stored item below proves it: one write, version 3).
    const events = 3;
    const producer = await connectProducer(testKafka('every-producer'));
    try {
      await producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: events }, (_, i) => ({ key: 'order-1', value: JSON.stringify({ key: 'order-1', i }) })),
      });
    } finally {
      await producer.disconnect();
    }

    const env = {
      ...stackEnv(),
      AWS_ENDPOINT_URL_LAMBDA: endpoint.endpoint,
      TRIBUTARY_TABLE: table,
      E2E_TOPIC: topic,
      E2E_FUNCTION: fn,
      E2E_APP: appName,
      E2E_GROUP: uniqueName('every-group'),
      E2E_CHANGES: 'every',
    };
    const first = startEngineProcess(env);
    engines.push(first);
    await waitReady(first);
    await waitFor(() => cutOff.length > 0, { timeoutMs: 30_000, message: 'the first change held in the function' }).catch(
      (error: Error) => {
        throw new Error(`${error.message}; engine output:\n${first.output.join('').slice(-3_000)}`);
      },
    );
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull(); // killed by the signal, not exited on its own
    holding = false;
    release();

    // One write applied the three events and kept the intermediate states for the changes owed.
    const { Item: stored } = await documents.send(new GetCommand({ TableName: table, Key: viewItemKey('tally', 'order-1'), ConsistentRead: true }));
    expect(stored).toMatchObject({ version: events, state: { count: events }, pending: { tallyChanged: 0 } });
    expect(Object.keys(stored!.befores ?? {}).sort()).toEqual(['1', '2']);

    const second = startEngineProcess(env);
    engines.push(second);
    await waitReady(second);
    await waitFor(() => received.length >= events, { timeoutMs: 30_000, message: 'three changes at the function' }).catch(
      (error: Error) => {
        throw new Error(`${error.message}; engine output:\n${second.output.join('').slice(-3_000)}`);
      },
    );

    // Expected from the events alone: the n-th event takes the count from n-1 to n, at version n.
    const expected = Array.from({ length: events }, (_, i) => ({
      before: i === 0 ? undefined : { count: i },
      after: { count: i + 1 },
      version: i + 1,
      idempotencyKey: `tally#order-1##${i + 1}`,
    }));
    expect(cutOff.map((c) => c.idempotencyKey)).toEqual([expected[0]!.idempotencyKey]);
    expect(received.map(({ before, after, version, idempotencyKey }) => ({ before, after, version, idempotencyKey }))).toEqual(expected);
  });
});
