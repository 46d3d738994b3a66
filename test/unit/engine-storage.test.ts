import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutItemCommand } from 'dynamodb-toolbox';
import { describe, expect, it } from 'vitest';
import { conditionalPutInput } from '../../engine/internal/dynamodb-store.ts';
import { ABSENT_ITEM, foldItem } from '../../engine/internal/fold.ts';
import { defineTrigger, defineView, type SourceRecord } from '../../sdk/index.ts';
import { createStorage } from '../../sdk/contract/index.ts';

const view = defineView({
  name: 'v',
  source: 't',
  key: (e: { k: string; n: number }) => e.k,
  initial: () => ({ list: [] as number[], label: '' }),
  reduce: (s, e: { k: string; n: number }) => ({ list: [...s.list, e.n], label: `n${e.n}` }),
});
const trigger = defineTrigger({ view, function: 'f' });

function record(offset: number): SourceRecord {
  return { topic: 't', partition: 1, offset: String(offset), key: null, value: null, timestampMs: 0, headers: {} };
}

describe('view item writes', () => {
  // No network: the client is only used to build params.
  const storage = createStorage({ dynamodb: new DynamoDBClient({ region: 'local' }), tableName: 'views-table' });

  it('write the same item the toolbox entity validates and builds', () => {
    const first = foldItem(view, 'a', ABSENT_ITEM, [{ record: record(0), event: { k: 'a', n: 1 } }], {
      triggers: [trigger],
    }).write!;
    const second = foldItem(view, 'a', first.snapshot, [{ record: record(1), event: { k: 'a', n: 2 } }], {
      triggers: [trigger],
    }).write!;
    for (const write of [first, second]) {
      const toolbox = storage.viewItems.build(PutItemCommand).item(write.item as never).params();
      const ours = conditionalPutInput('views-table', write.item, write.expectedVersion);
      expect(ours.Item).toEqual(toolbox.Item);
      expect(ours.TableName).toBe(toolbox.TableName);
    }
    expect(second.item).toMatchObject({ pending: { 'v-f': 0 }, befores: {} });
  });

  it('condition on the read version, or on absence for a new item', () => {
    const item = foldItem(view, 'a', ABSENT_ITEM, [{ record: record(0), event: { k: 'a', n: 1 } }]).write!.item;
    expect(conditionalPutInput('t1', item, 0)).toMatchObject({
      ConditionExpression: 'attribute_not_exists(#pk)',
      ExpressionAttributeNames: { '#pk': 'pk' },
    });
    expect(conditionalPutInput('t1', item, 7)).toMatchObject({
      ConditionExpression: '#version = :version',
      ExpressionAttributeNames: { '#version': 'version' },
      ExpressionAttributeValues: { ':version': 7 },
    });
  });
});
