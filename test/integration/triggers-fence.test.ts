/**
 * A paused engine must not deliver the trigger changes it held when it was frozen: an engine
 * process is SIGSTOPped past its session timeout while most of a batch's changes wait in its
 * dispatcher, a second engine of the same group takes the partition over and delivers those
 * keys and newer versions of them, then the first one is SIGCONTed. Every invocation of the
 * function is recorded (it runs in this process, on the test's Lambda endpoint): no key's
 * versions may go backwards, and the views stay exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import type { Change } from '../../sdk/index.ts';
import { connectProducer, readView, spawnEngine, testKafka, testStorage, type EngineProcess } from './fixtures/engine-support.ts';
import { createTable, createTopic, stack, uniqueName, waitFor } from './helpers.ts';
import type { Tally } from './triggers-fence.app.ts';

const APP_MODULE = 'test/integration/triggers-fence.app.ts';
/** Keys of the test: the trigger sends one change per invocation, so all but one wait in the dispatcher. */
const KEYS = 6;
/** Short, so the paused engine is expelled and replaced in seconds (production: 30 s). */
const SESSION_TIMEOUT_MS = 3_000;

/** Every line of the engine's output, for a failure message. */
function tail(engine: EngineProcess): string {
  return engine.lines.slice(-40).join('\n');
}

/** How often the engine logged that it joined its consumer group. */
function joins(engine: EngineProcess): number {
  return engine.lines.filter((line) => line.includes('"msg":"joined consumer group"')).length;
}

describe('a paused engine and its trigger changes in hand', () => {
  let endpoint: LambdaEndpoint;
  const engines: EngineProcess[] = [];

  beforeAll(async () => {
    endpoint = await startLambdaEndpoint();
  });

  afterAll(async () => {
    for (const engine of engines) {
      if (engine.child.exitCode === null && engine.child.signalCode === null) engine.child.kill('SIGKILL');
    }
    await Promise.all(engines.map((e) => e.exited));
    await endpoint?.stop();
  });

  it('delivers no key version older than one already delivered after it is frozen past its session timeout, and the views stay exact', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('fence-tally'), 1);
    const appName = uniqueName('fence');
    const table = await createTable(uniqueName('fence-views'));
    const fn = uniqueName('fenceTally');
    const env = {
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: APP_MODULE,
      TRIBUTARY_GROUP_ID: uniqueName('fence-group'),
      TRIBUTARY_SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS),
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      AWS_ENDPOINT_URL_LAMBDA: endpoint.endpoint,
      FENCE_TOPIC: topic,
      FENCE_FUNCTION: fn,
      FENCE_APP: appName,
    };

    // Every invocation, in arrival order. The first one hangs until the test lets it go, so the
    // first engine holds the batch's other changes in hand when it is frozen.
    const received: { key: string; version: number; count: number }[] = [];
    let hold = true;
    let held = false;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    endpoint.register(fn, async (event: { changes: Change<Tally>[] }) => {
      for (const change of event.changes) received.push({ key: change.key, version: change.version, count: change.after.count });
      if (hold) {
        hold = false;
        held = true;
        await released;
      }
    });

    const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`);
    const expected = new Map<string, number>();
    const producer = await connectProducer(testKafka('fence-producer'));
    const produceWave = async () => {
      for (const key of keys) expected.set(key, (expected.get(key) ?? 0) + 1);
      await producer.send({ topic, messages: keys.map((key) => ({ key, value: JSON.stringify({ key }) })) });
    };
    const latest = (key: string) => Math.max(0, ...received.filter((r) => r.key === key).map((r) => r.count));
    const allAt = (count: number) => keys.every((key) => latest(key) >= count);

    try {
      const first = spawnEngine(env);
      engines.push(first);
      await first.running;
      await produceWave();
      await waitFor(() => held, { timeoutMs: 30_000, message: 'the first change held at the function' }).catch((error: Error) => {
        throw new Error(`${error.message}; engine output:\n${tail(first)}`);
      });
      // Frozen with one change in flight and the other keys' changes waiting behind it.
      first.child.kill('SIGSTOP');
      release();

      const second = spawnEngine(env);
      engines.push(second);
      await second.running;
      // The second engine gets the partition once the first one's session expired; it delivers
      // what the first one owed, then a newer version of every key.
      await waitFor(() => allAt(1), { timeoutMs: 60_000, message: 'every key delivered by the second engine' }).catch((error: Error) => {
        throw new Error(`${error.message}; second engine output:\n${tail(second)}`);
      });
      await produceWave();
      await waitFor(() => allAt(2), { timeoutMs: 30_000, message: 'version 2 of every key delivered' });

      const joinsBefore = joins(first);
      first.child.kill('SIGCONT');
      // The woken engine learns that it was expelled and rejoins; whatever it would deliver from
      // its old hand it does at once on waking, well before the rejoin completes.
      await waitFor(() => joins(first) > joinsBefore, { timeoutMs: 30_000, message: 'the woken engine to rejoin its group' }).catch(
        (error: Error) => {
          throw new Error(`${error.message}; first engine output:\n${tail(first)}`);
        },
      );
      await produceWave();
      await waitFor(() => allAt(3), { timeoutMs: 30_000, message: 'version 3 of every key delivered' });
    } finally {
      await producer.disconnect();
    }

    // Ordered per key: once a version was delivered, no older one follows it.
    const backwards: string[] = [];
    for (const key of keys) {
      let highest = 0;
      for (const { version } of received.filter((r) => r.key === key)) {
        if (version < highest) backwards.push(`${key}: v${version} after v${highest}`);
        highest = Math.max(highest, version);
      }
    }
    expect(backwards).toEqual([]);
    // Exact views: every key counted every event once.
    const view = await readView(testStorage(table), 'tally');
    expect(Object.fromEntries([...view].map(([key, state]) => [key, (state as Tally).count]))).toEqual(Object.fromEntries(expected));
  });
});
