import { PutItemCommand } from 'dynamodb-toolbox/entity/actions/put';
import { beforeAll, describe, expect, it } from 'vitest';
import { createViewReader, defineApp, defineView, SdkError, type ViewReader } from '../../sdk/index.ts';
import { checkpointKey, createStorage, offsetsKey, viewItemKey, type Storage } from '../../sdk/contract/index.ts';
import { createTable, dynamoClient, uniqueName } from './helpers.ts';

interface Counter {
  n: number;
  tags: string[];
}

const counters = defineView({
  name: 'counters',
  source: 'sdk-reads-events',
  key: (e: { id: string }) => e.id,
  initial: (): Counter => ({ n: 0, tags: [] }),
  reduce: (s) => ({ ...s, n: s.n + 1 }),
});
const other = defineView({
  name: 'other',
  source: 'sdk-reads-events',
  key: (e: { id: string }) => e.id,
  initial: () => ({ n: 0 }),
  reduce: (s) => s,
});
const app = defineApp({ name: 'readsTest', views: [counters, other] });

let storage: Storage;
let reader: ViewReader;

async function putViewItem(view: string, key: string | number, state: unknown, version = 1): Promise<void> {
  await storage.viewItems
    .build(PutItemCommand)
    .item({
      ...viewItemKey(view, key),
      view,
      key: String(key),
      state,
      version,
      offsets: { [offsetsKey('sdk-reads-events', 0)]: String(version - 1) },
      updatedAt: new Date().toISOString(),
      // Trigger bookkeeping must not leak into reads.
      pending: { someTrigger: version - 1 },
    })
    .send();
}

async function putCheckpoint(topic: string, partition: number, offset: string): Promise<void> {
  await storage.checkpoints
    .build(PutItemCommand)
    .item({ ...checkpointKey(topic, partition), topic, partition, offset, updatedAt: new Date().toISOString() })
    .send();
}

function expectCode(error: unknown, code: string): void {
  expect(error).toBeInstanceOf(SdkError);
  expect((error as SdkError).code).toBe(code);
}

beforeAll(async () => {
  const tableName = await createTable(uniqueName('sdk-reads'));
  storage = createStorage({ dynamodb: dynamoClient(), tableName });
  reader = createViewReader({ dynamodb: dynamoClient(), tableName });
  // 130 keys in `counters` (more than one BatchGetItem), a few in `other` with overlapping keys.
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 130; i++) {
    writes.push(putViewItem('counters', `k-${String(i).padStart(3, '0')}`, { n: i, tags: [`t${i % 3}`] }, i + 1));
  }
  writes.push(putViewItem('counters', 42, { n: 4200, tags: [] }));
  for (const key of ['k-000', 'k-001', 'zz']) writes.push(putViewItem('other', key, { n: -1 }));
  await Promise.all(writes);
});

describe('createViewReader', () => {
  it('fails with CONFIG_MISSING when no table name is given', () => {
    const saved = process.env.TRIBUTARY_TABLE;
    delete process.env.TRIBUTARY_TABLE;
    try {
      expect(() => createViewReader({ dynamodb: dynamoClient() })).toThrowError(/TRIBUTARY_TABLE/);
      try {
        createViewReader({ dynamodb: dynamoClient() });
      } catch (error) {
        expectCode(error, 'CONFIG_MISSING');
      }
    } finally {
      if (saved !== undefined) process.env.TRIBUTARY_TABLE = saved;
    }
  });

  it('turns a missing table into READ_FAILED naming the table', async () => {
    const missing = createViewReader({ dynamodb: dynamoClient(), tableName: uniqueName('no-such-table') });
    const error = await missing.get(counters, 'k-001').catch((e: unknown) => e);
    expectCode(error, 'READ_FAILED');
    expect((error as Error).message).toMatch(/ResourceNotFound/);
  });
});

describe('get', () => {
  it('reads state, version, offsets and updatedAt, without trigger bookkeeping', async () => {
    const item = await reader.get(counters, 'k-007');
    expect(item).toMatchObject({ key: 'k-007', state: { n: 7, tags: ['t1'] }, version: 8, offsets: { 'sdk-reads-events/0': '7' } });
    expect(Date.parse(item!.updatedAt)).toBeGreaterThan(0);
    expect(item).not.toHaveProperty('pending');
    const consistent = await reader.get(counters, 'k-007', { consistent: true });
    expect(consistent?.state.n).toBe(7);
  });

  it('reads numeric keys in decimal form and returns undefined for missing keys', async () => {
    expect((await reader.get(counters, 42))?.state.n).toBe(4200);
    expect(await reader.get(counters, 'nobody')).toBeUndefined();
    expect(await reader.getState(counters, 'nobody')).toEqual({ n: 0, tags: [] });
    expect((await reader.getState(counters, 'k-003')).n).toBe(3);
  });

  it('keeps views apart: the same key in another view is another item', async () => {
    expect((await reader.get(other, 'k-001'))?.state).toEqual({ n: -1 });
    expect((await reader.get(counters, 'k-001'))?.state.n).toBe(1);
  });

  it('rejects bad keys with INVALID_ARGUMENT', async () => {
    expectCode(await reader.get(counters, null as never).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.get(counters, Number.NaN).catch((e: unknown) => e), 'INVALID_ARGUMENT');
  });
});

describe("the empty-string key ''", () => {
  const blank = defineView({
    name: 'blank',
    source: 'sdk-reads-events',
    key: (e: { id: string }) => e.id,
    initial: () => ({ n: 0 }),
    reduce: (s) => s,
  });

  it('is read by get, getMany and query like any other key, and sorts first', async () => {
    await Promise.all([putViewItem('blank', '', { n: 1 }), putViewItem('blank', 'a', { n: 2 }), putViewItem('blank', 'b', { n: 3 })]);
    expect(await reader.get(blank, '', { consistent: true })).toMatchObject({ key: '', state: { n: 1 } });
    expect((await reader.getMany(blank, ['a', '', 'zz'], { consistent: true })).map((i) => i?.state.n)).toEqual([2, 1, undefined]);
    const keysOf = (page: { items: { key: string }[] }) => page.items.map((i) => i.key);
    expect(keysOf(await reader.query(blank, { prefix: '' }, { consistent: true }))).toEqual(['', 'a', 'b']);
    expect(keysOf(await reader.query(blank, { from: '', to: 'a' }, { consistent: true }))).toEqual(['', 'a']);
    expect(keysOf(await reader.query(blank, { to: '' }, { consistent: true }))).toEqual(['']);
    expect(keysOf(await reader.query(blank, { prefix: 'a' }, { consistent: true }))).toEqual(['a']);
  });
});

describe('getMany', () => {
  it('reads more than 100 keys across batches, aligned with the keys, duplicates and misses included', async () => {
    const keys = [...Array.from({ length: 120 }, (_, i) => `k-${String(i).padStart(3, '0')}`), 'missing', 'k-005', 42];
    const items = await reader.getMany(counters, keys, { consistent: true });
    expect(items).toHaveLength(keys.length);
    for (let i = 0; i < 120; i++) expect(items[i]?.state.n).toBe(i);
    expect(items[120]).toBeUndefined();
    expect(items[121]?.key).toBe('k-005');
    expect(items[122]?.state.n).toBe(4200);
    expect(await reader.getMany(counters, [])).toEqual([]);
  });
});

describe('query', () => {
  it('selects by prefix, in key order, both directions', async () => {
    const page = await reader.query(counters, { prefix: 'k-01' });
    expect(page.items.map((i) => i.key)).toEqual(Array.from({ length: 10 }, (_, i) => `k-01${i}`));
    expect(page.cursor).toBeUndefined();
    const desc = await reader.query(counters, { prefix: 'k-01' }, { order: 'desc', limit: 3, consistent: true });
    expect(desc.items.map((i) => i.key)).toEqual(['k-019', 'k-018', 'k-017']);
  });

  it('selects inclusive ranges, open on either side, within the view only', async () => {
    const between = await reader.query(counters, { from: 'k-010', to: 'k-013' });
    expect(between.items.map((i) => i.state.n)).toEqual([10, 11, 12, 13]);
    const upTo = await reader.query(counters, { to: 'k-001' });
    expect(upTo.items.map((i) => i.key)).toEqual(['42', 'k-000', 'k-001']);
    const from = await reader.query(other, { from: 'k-001' });
    expect(from.items.map((i) => i.key)).toEqual(['k-001', 'zz']);
  });

  it('pages through every key with an opaque cursor', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await reader.query(counters, {}, { limit: 50, cursor });
      seen.push(...page.items.map((i) => i.key));
      cursor = page.cursor;
      pages++;
    } while (cursor !== undefined);
    expect(seen).toHaveLength(131);
    expect(new Set(seen).size).toBe(131);
    expect(pages).toBeGreaterThanOrEqual(3);
  });

  it('rejects a cursor from another view, a bad limit and an inverted range', async () => {
    const page = await reader.query(counters, {}, { limit: 2 });
    expectCode(await reader.query(other, {}, { cursor: page.cursor }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.query(counters, {}, { cursor: 'garbage' }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.query(counters, {}, { limit: 0 }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.query(counters, { from: 'b', to: 'a' }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
  });
});

describe('waitFor', () => {
  it('returns once the checkpoint is past the offset', async () => {
    const topic = counters.source;
    await putCheckpoint(topic, 3, '11');
    await reader.waitFor(counters, { topic, partition: 3, offset: '10' }, { timeoutMs: 1_000 });
    await reader.waitFor(app, { topic, partition: 3, offset: 0 }, { timeoutMs: 1_000 });
  });

  it('times out with VIEW_NOT_CAUGHT_UP while the checkpoint is at or below the offset', async () => {
    const topic = counters.source;
    await putCheckpoint(topic, 4, '5');
    const started = Date.now();
    const error = await reader.waitFor(counters, { topic, partition: 4, offset: 5 }, { timeoutMs: 300 }).catch((e: unknown) => e);
    expectCode(error, 'VIEW_NOT_CAUGHT_UP');
    expect((error as SdkError).retriable).toBe(true);
    expect((error as SdkError).context).toMatchObject({ topic, partition: 4, checkpoint: '5' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    // No checkpoint at all: also not caught up.
    expectCode(
      await reader.waitFor(counters, { topic, partition: 9, offset: 0 }, { timeoutMs: 50 }).catch((e: unknown) => e),
      'VIEW_NOT_CAUGHT_UP',
    );
  });

  it('succeeds when the checkpoint moves past the offset while waiting', async () => {
    const topic = counters.source;
    await putCheckpoint(topic, 5, '100');
    const waiting = reader.waitFor(counters, { topic, partition: 5, offset: 150n }, { timeoutMs: 5_000 });
    let settled = false;
    void waiting.then(() => (settled = true), () => (settled = true));
    // The waiter must still be pending after a few of its polls; then the checkpoint advances.
    await reader.get(counters, 'k-001', { consistent: true });
    expect(settled).toBe(false);
    await putCheckpoint(topic, 5, '151');
    await waiting;
  });

  it('rejects a topic the view does not read and malformed offsets with INVALID_ARGUMENT', async () => {
    expectCode(
      await reader.waitFor(counters, { topic: 'elsewhere', partition: 0, offset: 1 }).catch((e: unknown) => e),
      'INVALID_ARGUMENT',
    );
    expectCode(
      await reader.waitFor(counters, { topic: counters.source, partition: 0, offset: 'ten' }).catch((e: unknown) => e),
      'INVALID_ARGUMENT',
    );
    expectCode(
      await reader.waitFor(counters, { topic: counters.source, partition: -1, offset: 1 }).catch((e: unknown) => e),
      'INVALID_ARGUMENT',
    );
  });
});
