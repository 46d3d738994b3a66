/**
 * End to end: Kafka -> engine -> view -> trigger -> Lambda function, with the engine killed
 * (SIGKILL) while deliveries are in flight and a replacement task taking over.
 *
 * The engine runs as a child process (triggers-e2e.engine.ts); the function runs in this
 * process on a Lambda endpoint the test starts, so every invocation is observed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { createIdempotency, type Change } from '../../sdk/index.ts';
import type { Tally } from './triggers-e2e.app.ts';
import { createTable, createTopic, dynamoClient, stack, stackEnv, uniqueName, waitFor } from './helpers.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const KEYS = 40;
/** Events per key in each produced wave; the engine folds a wave into about one change per key. */
const EVENTS_PER_KEY_PER_WAVE = 5;

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

describe('triggers end to end through the engine', () => {
  const dynamodb = dynamoClient();
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

  it('delivers every version (or a later coalesced one) at least once across a SIGKILL, and side effects run once per idempotency key', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('e2e-tally'), 2);
    const appName = uniqueName('e2e');
    await createTopic(stack().kafkaBrokers, `${appName}.dead-letter`, 1);
    const table = await createTable(uniqueName('e2e-views'));
    const fn = uniqueName('e2eTally');
    const idempotency = createIdempotency({ dynamodb, table });

    // What the function completed (in arrival order), what it was cut off in the middle of, and
    // how often each side effect ran.
    const received: Change<Tally>[] = [];
    const cutOff = new Set<string>();
    const sideEffects = new Map<string, number>();
    let holding = false;
    let blocked = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    endpoint.register(fn, async (event: { changes: Change<Tally>[] }) => {
      for (const change of event.changes) {
        await idempotency.once(change.idempotencyKey, () => {
          sideEffects.set(change.idempotencyKey, (sideEffects.get(change.idempotencyKey) ?? 0) + 1);
        });
      }
      if (holding) {
        // The side effects ran but the function "crashes" before acknowledging: it hangs until
        // the engine is killed, then fails. These changes must be delivered again.
        for (const change of event.changes) cutOff.add(change.idempotencyKey);
        blocked++;
        await gate;
        throw new Error('function instance lost');
      }
      received.push(...event.changes);
    });

    const env = {
      ...stackEnv(),
      AWS_ENDPOINT_URL_LAMBDA: endpoint.endpoint,
      TRIBUTARY_TABLE: table,
      E2E_TOPIC: topic,
      E2E_FUNCTION: fn,
      E2E_APP: appName,
      E2E_GROUP: uniqueName('e2e-group'),
    };

    const kafka = new Kafka({ clientId: 'e2e-producer', brokers: stack().kafkaBrokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    const expected = new Map<string, number>();
    let sequence = 0;
    /** Produces `perKey` events for each of `keys`, interleaved. */
    const produceWave = async (keys: readonly string[], perKey: number) => {
      const messages = [];
      for (let round = 0; round < perKey; round++) {
        for (const key of keys) {
          expected.set(key, (expected.get(key) ?? 0) + 1);
          messages.push({ key, value: JSON.stringify({ key, i: sequence++ }) });
        }
      }
      await producer.send({ topic, messages });
    };
    const allKeys = Array.from({ length: KEYS }, (_, i) => `key-${i}`);
    const latestCount = (key: string) => Math.max(0, ...received.filter((c) => c.key === key).map((c) => c.after.count));
    const caughtUp = () => [...expected].every(([key, count]) => latestCount(key) === count);

    let receivedBeforeKill = 0;
    let wave3Keys: string[] = [];
    try {
      const first = startEngineProcess(env);
      engines.push(first);
      await waitReady(first);
      // Wave 1 flows normally.
      await produceWave(allKeys, EVENTS_PER_KEY_PER_WAVE);
      await waitFor(caughtUp, { timeoutMs: 30_000, message: 'wave 1 at the function' });
      // Wave 2 reaches the function, which hangs; the engine is killed with deliveries in flight.
      holding = true;
      await produceWave(allKeys, EVENTS_PER_KEY_PER_WAVE);
      await waitFor(() => blocked > 0, { timeoutMs: 30_000, message: 'deliveries held in flight' }).catch((error: Error) => {
        throw new Error(`${error.message}; engine output:\n${first.output.join('').slice(-3_000)}`);
      });
      first.child.kill('SIGKILL');
      expect(await first.exited).toBeNull(); // killed by the signal, not exited on its own
      receivedBeforeKill = received.length;
      holding = false;
      release();
      // Wave 3 touches only keys that were not cut off: those come back coalesced into a later
      // version; the cut-off ones must come back unchanged, with the same idempotency key.
      const cutOffKeys = new Set([...cutOff].map((ik) => ik.split('#')[1]));
      wave3Keys = allKeys.filter((k) => !cutOffKeys.has(k)).slice(0, KEYS / 4);
      await produceWave(wave3Keys, EVENTS_PER_KEY_PER_WAVE);
    } finally {
      await producer.disconnect();
    }

    const second = startEngineProcess(env);
    engines.push(second);
    await waitReady(second);
    await waitFor(caughtUp, { timeoutMs: 60_000, message: 'every key to reach its final count at the function' }).catch(
      (error: Error) => {
        throw new Error(`${error.message}; engine output:\n${second.output.join('').slice(-3_000)}`);
      },
    );

    // At least once: every count of every key is covered by a change the function completed.
    for (const [key, count] of expected) {
      const ranges = received.filter((c) => c.key === key).map((c) => [c.before?.count ?? 0, c.after.count] as const);
      for (let n = 1; n <= count; n++) {
        expect(ranges.some(([from, to]) => from < n && n <= to), `${key} count ${n} delivered`).toBe(true);
      }
    }
    // Ordered per key, and no completed change starts past where the previous one ended (no gaps).
    // After the kill a change may start earlier (overlap): the function completed a change whose
    // acknowledgement the killed engine never received, so for the engine the state last
    // delivered is still the older one, and its next change starts there.
    const overlaps: string[] = [];
    for (const key of expected.keys()) {
      const changes = received.filter((c) => c.key === key);
      expect(changes.map((c) => c.version), key).toEqual(changes.map((c) => c.version).sort((a, b) => a - b));
      for (let i = 1; i < changes.length; i++) {
        const from = changes[i]!.before?.count ?? 0;
        const previous = changes[i - 1]!.after.count;
        expect(from, `${key} change ${i} starts after the previous end`).toBeLessThanOrEqual(previous);
        if (from < previous) {
          overlaps.push(`${key}: v${changes[i - 1]!.version} (${changes[i - 1]!.before?.count ?? 0}->${previous}) then v${changes[i]!.version} (${from}->${changes[i]!.after.count})`);
        }
      }
    }
    // Every cut-off change came back with the same idempotency key (wave 3 left its key alone).
    const completedKeys = new Set(received.map((c) => c.idempotencyKey));
    expect([...cutOff].filter((ik) => !completedKeys.has(ik))).toEqual([]);
    const redelivered = received.filter((c) => cutOff.has(c.idempotencyKey));
    // Any two deliveries with one idempotency key are the same change.
    const byIdempotencyKey = new Map<string, Change<Tally>>();
    let duplicateDeliveries = 0;
    for (const change of received) {
      const seen = byIdempotencyKey.get(change.idempotencyKey);
      if (!seen) {
        byIdempotencyKey.set(change.idempotencyKey, change);
        continue;
      }
      duplicateDeliveries++;
      expect({ key: change.key, version: change.version, after: change.after }).toEqual({
        key: seen.key,
        version: seen.version,
        after: seen.after,
      });
    }
    // The side effect ran exactly once per idempotency key, redeliveries included.
    const keysSeen = new Set([...received.map((c) => c.idempotencyKey), ...cutOff]);
    expect([...sideEffects.keys()].sort()).toEqual([...keysSeen].sort());
    expect([...sideEffects.values()].every((n) => n === 1)).toBe(true);
    const duplicates = redelivered.length;
    console.log(
      `[triggers-e2e] ${sequence} events, ${received.length} changes delivered (${receivedBeforeKill} before the kill), ${cutOff.size} cut off by the kill, ${duplicates} redeliveries of them with the same idempotency key, wave 3 on ${wave3Keys.length} keys, ${duplicateDeliveries} duplicate deliveries in all, ${sideEffects.size} side effects; ${overlaps.length} overlapping changes${overlaps.length ? `, e.g. ${overlaps.slice(0, 3).join('; ')}` : ''}`,
    );
  });
});
