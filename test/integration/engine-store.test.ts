/**
 * The engine's DynamoDB layer on DynamoDB Local: conditional writes (a lost condition becomes
 * WRITE_CONFLICT), batched reads past the 100-key BatchGetItem limit, whole-item puts that drop
 * trigger bookkeeping, and checkpoints that never move backwards nor lower a stored stream time.
 */
import { GetItemCommand } from 'dynamodb-toolbox';
import { beforeAll, describe, expect, it } from 'vitest';
import { DynamoItemStore } from '../../engine/internal/dynamodb-store.ts';
import { itemId } from '../../engine/internal/fold.ts';
import { WriteConflictError } from '../../engine/internal/errors.ts';
import { checkpointKey, createStorage, viewIndexKey, viewItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import { createTable, dynamoClient, uniqueName } from './helpers.ts';
import { testStorage } from './fixtures/engine-support.ts';

function item(key: string, version: number, extra: Partial<ViewItem> = {}): ViewItem {
  return {
    ...viewItemKey('v', key),
    ...viewIndexKey('v', key),
    view: 'v',
    key,
    state: { n: version, nested: { list: [1, 'two', null] } },
    version,
    offsets: { 't/0': String(version) },
    updatedAt: new Date(0).toISOString(),
    ...extra,
  };
}

describe('DynamoItemStore', () => {
  const table = uniqueName('engine-store');
  beforeAll(async () => {
    await createTable(table);
  });

  it('writes conditionally on the version and reports a lost condition as WRITE_CONFLICT', async () => {
    const store = new DynamoItemStore(testStorage(table), 4);
    await store.putItem(item('a', 1), 0);
    await expect(store.putItem(item('a', 1), 0)).rejects.toMatchObject({ code: 'WRITE_CONFLICT', retriable: true });
    await store.putItem(item('a', 2), 1);
    await expect(store.putItem(item('a', 3), 1)).rejects.toMatchObject({ code: 'WRITE_CONFLICT', context: { view: 'v', key: 'a' } });
    expect(await store.readItem(viewItemKey('v', 'a'))).toEqual(item('a', 2));
  });

  it('returns the item as stored with a lost condition, the same as a consistent read of it', async () => {
    // Storage as the engine builds it: from a plain client, wrapped with the shared document-client options.
    const store = new DynamoItemStore(createStorage({ dynamodb: dynamoClient(), tableName: table }), 4);
    await store.putItem(item('s', 1), 0);
    await store.putItem(item('s', 2, { state: { n: 2, ratio: 1.5, text: 'é' } }), 1);
    const lost = await store.putItem(item('s', 1), 0).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(lost).toBeInstanceOf(WriteConflictError);
    expect((lost as WriteConflictError).stored).toEqual({ item: await store.readItem(viewItemKey('v', 's')) });
    // No item stored: nothing to return, and the writer reads.
    const absent = await store.putItem(item('t', 2), 1).catch((error: unknown) => error);
    expect(absent).toMatchObject({ code: 'WRITE_CONFLICT', stored: undefined });
  });

  it('reads more than 100 items in one call and leaves absent ones out', async () => {
    const store = new DynamoItemStore(testStorage(table), 2);
    const keys = Array.from({ length: 230 }, (_, i) => `r${i}`);
    for (const key of keys.slice(0, 200)) await store.putItem(item(key, 1), 0);
    const wanted = keys.map((key) => ({ id: itemId(viewItemKey('v', key)), key: viewItemKey('v', key) }));
    const found = await store.readItems(wanted);
    expect(found.size).toBe(200);
    expect(found.get(itemId(viewItemKey('v', 'r199')))).toEqual(item('r199', 1));
    expect(found.has(itemId(viewItemKey('v', 'r229')))).toBe(false);
  });

  it('drops trigger bookkeeping with the next whole-item put, and keeps it when that put is stale', async () => {
    // The engine clears delivered bookkeeping in its cache only; the item's next conditional
    // put, a whole item without `pending`/`befores`, is what removes it from the table.
    const store = new DynamoItemStore(testStorage(table), 2);
    const pending = { pending: { t1: 0, t2: 0 }, befores: {} };
    await store.putItem(item('p', 1, pending), 0);
    expect((await store.readItem(viewItemKey('v', 'p')))?.pending).toEqual({ t1: 0, t2: 0 });
    await expect(store.putItem(item('p', 8), 7)).rejects.toMatchObject({ code: 'WRITE_CONFLICT' });
    expect((await store.readItem(viewItemKey('v', 'p')))?.pending).toEqual({ t1: 0, t2: 0 });
    await store.putItem(item('p', 2), 1);
    const cleared = await store.readItem(viewItemKey('v', 'p'));
    expect(cleared?.pending).toBeUndefined();
    expect(cleared?.befores).toBeUndefined();
    expect(cleared).toEqual(item('p', 2));
  });

  it('moves checkpoints forward only', async () => {
    const storage = testStorage(table);
    const store = new DynamoItemStore(storage, 2);
    const read = async () =>
      (await storage.checkpoints.build(GetItemCommand).key(checkpointKey('topic-x', 2)).send()).Item?.offset;
    await store.writeCheckpoint('topic-x', 2, '500');
    await store.writeCheckpoint('topic-x', 2, '400');
    expect(await read()).toBe('500');
    await store.writeCheckpoint('topic-x', 2, '1200');
    expect(await read()).toBe('1200');
  });

  it('at the offset already stored, only raises stream times, per view', async () => {
    // A task that lost its partition may checkpoint the offset the next owner checkpointed after
    // an idle-close advance: its older stream times must not replace the stored ones.
    const storage = testStorage(table);
    const store = new DynamoItemStore(storage, 2);
    const read = async (partition: number) => {
      const stored = (await storage.checkpoints.build(GetItemCommand).key(checkpointKey('topic-s', partition)).options({ consistent: true }).send()).Item;
      return { offset: stored?.offset, streamTime: stored?.streamTime };
    };
    await store.writeCheckpoint('topic-s', 0, '7', { a: 5_000, b: 1_000, c: 3_000 });
    await store.writeCheckpoint('topic-s', 0, '7', { a: 1_000, b: 4_000, 'd.e': 2_000 });
    expect(await read(0)).toEqual({ offset: '7', streamTime: { a: 5_000, b: 4_000, c: 3_000, 'd.e': 2_000 } });
    await store.writeCheckpoint('topic-s', 0, '7');
    await store.writeCheckpoint('topic-s', 0, '6', { a: 9_000 });
    expect(await read(0)).toEqual({ offset: '7', streamTime: { a: 5_000, b: 4_000, c: 3_000, 'd.e': 2_000 } });
    await store.writeCheckpoint('topic-s', 0, '8', { a: 6_000 });
    expect(await read(0)).toEqual({ offset: '8', streamTime: { a: 6_000 } });

    // A stored checkpoint without stream times gets the new ones.
    await store.writeCheckpoint('topic-s', 1, '3');
    await store.writeCheckpoint('topic-s', 1, '3', { a: 1_000 });
    expect(await read(1)).toEqual({ offset: '3', streamTime: { a: 1_000 } });

    // Racing checkpoints at one offset: each view ends at the latest of them.
    const writes = Array.from({ length: 8 }, (_, i) => ({ a: 1_000 * i, b: 1_000 * (7 - i), [`v${i % 3}`]: i }));
    await Promise.all(writes.map((times) => store.writeCheckpoint('topic-s', 1, '3', times)));
    const expected: Record<string, number> = { a: 1_000 };
    for (const times of writes) for (const [view, time] of Object.entries(times)) expected[view] = Math.max(expected[view] ?? time, time);
    expect(await read(1)).toEqual({ offset: '3', streamTime: expected });
  });
});
