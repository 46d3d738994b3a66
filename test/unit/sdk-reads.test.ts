import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { createViewReader, defineApp, defineView, SdkError } from '../../sdk/index.ts';

// Input validation happens before any request: these tests need no network. The client points
// at a closed loopback port, so a request sneaking through would fail with READ_FAILED, not pass.
// (READ_FAILED itself is covered against DynamoDB Local in test/integration/sdk-reads.test.ts.)
const dynamodb = new DynamoDBClient({
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:9',
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  maxAttempts: 1,
});

const view = defineView({
  name: 'counters',
  source: 'events',
  key: (e: { id: string }) => e.id,
  initial: () => ({ n: 0 }),
  reduce: (s) => s,
});
const app = defineApp({ name: 'unitReads', views: [view] });

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SdkError);
    return (error as SdkError).code;
  }
  return undefined;
}

describe('createViewReader', () => {
  it('needs a table name: option or TRIBUTARY_TABLE', () => {
    const saved = process.env.TRIBUTARY_TABLE;
    try {
      delete process.env.TRIBUTARY_TABLE;
      expect(() => createViewReader({ dynamodb })).toThrowError(expect.objectContaining({ code: 'CONFIG_MISSING' }));
      process.env.TRIBUTARY_TABLE = 'from-env';
      expect(createViewReader({ dynamodb }).tableName).toBe('from-env');
      expect(createViewReader({ dynamodb, tableName: 'explicit' }).tableName).toBe('explicit');
    } finally {
      if (saved === undefined) delete process.env.TRIBUTARY_TABLE;
      else process.env.TRIBUTARY_TABLE = saved;
    }
  });
});

describe('view reads reject bad input before any request', () => {
  const reader = createViewReader({ dynamodb, tableName: 'unit-table' });

  it('get / getMany: bad keys and non-views', async () => {
    expect(await codeOf(reader.get(view, null as never))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.get(view, Infinity))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.get(view, 'x'.repeat(1_001)))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.get({ name: 'x' } as never, 'k'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.getMany(view, ['a', null as never]))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.getMany(view, 'a' as never))).toBe('INVALID_ARGUMENT');
  });

  it('query: bad limit, order, range and cursor', async () => {
    expect(await codeOf(reader.query(view, {}, { limit: 0 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.query(view, {}, { limit: 1_001 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.query(view, {}, { order: 'up' as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.query(view, { from: 'b', to: 'a' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.query(view, { prefix: 3 as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.query(view, {}, { cursor: 'not-a-cursor' }))).toBe('INVALID_ARGUMENT');
  });

  it('waitFor: topic not read by the view or app, bad partition, offset or timeout', async () => {
    const at = { topic: 'events', partition: 0, offset: 1 };
    expect(await codeOf(reader.waitFor(view, { ...at, topic: 'other' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.waitFor(app, { ...at, topic: 'other' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.waitFor(view, { ...at, partition: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.waitFor(view, { ...at, offset: '-1' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.waitFor(view, { ...at, offset: 'x' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.waitFor(view, at, { timeoutMs: -1 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.waitFor({} as never, at))).toBe('INVALID_ARGUMENT');
  });
});

describe('windowed reads reject bad input and the wrong method before any request', () => {
  const reader = createViewReader({ dynamodb, tableName: 'unit-table' });
  const DAY = 86_400_000;
  const daily = { ...defineView({ name: 'daily', source: 'events', key: (e: { id: string }) => e.id, initial: () => ({ n: 0 }), reduce: (s) => s }), window: { kind: 'tumbling', sizeMs: DAY, graceMs: 0, retentionMs: 7 * DAY, emit: 'changes', onLate: 'dead-letter', idleCloseMs: undefined, timestamp: undefined } } as const;

  async function messageOf(promise: Promise<unknown>): Promise<string> {
    const error = await promise.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SdkError);
    expect((error as SdkError).code).toBe('INVALID_ARGUMENT');
    return (error as Error).message;
  }

  it('get, getMany, getState and query on a windowed view name the window methods', async () => {
    for (const read of [reader.get(daily, 'a'), reader.getMany(daily, ['a']), reader.getState(daily, 'a'), reader.query(daily, {})]) {
      expect(await messageOf(read)).toMatch(/tumbling windows of 86400000 ms.*window\(view, key, windowStart\).*windows\(view, key, \{ from, to \}\).*latestWindow\(view, key\).*windowsAt\(view, windowStart\)/);
    }
  });

  it('window methods on an unwindowed view name get and query', async () => {
    for (const read of [reader.window(view, 'a', 0), reader.windows(view, 'a'), reader.latestWindow(view, 'a'), reader.windowsAt(view, 0)]) {
      expect(await messageOf(read)).toMatch(/has no window.*get\(view, key\).*query\(view, range\)/);
    }
  });

  it('window bounds must be finite, non-negative integers', async () => {
    for (const bad of [-1, 1.5, Number.NaN, Infinity, '5' as never, 10 ** 15]) {
      expect(await codeOf(reader.window(daily, 'a', bad))).toBe('INVALID_ARGUMENT');
      expect(await codeOf(reader.windows(daily, 'a', { from: bad }))).toBe('INVALID_ARGUMENT');
      expect(await codeOf(reader.windows(daily, 'a', { to: bad }))).toBe('INVALID_ARGUMENT');
      expect(await codeOf(reader.windowsAt(daily, bad))).toBe('INVALID_ARGUMENT');
    }
    expect(await codeOf(reader.windows(daily, 'a', { from: 2 * DAY, to: DAY }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.window(daily, null as never, 0))).toBe('INVALID_ARGUMENT');
  });

  it('windows and windowsAt: bad limit, order, prefix and cursor', async () => {
    const now = Date.now();
    expect(await codeOf(reader.windows(daily, 'a', { limit: 0 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.windows(daily, 'a', { order: 'newest' as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.windows(daily, 'a', { cursor: 'nope' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.windowsAt(daily, now, { prefix: 1 as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.windowsAt(daily, now, { limit: 5_000 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(reader.windowsAt(daily, now, { cursor: 'nope' }))).toBe('INVALID_ARGUMENT');
  });

  it('windowsAt of a window past retention is WINDOW_EXPIRED, naming the window, the retention and the fix', async () => {
    const error = await reader.windowsAt(daily, 0).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'WINDOW_EXPIRED', context: { view: 'daily', windowStart: 0, retentionMs: 7 * DAY } });
    expect((error as Error).message).toMatch(/1970-01-01T00:00:00\.000Z.*604800000 ms \(retentionMs\).*raise the view's window retentionMs/);
  });
});
