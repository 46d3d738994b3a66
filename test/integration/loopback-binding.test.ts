/**
 * Dev servers listen on loopback only: the local stack's broker, DynamoDB Local and Lambda
 * endpoint, and the engine's health endpoint with its defaults (in process, as `npm run dev` runs
 * it, and as `npm run engine` runs engine/main.ts). Reads the kernel's table of listening TCP
 * sockets, so it sees what the servers bound, not what they report.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { logLevel } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { startEngine } from '../../engine/index.ts';
import { startLocalStack, type LocalStack } from '../../local/index.ts';
import { fixtureApp } from './fixtures/engine-reference-app.ts';
import { spawnEngine, type EngineProcess } from './fixtures/engine-support.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName } from './helpers.ts';

/** TCP state LISTEN in /proc/net/tcp*. */
const TCP_LISTEN = '0A';

/**
 * The local addresses of the sockets listening on `port` (IPv4 and IPv6), e.g. `['127.0.0.1']`,
 * `['::ffff:127.0.0.1']`, or `['::']` for every interface.
 */
function listeningAddresses(port: number): string[] {
  const addresses: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/);
      if (columns.length < 4 || columns[3] !== TCP_LISTEN) continue;
      const [addressHex, portHex] = columns[1]!.split(':');
      if (Number.parseInt(portHex!, 16) === port) addresses.push(decodeAddress(addressHex!));
    }
  }
  return addresses;
}

/** /proc/net/tcp* print an address as 32-bit words, each in the host's (little-endian) byte order. */
function decodeAddress(hex: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < hex.length; i += 8) {
    const word = hex.slice(i, i + 8);
    for (const j of [6, 4, 2, 0]) bytes.push(Number.parseInt(word.slice(j, j + 2), 16));
  }
  if (bytes.length === 4) return bytes.join('.');
  const v4mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (v4mapped) return `::ffff:${bytes.slice(12).join('.')}`;
  if (bytes.every((b) => b === 0)) return '::';
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1) return '::1';
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

function portOf(endpoint: string): number {
  return Number(new URL(endpoint.includes('://') ? endpoint : `tcp://${endpoint}`).port);
}

/** Asserts that each named port has a listening socket and that every one is on loopback. */
function expectLoopbackOnly(servers: Record<string, number>): void {
  const bound = Object.fromEntries(Object.entries(servers).map(([name, port]) => [`${name} :${port}`, listeningAddresses(port)]));
  for (const [name, addresses] of Object.entries(bound)) {
    expect(addresses, `${name} is listening`).not.toEqual([]);
    expect(addresses.filter((a) => !isLoopback(a)), `${name} binds loopback only; all: ${JSON.stringify(bound)}`).toEqual([]);
  }
}

describe.skipIf(process.platform !== 'linux')('dev servers bind to loopback', () => {
  let devStack: LocalStack | undefined;
  let dataDir: string | undefined;
  let engineProcess: EngineProcess | undefined;
  afterEach(async () => {
    await devStack?.stop();
    devStack = undefined;
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
    dataDir = undefined;
    if (engineProcess && engineProcess.child.exitCode === null && engineProcess.child.signalCode === null) {
      engineProcess.child.kill('SIGKILL');
      await engineProcess.exited;
    }
    engineProcess = undefined;
  });

  it('the local stack on its defaults, as `npm run dev` starts it (data on disk)', async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'tributary-loopback-'));
    devStack = await startLocalStack({ dataDir, log: () => {} });
    expectLoopbackOnly({
      'kafka (embedded)': portOf(devStack.kafka.brokers[0]!),
      'DynamoDB Local': portOf(devStack.dynamodb.endpoint),
      'Lambda endpoint': portOf(devStack.lambda.endpoint),
    });
  });

  it("the suite's shared stack (the broker it runs: embedded or Apache Kafka)", () => {
    const s = stack();
    expectLoopbackOnly({
      ...(s.kafkaKind === 'external' ? {} : { [`kafka (${s.kafkaKind})`]: portOf(s.kafkaBrokers[0]!) }),
      'DynamoDB Local': portOf(s.dynamodbEndpoint),
      'Lambda endpoint': portOf(s.lambdaEndpoint),
    });
  });

  it("the engine's health endpoint on its defaults, in process and through engine/main.ts", async () => {
    const topic = uniqueName('loopback');
    const table = uniqueName('loopback');
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, 1)]);
    const app = fixtureApp(topic, uniqueName('loopback'));
    const engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'loopback-test', brokers: stack().kafkaBrokers, logLevel: logLevel.NOTHING },
      dynamodb: dynamoClient(),
      healthPort: 0,
      logLevel: 'warn',
      logSink: () => {},
    });
    try {
      await engine.ready;
      expectLoopbackOnly({ 'engine health (startEngine)': engine.healthPort! });
    } finally {
      await engine.stop();
    }

    // engine/main.ts with no TRIBUTARY_HEALTH_HOST, as `npm run engine` runs it, on the same
    // table: tsx loads the views, whose fingerprints match those vitest's transform recorded.
    engineProcess = spawnEngine({
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/engine-reference-app.ts',
      ENGINE_FIXTURE_TOPIC: topic,
      ENGINE_FIXTURE_APP: uniqueName('loopback'),
    });
    const proc = engineProcess;
    await Promise.race([
      proc.running,
      proc.exited.then(({ code, signal }) => {
        throw new Error(`engine/main.ts exited (${code ?? signal}) before running:\n${proc.lines.join('\n')}`);
      }),
    ]);
    const listening = engineProcess.lines.map((l) => (l.startsWith('{') ? JSON.parse(l) : {})).find((l) => l.msg === 'health endpoint listening');
    expectLoopbackOnly({ 'engine health (engine/main.ts)': listening.port });
    engineProcess.child.kill('SIGTERM');
    expect((await engineProcess.exited).code).toBe(0);
  });
});
