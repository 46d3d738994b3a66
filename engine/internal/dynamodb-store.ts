/**
 * The {@link ItemStore} on DynamoDB, through the shared table layout (`sdk/contract`,
 * dynamodb-toolbox). Translates `ConditionalCheckFailedException` into `WRITE_CONFLICT`; every
 * other AWS error is rethrown as `STORAGE_FAILED` with its cause.
 */
import { PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand, type PutCommandInput } from '@aws-sdk/lib-dynamodb';
import { EntityFormatter, GetItemCommand, PutItemCommand } from 'dynamodb-toolbox';
import {
  batchGetItems,
  checkpointKey,
  classifyAwsError,
  DOCUMENT_CLIENT_OPTIONS,
  encodeWindowStart,
  ENGINE_PK,
  TABLE_INDEXES,
  type ItemKey,
  type Storage,
  type ViewItem,
} from '../../sdk/contract/index.ts';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { EngineError, WriteConflictError } from './errors.ts';
import type { CheckpointState, ItemStore } from './processor.ts';
import type { ClosingPage, ClosingStore } from './window-closer.ts';


function isConditionFailure(error: unknown): boolean {
  return classifyAwsError(error).kind === 'condition-failed';
}

function storageError(what: string, error: unknown, context: Record<string, unknown> = {}): EngineError {
  // Throttling, timeouts and 5xx are worth retrying; a malformed request (e.g. an item over
  // 400 KB, a number DynamoDB cannot hold) or a missing table fails the same way every time.
  const { name, message, retriable } = classifyAwsError(error);
  const hint =
    name === 'ResourceNotFoundException'
      ? '; check TRIBUTARY_TABLE names an existing table in this region'
      : name === 'ValidationException'
        ? '; the item is malformed or too large (state plus trigger bookkeeping must stay under 400 KB; lower maxStateBytes)'
        : '';
  return new EngineError('STORAGE_FAILED', `DynamoDB ${what} failed: ${name}: ${message}${hint}`, {
    retriable,
    cause: error,
    context,
  });
}

/**
 * Input of the conditional write of a view item: the whole item, if its stored version is
 * `expectedVersion` (0 = the item must not exist). Built by hand on the hot path (the same item
 * and condition the toolbox entity builds, see test/unit/engine-storage.test.ts) because toolbox's
 * per-call schema parsing of arbitrary state costs milliseconds of CPU per write.
 *
 * @example
 * await documentClient.send(new PutCommand(conditionalPutInput('gym-views', write.item, write.expectedVersion)));
 */
export function conditionalPutInput(tableName: string, item: ViewItem, expectedVersion: number): PutCommandInput {
  if (expectedVersion === 0) {
    return {
      TableName: tableName,
      Item: item,
      ConditionExpression: 'attribute_not_exists(#pk)',
      ExpressionAttributeNames: { '#pk': 'pk' },
    };
  }
  return {
    TableName: tableName,
    Item: item,
    ConditionExpression: '#version = :version',
    ExpressionAttributeNames: { '#version': 'version' },
    ExpressionAttributeValues: { ':version': expectedVersion },
  };
}

/** View items and checkpoints in the app's DynamoDB table. */
export class DynamoItemStore implements ItemStore, ClosingStore {
  constructor(
    private readonly storage: Storage,
    private readonly readConcurrency: number,
  ) {}

  async readItems(keys: readonly { id: string; key: ItemKey }[]): Promise<Map<string, ViewItem>> {
    const { storage } = this;
    let raw: Map<string, Record<string, unknown>>;
    try {
      raw = await batchGetItems(
        storage.documentClient,
        storage.tableName,
        keys.map(({ key }) => key),
        { consistent: true, concurrency: this.readConcurrency },
      );
    } catch (error) {
      throw storageError('BatchGetItem', error, { keys: keys.length });
    }
    const formatter = storage.viewItems.build(EntityFormatter);
    const out = new Map<string, ViewItem>();
    for (const { id, key } of keys) {
      const item = raw.get(`${key.pk}\n${key.sk}`);
      if (item !== undefined) out.set(id, formatter.format(item) as ViewItem);
    }
    return out;
  }

  async readItem(key: ItemKey): Promise<ViewItem | undefined> {
    try {
      const { Item } = await this.storage.viewItems.build(GetItemCommand).key(key).options({ consistent: true }).send();
      return Item as ViewItem | undefined;
    } catch (error) {
      throw storageError('GetItem', error, { pk: key.pk, sk: key.sk });
    }
  }

  async putItem(item: ViewItem, expectedVersion: number): Promise<void> {
    try {
      await this.storage.documentClient.send(
        // A lost condition returns the stored item: the writer folds again from it, no read.
        new PutCommand({ ...conditionalPutInput(this.storage.tableName, item, expectedVersion), ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }),
      );
    } catch (error) {
      if (isConditionFailure(error)) {
        // Marshalled (the document client translates outputs, not errors); absent when no item is stored.
        const raw = (error as { Item?: Parameters<typeof unmarshall>[0] }).Item;
        // Without it (no item stored, or a DynamoDB-compatible store that does not return it) the writer reads.
        // The document client sets `convertWithoutMapWrapper` on the options it is given: a whole item here.
        const options = { ...DOCUMENT_CLIENT_OPTIONS.unmarshallOptions, convertWithoutMapWrapper: false };
        const stored = raw === undefined ? undefined : { item: this.storage.viewItems.build(EntityFormatter).format(unmarshall(raw, options)) as ViewItem };
        throw new WriteConflictError(
          `view "${item.view}" key "${item.key}": the item is no longer at version ${expectedVersion}`,
          stored,
          { retriable: true, cause: error, context: { view: item.view, key: item.key } },
        );
      }
      throw storageError('PutItem', error, { view: item.view, key: item.key });
    }
  }

  async readCheckpoint(topic: string, partition: number): Promise<string | undefined> {
    try {
      const { Item } = await this.storage.checkpoints
        .build(GetItemCommand)
        .key(checkpointKey(topic, partition))
        .options({ consistent: true })
        .send();
      return Item?.offset;
    } catch (error) {
      throw storageError('GetItem (checkpoint)', error, { topic, partition });
    }
  }

  async readWindows(pk: string, startBelow: number, endAbove: number): Promise<ViewItem[]> {
    // Latest first: sessions of a key never overlap, so once one ends at or before `endAbove`,
    // every earlier one does too.
    const out: ViewItem[] = [];
    const formatter = this.storage.viewItems.build(EntityFormatter);
    let start: Record<string, unknown> | undefined;
    try {
      do {
        const page = await this.storage.documentClient.send(
          new QueryCommand({
            TableName: this.storage.tableName,
            KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :from AND :to',
            ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
            ExpressionAttributeValues: { ':pk': pk, ':from': 'w#', ':to': `w#${encodeWindowStart(Math.max(0, startBelow - 1))}` },
            ScanIndexForward: false,
            ConsistentRead: true,
            Limit: 25,
            ...(start !== undefined ? { ExclusiveStartKey: start } : {}),
          }),
        );
        for (const raw of page.Items ?? []) {
          const item = formatter.format(raw) as ViewItem;
          if (item.windowEnd === undefined || item.windowEnd <= endAbove) return out.reverse();
          out.push(item);
        }
        start = page.LastEvaluatedKey;
      } while (start !== undefined);
    } catch (error) {
      throw storageError('Query (windows of a key)', error, { pk });
    }
    return out.reverse();
  }

  async writeAtomically(puts: readonly { item: ViewItem; expectedVersion: number }[], deletes: readonly { key: ItemKey; version: number }[]): Promise<void> {
    if (puts.length === 1 && deletes.length === 0) return this.putItem(puts[0]!.item, puts[0]!.expectedVersion);
    const { tableName } = this.storage;
    try {
      await this.storage.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            ...puts.map(({ item, expectedVersion }) => ({ Put: conditionalPutInput(tableName, item, expectedVersion) as never })),
            ...deletes.map(({ key, version }) => ({
              Delete: {
                TableName: tableName,
                Key: { pk: key.pk, sk: key.sk },
                ConditionExpression: '#version = :version',
                ExpressionAttributeNames: { '#version': 'version' },
                ExpressionAttributeValues: { ':version': version },
              },
            })),
          ],
        }),
      );
    } catch (error) {
      const reasons = (error as { CancellationReasons?: { Code?: string }[] } | null)?.CancellationReasons ?? [];
      if (reasons.some((r) => r.Code === 'ConditionalCheckFailed' || r.Code === 'TransactionConflict')) {
        const first = puts[0]?.item;
        throw new EngineError('WRITE_CONFLICT', `view "${first?.view}" key "${first?.key}": a session changed since it was read`, {
          retriable: true,
          cause: error,
          context: { view: first?.view, key: first?.key },
        });
      }
      throw storageError('TransactWriteItems', error, { items: puts.length + deletes.length });
    }
  }

  async readCheckpointState(topic: string, partition: number): Promise<CheckpointState | undefined> {
    try {
      const { Item } = await this.storage.checkpoints
        .build(GetItemCommand)
        .key(checkpointKey(topic, partition))
        .options({ consistent: true })
        .send();
      return Item === undefined ? undefined : { partition, offset: Item.offset, streamTime: { ...Item.streamTime } };
    } catch (error) {
      throw storageError('GetItem (checkpoint)', error, { topic, partition });
    }
  }

  async readCheckpointStates(topic: string): Promise<CheckpointState[]> {
    const prefix = checkpointKey(topic, 0).sk.slice(0, -1);
    const out: CheckpointState[] = [];
    let start: Record<string, unknown> | undefined;
    try {
      do {
        const page = await this.storage.documentClient.send(
          new QueryCommand({
            TableName: this.storage.tableName,
            KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
            ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
            ExpressionAttributeValues: { ':pk': ENGINE_PK, ':prefix': prefix },
            ConsistentRead: true,
            ...(start !== undefined ? { ExclusiveStartKey: start } : {}),
          }),
        );
        for (const item of page.Items ?? []) {
          // `checkpoint#a#1` is also a prefix of topic `a#1`'s checkpoints: only digits may follow.
          const rest = String(item.sk).slice(prefix.length);
          if (!/^\d+$/.test(rest) || item.topic !== topic) continue;
          out.push({ partition: Number(rest), offset: String(item.offset), streamTime: { ...(item.streamTime as Record<string, number> | undefined) } });
        }
        start = page.LastEvaluatedKey;
      } while (start !== undefined);
    } catch (error) {
      throw storageError('Query (checkpoints)', error, { topic });
    }
    return out;
  }

  async queryClosing(shard: string, closedBelow: number, limit: number, startAfter?: Readonly<Record<string, unknown>>): Promise<ClosingPage> {
    try {
      const page = await this.storage.documentClient.send(
        new QueryCommand({
          TableName: this.storage.tableName,
          IndexName: TABLE_INDEXES.closing.indexName,
          KeyConditionExpression: '#shard = :shard AND #at < :below',
          ExpressionAttributeNames: { '#shard': 'closeShard', '#at': 'closeAt' },
          ExpressionAttributeValues: { ':shard': shard, ':below': closedBelow },
          Limit: limit,
          ...(startAfter !== undefined ? { ExclusiveStartKey: { ...startAfter } } : {}),
        }),
      );
      return {
        keys: (page.Items ?? []).map((item) => ({ pk: String(item.pk), sk: String(item.sk) })),
        ...(page.LastEvaluatedKey !== undefined ? { next: page.LastEvaluatedKey } : {}),
      };
    } catch (error) {
      throw storageError('Query (closing index)', error, { shard });
    }
  }

  async clearClosing(item: ViewItem): Promise<boolean> {
    try {
      await this.storage.documentClient.send(
        new UpdateCommand({
          TableName: this.storage.tableName,
          Key: { pk: item.pk, sk: item.sk },
          UpdateExpression: 'REMOVE #shard, #at',
          ConditionExpression: '#version = :version AND #shard = :shard',
          ExpressionAttributeNames: { '#shard': 'closeShard', '#at': 'closeAt', '#version': 'version' },
          ExpressionAttributeValues: { ':version': item.version, ':shard': item.closeShard },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw storageError('UpdateItem (closing)', error, { view: item.view, key: item.key });
    }
  }

  async writeCheckpoint(topic: string, partition: number, nextOffset: string, streamTime?: Readonly<Record<string, number>>): Promise<void> {
    // `position` mirrors `offset` as a number so the condition can refuse to move a checkpoint
    // backwards (a task that lost its partition may still finish an older batch).
    const position = Number(nextOffset);
    try {
      await this.storage.checkpoints
        .build(PutItemCommand)
        .item({
          ...checkpointKey(topic, partition),
          topic,
          partition,
          offset: nextOffset,
          position,
          updatedAt: new Date().toISOString(),
          ...(streamTime !== undefined ? { streamTime: { ...streamTime } } : {}),
        })
        .options({ condition: { or: [{ attr: 'pk', exists: false }, { attr: 'position', exists: false }, { attr: 'position', lt: position }] } })
        .send();
      return;
    } catch (error) {
      if (!isConditionFailure(error)) throw storageError('PutItem (checkpoint)', error, { topic, partition });
    }
    // The stored checkpoint is at this offset or past it. At the same offset, the whole put would
    // replace the stored stream times, which may be later ones (the partition's next owner
    // advanced them by idle close while this task finished its last batch): only raise them.
    if (streamTime !== undefined) await this.raiseStreamTimes(topic, partition, position, streamTime);
  }

  /**
   * Raises each view's stream time of the checkpoint at `position` to at least the given one,
   * never lowering any. Each attempt is conditional on what it read; a lost condition means
   * another writer raised a stream time or moved the checkpoint on, so a read again decides.
   */
  private async raiseStreamTimes(topic: string, partition: number, position: number, streamTime: Readonly<Record<string, number>>): Promise<void> {
    const key = checkpointKey(topic, partition);
    for (;;) {
      let stored;
      try {
        ({ Item: stored } = await this.storage.checkpoints.build(GetItemCommand).key(key).options({ consistent: true }).send());
      } catch (error) {
        throw storageError('GetItem (checkpoint)', error, { topic, partition });
      }
      if (stored?.position !== position) return; // moved past it (or gone): nothing to raise here
      const raise = Object.entries(streamTime).filter(([view, time]) => !(stored.streamTime?.[view]! >= time));
      if (raise.length === 0) return;
      const names: Record<string, string> = { '#position': 'position', '#times': 'streamTime', '#updatedAt': 'updatedAt' };
      const values: Record<string, unknown> = { ':position': position, ':updatedAt': new Date().toISOString() };
      let update: string;
      let condition: string;
      if (stored.streamTime === undefined) {
        values[':times'] = Object.fromEntries(raise);
        update = 'SET #times = :times, #updatedAt = :updatedAt';
        condition = '#position = :position AND attribute_not_exists(#times)';
      } else {
        const sets: string[] = [];
        const conditions = ['#position = :position'];
        raise.forEach(([view, time], i) => {
          names[`#v${i}`] = view;
          values[`:t${i}`] = time;
          sets.push(`#times.#v${i} = :t${i}`);
          conditions.push(`(attribute_not_exists(#times.#v${i}) OR #times.#v${i} < :t${i})`);
        });
        update = `SET ${sets.join(', ')}, #updatedAt = :updatedAt`;
        condition = conditions.join(' AND ');
      }
      try {
        await this.storage.documentClient.send(
          new UpdateCommand({
            TableName: this.storage.tableName,
            Key: key,
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          }),
        );
        return;
      } catch (error) {
        if (!isConditionFailure(error)) throw storageError('UpdateItem (checkpoint stream time)', error, { topic, partition });
      }
    }
  }
}
