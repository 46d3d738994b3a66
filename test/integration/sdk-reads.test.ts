import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { PutItemCommand } from 'dynamodb-toolbox/entity/actions/put';
import { beforeAll, describe, expect, it } from 'vitest';
import { createViewReader, defineApp, defineView, SdkError, type View, type ViewKeyRange, type ViewQueryOptions, type ViewReader } from '../../sdk/index.ts';
import { checkpointKey, createStorage, offsetsKey, viewIndexKey, viewIndexShard, viewItemKey, type Storage } from '../../sdk/contract/index.ts';
import { createTable, dynamoClient, uniqueName, waitFor } from './helpers.ts';

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
      ...viewIndexKey(view, key),
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
  // query() finds keys through an eventually consistent index: wait until it lists them all.
  await untilListed(counters, 131);
  await untilListed(other, 3);
});

/** Every key `query` lists for `view`, through every page. */
async function listAll(view: View<any, any>, range: ViewKeyRange = {}, options: ViewQueryOptions = {}): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await reader.query(view, range, { ...options, cursor });
    keys.push(...page.items.map((i) => i.key));
    cursor = page.cursor;
  } while (cursor !== undefined);
  return keys;
}

/** Waits (with a deadline) until the key index lists `count` keys of `view`. */
async function untilListed(view: View<any, any>, count: number): Promise<void> {
  await waitFor(async () => (await listAll(view, {}, { limit: 1_000 })).length === count, {
    timeoutMs: 10_000,
    message: `the key index lists ${count} keys of view "${view.name}"`,
  });
}

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
    await untilListed(blank, 3);
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

  it('rejects a cursor from another view or another read, a bad limit and an inverted range', async () => {
    const page = await reader.query(counters, {}, { limit: 2 });
    expectCode(await reader.query(other, {}, { cursor: page.cursor }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.query(counters, { prefix: 'k-1' }, { cursor: page.cursor }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.query(counters, {}, { cursor: page.cursor, order: 'desc' }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.query(counters, {}, { cursor: 'garbage' }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.query(counters, {}, { limit: 0 }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
    expectCode(await reader.query(counters, { from: 'b', to: 'a' }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
  });
});

describe('query over a view spread across partitions', () => {
  const spread = defineView({
    name: 'spread',
    source: 'sdk-reads-events',
    key: (e: { id: string }) => e.id,
    initial: () => ({ n: 0 }),
    reduce: (s) => s,
  });
  // 640 keys: prefix groups, decimal strings ("10" < "9"), and characters where UTF-16 and UTF-8
  // order disagree (U+E000 sorts before the emoji U+1F600 in DynamoDB, after it in JS's `<`).
  const groups = ['a/', 'b/', 'p-1/', 'p-10/', 'p-2/', '', '\u{1F600}', '\uE000', 'é'];
  const keys = Array.from({ length: 640 }, (_, i) => `${groups[i % groups.length]}${(i * 7919) % 1000}`);
  /** The reference: DynamoDB orders string keys by their UTF-8 bytes. */
  const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  const sorted = [...new Set(keys)].sort(byBytes);

  beforeAll(async () => {
    expect(new Set(keys).size).toBe(keys.length);
    for (let i = 0; i < keys.length; i += 64) {
      await Promise.all(keys.slice(i, i + 64).map((key) => putViewItem('spread', key, { n: Buffer.from(key).length })));
    }
    await untilListed(spread, keys.length);
  });

  it('stores one partition key per view key, indexed over all 16 shards', async () => {
    const partitions = new Set<string>();
    const shards = new Map<string, number>();
    let start: Record<string, unknown> | undefined;
    do {
      const page = await storage.documentClient.send(
        new ScanCommand({
          TableName: storage.tableName,
          FilterExpression: '#view = :view',
          ExpressionAttributeNames: { '#view': 'view' },
          ExpressionAttributeValues: { ':view': 'spread' },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) {
        partitions.add(String(item.pk));
        shards.set(String(item.ixShard), (shards.get(String(item.ixShard)) ?? 0) + 1);
      }
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    expect(partitions.size).toBe(keys.length);
    expect([...shards.keys()].sort()).toEqual(Array.from({ length: 16 }, (_, i) => `v#spread#${i}`).sort());
    // FNV-1a spreads evenly: no shard holds more than twice its share (40).
    expect(Math.max(...shards.values())).toBeLessThan(80);
  });

  it('lists every key in DynamoDB key order through cursors, both directions, full pages until the last', async () => {
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await reader.query(spread, {}, { limit: 37, cursor });
      pages.push(page.items.map((i) => i.key));
      cursor = page.cursor;
    } while (cursor !== undefined);
    expect(pages.flat()).toEqual(sorted);
    expect(pages.slice(0, -1).every((p) => p.length === 37)).toBe(true);
    expect(pages).toHaveLength(Math.ceil(sorted.length / 37));
    expect(await listAll(spread, {}, { limit: 50, order: 'desc' })).toEqual([...sorted].reverse());
    // One page of everything, strongly consistent, states included.
    const all = await reader.query(spread, {}, { limit: 1_000, consistent: true });
    expect(all.cursor).toBeUndefined();
    expect(all.items.map((i) => [i.key, i.state.n])).toEqual(sorted.map((k) => [k, Buffer.from(k).length]));
  });

  it('selects by prefix and by range, paginated, in both orders', async () => {
    for (const prefix of ['p-1', 'p-1/', 'a/', '\u{1F600}', 'nothing']) {
      const expected = sorted.filter((k) => k.startsWith(prefix));
      expect(await listAll(spread, { prefix }, { limit: 17 }), prefix).toEqual(expected);
      expect(await listAll(spread, { prefix }, { limit: 23, order: 'desc' }), prefix).toEqual([...expected].reverse());
    }
    const ranges: Array<{ from?: string; to?: string }> = [{ from: 'b/', to: 'p-2/' }, { from: 'p-10/5' }, { to: '300' }, { from: '\uE000', to: '\u{1F600}~' }];
    for (const range of ranges) {
      const expected = sorted.filter((k) => (range.from === undefined || byBytes(k, range.from) >= 0) && (range.to === undefined || byBytes(k, range.to) <= 0));
      expect(expected.length, JSON.stringify(range)).toBeGreaterThan(0);
      expect(await listAll(spread, range, { limit: 29 }), JSON.stringify(range)).toEqual(expected);
      expect(await listAll(spread, range, { limit: 31, order: 'desc' }), JSON.stringify(range)).toEqual([...expected].reverse());
    }
  });

  it('fills a page when one shard holds most of it (a shard asked again for the rest)', async () => {
    const skewed = defineView({ name: 'skewed', source: 'sdk-reads-events', key: (e: { id: string }) => e.id, initial: () => ({ n: 0 }), reduce: (s) => s });
    // 60 keys of shard 3 and 10 of others: a page of 50 takes far more than 1/16 from shard 3.
    const candidates = Array.from({ length: 3_000 }, (_, i) => `s-${i}`);
    const crowded = candidates.filter((k) => viewIndexShard(k) === 3).slice(0, 60);
    const others = candidates.filter((k) => viewIndexShard(k) !== 3).slice(0, 10);
    await Promise.all([...crowded, ...others].map((key) => putViewItem('skewed', key, { n: 1 })));
    await untilListed(skewed, 70);
    const expected = [...crowded, ...others].sort(byBytes);
    const first = await reader.query(skewed, {}, { limit: 50 });
    expect(first.items.map((i) => i.key)).toEqual(expected.slice(0, 50));
    const rest = await reader.query(skewed, {}, { limit: 50, cursor: first.cursor });
    expect(rest.items.map((i) => i.key)).toEqual(expected.slice(50));
    expect(await listAll(skewed, {}, { limit: 45, order: 'desc' })).toEqual([...expected].reverse());
  });

  it('refuses a cursor edited to skip keys', async () => {
    const page = await reader.query(spread, {}, { limit: 20 });
    const decoded = JSON.parse(Buffer.from(page.cursor!, 'base64url').toString('utf8')) as { s: unknown[] };
    // Move one shard's position to a key of another shard.
    const shard = decoded.s.findIndex((p) => typeof p === 'string');
    const foreign = sorted.map((k) => viewIndexKey('spread', k)).find((ix) => !decoded.s.includes(ix.ixKey) && ix.ixShard !== `v#spread#${shard}`)!;
    decoded.s[shard] = foreign.ixKey;
    const edited = Buffer.from(JSON.stringify(decoded), 'utf8').toString('base64url');
    expectCode(await reader.query(spread, {}, { cursor: edited }).catch((e: unknown) => e), 'INVALID_ARGUMENT');
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
