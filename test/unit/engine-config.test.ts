import { describe, expect, it } from 'vitest';
import {
  compileConfig,
  EngineError,
  functionNamesFromEnv,
  healthHostFromEnv,
  healthPortFromEnv,
  kafkaConfigFromEnv,
  logLevelFromEnv,
  tableNameFromEnv,
} from '../../engine/index.ts';
import { testPauseFromEnv } from '../../engine/internal/config.ts';
import { KeyedMutex, mapLimit } from '../../engine/internal/concurrency.ts';
import { createLogger, emfLine } from '../../engine/internal/log.ts';
import { defineApp, defineTrigger, defineView } from '../../sdk/index.ts';

const app = defineApp({
  name: 'gym',
  views: [defineView({ name: 'v', source: 't', key: (e: { k: string }) => e.k, initial: () => 0, reduce: (s: number) => s + 1 })],
});

describe('compileConfig', () => {
  it('fills defaults into a frozen config', () => {
    const config = compileConfig({ app, tableName: 'gym-views' });
    expect(config).toMatchObject({ groupId: 'gym', healthPort: null, healthHost: '127.0.0.1', logLevel: 'info', cacheMaxEntries: 100_000 });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('rejects a missing app or table and inconsistent timings with INVALID_CONFIG', () => {
    expect(() => compileConfig({ tableName: 'gym-views' })).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
    expect(() => compileConfig({ app })).toThrowError(/TRIBUTARY_TABLE/);
    expect(() => compileConfig({ app, tableName: 'gym-views', sessionTimeoutMs: 1_000, heartbeatIntervalMs: 2_000 })).toThrowError(
      /heartbeatIntervalMs \(2000\) must be below sessionTimeoutMs/,
    );
    expect(() => compileConfig({ app, tableName: 'gym-views', writeConcurrency: 0 })).toThrowError(EngineError);
    expect(() => compileConfig({ app, tableName: 'gym-views', healthPort: 70_000 })).toThrowError(/healthPort/);
    const big = defineView({
      name: 'big',
      source: 't',
      key: (e: { k: string }) => e.k,
      initial: () => 0,
      reduce: (s: number) => s + 1,
      maxStateBytes: 300_000,
    });
    const triggered = defineApp({ name: 'big', views: [big], triggers: [defineTrigger({ view: big, function: 'f' })] });
    expect(() => compileConfig({ app: triggered, tableName: 'gym-views' })).toThrowError(/maxStateBytes <= 190000/);
  });
});

describe('environment helpers', () => {
  it('build a kafkajs config from KAFKA_* variables', () => {
    expect(kafkaConfigFromEnv({ KAFKA_BROKERS: 'a:9092, b:9092' })).toMatchObject({ brokers: ['a:9092', 'b:9092'] });
    expect(
      kafkaConfigFromEnv({ KAFKA_BROKERS: 'a:9096', KAFKA_AUTH: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' }),
    ).toMatchObject({ ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' } });
    expect(kafkaConfigFromEnv({ KAFKA_BROKERS: 'a:9094', KAFKA_SSL: 'true' })).toMatchObject({ ssl: true });
  });

  it('fail with a message naming the variable, the value and the fix', () => {
    expect(() => kafkaConfigFromEnv({})).toThrowError(/KAFKA_BROKERS is not set/);
    expect(() => kafkaConfigFromEnv({ KAFKA_BROKERS: 'nohost' })).toThrowError(/"nohost" is not host:port/);
    expect(() => kafkaConfigFromEnv({ KAFKA_BROKERS: 'a:1', KAFKA_AUTH: 'scram-sha-512' })).toThrowError(/KAFKA_SASL_USERNAME/);
    expect(() => kafkaConfigFromEnv({ KAFKA_BROKERS: 'a:1', KAFKA_AUTH: 'kerberos' })).toThrowError(/"kerberos"/);
    expect(() => functionNamesFromEnv({ TRIBUTARY_FUNCTION_NAMES: '{oops' })).toThrowError(/not JSON/);
    expect(() => healthPortFromEnv({ TRIBUTARY_HEALTH_PORT: 'http' })).toThrowError(/"http"/);
    expect(() => healthHostFromEnv({ TRIBUTARY_HEALTH_HOST: '0.0.0.0:8080' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/"0\.0\.0\.0:8080".*127\.0\.0\.1/) }),
    );
    expect(() => logLevelFromEnv({ TRIBUTARY_LOG_LEVEL: 'loud' })).toThrowError(/"loud"/);
    expect(() => tableNameFromEnv({})).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('parse the optional variables with their defaults', () => {
    expect(functionNamesFromEnv({})).toEqual({});
    expect(functionNamesFromEnv({ TRIBUTARY_FUNCTION_NAMES: '{"notify":"gym-notify"}' })).toEqual({ notify: 'gym-notify' });
    expect(healthPortFromEnv({})).toBe(8080);
    expect(healthPortFromEnv({ TRIBUTARY_HEALTH_PORT: '0' })).toBe(0);
    expect(healthHostFromEnv({})).toBe('127.0.0.1');
    expect(healthHostFromEnv({ TRIBUTARY_HEALTH_HOST: ' 0.0.0.0 ' })).toBe('0.0.0.0');
    expect(healthHostFromEnv({ TRIBUTARY_HEALTH_HOST: '::1' })).toBe('::1');
    expect(healthHostFromEnv({ TRIBUTARY_HEALTH_HOST: 'localhost' })).toBe('localhost');
    expect(logLevelFromEnv({ TRIBUTARY_LOG_LEVEL: 'DEBUG' })).toBe('debug');
  });

  it('take the test-only pause point only with TRIBUTARY_TEST_HOOKS=1, and only a known one', () => {
    expect(testPauseFromEnv({})).toEqual({});
    expect(testPauseFromEnv({ TRIBUTARY_TEST_HOOKS: '1' })).toEqual({});
    expect(testPauseFromEnv({ TRIBUTARY_TEST_HOOKS: '1', TRIBUTARY_TEST_PAUSE_AT: 'before-swap' })).toEqual({ pauseAt: 'before-swap' });
    expect(testPauseFromEnv({ TRIBUTARY_TEST_HOOKS: '1', TRIBUTARY_TEST_PAUSE_AT: ' after-swap ' })).toEqual({ pauseAt: 'after-swap' });
    // Set by accident (no TRIBUTARY_TEST_HOOKS=1): a startup error, never a parked build.
    for (const hooks of [undefined, '0', 'true']) {
      expect(() => testPauseFromEnv({ TRIBUTARY_TEST_PAUSE_AT: 'before-swap', ...(hooks !== undefined ? { TRIBUTARY_TEST_HOOKS: hooks } : {}) })).toThrowError(
        expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/test-only.*TRIBUTARY_TEST_HOOKS=1/) }),
      );
    }
    expect(() => testPauseFromEnv({ TRIBUTARY_TEST_HOOKS: '1', TRIBUTARY_TEST_PAUSE_AT: 'mid-swap' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/before-swap, after-swap, received "mid-swap"/) }),
    );
  });
});

describe('logs and metrics', () => {
  it('write one JSON object per line, filtered by level', () => {
    const lines: string[] = [];
    const log = createLogger('info', (line) => lines.push(line), { app: 'gym' });
    log.debug('hidden');
    log.warn('batch failed', { partition: 2, error: new EngineError('STORAGE_FAILED', 'throttled', { retriable: true }) });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 'warn',
      msg: 'batch failed',
      app: 'gym',
      partition: 2,
      error: { type: 'EngineError', message: 'throttled', code: 'STORAGE_FAILED' },
    });
  });

  it('emit CloudWatch EMF with the contract names', () => {
    const line = JSON.parse(
      emfLine('gym', { ConsumerLag: 3, DeadLetters: 1, EventsApplied: 10, TriggerInvocations: 2, TriggerErrors: 0 }, 5),
    );
    expect(line._aws).toEqual({
      Timestamp: 5,
      CloudWatchMetrics: [
        {
          Namespace: 'Tributary',
          Dimensions: [['App']],
          Metrics: ['ConsumerLag', 'DeadLetters', 'EventsApplied', 'TriggerInvocations', 'TriggerErrors'].map((Name) => ({
            Name,
            Unit: 'Count',
          })),
        },
      ],
    });
    expect(line).toMatchObject({ App: 'gym', ConsumerLag: 3, DeadLetters: 1 });
  });
});

describe('concurrency', () => {
  it('mapLimit keeps order and bounds calls in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapLimit([1, 2, 3, 4, 5, 6], 2, async (n) => {
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      await Promise.resolve();
      inFlight -= 1;
      return n * 10;
    });
    expect(out).toEqual([10, 20, 30, 40, 50, 60]);
    expect(peak).toBe(2);
    await expect(mapLimit([1, 2], 2, async (n) => { if (n === 2) throw new Error('x'); return n; })).rejects.toThrow('x');
  });

  it('KeyedMutex runs work on one key one at a time', async () => {
    const mutex = new KeyedMutex();
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = mutex.run('k', async () => {
      order.push('a-start');
      await gate;
      order.push('a-end');
    });
    const b = mutex.run('k', async () => {
      order.push('b');
    });
    const c = mutex.run('other', async () => {
      order.push('c');
    });
    await c;
    release();
    await Promise.all([a, b]);
    expect(order).toEqual(['a-start', 'c', 'a-end', 'b']);
  });
});
