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
