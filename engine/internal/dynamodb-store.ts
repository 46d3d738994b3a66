/**
 * The {@link ItemStore} on DynamoDB, through the shared table layout (`sdk/contract`,
 * dynamodb-toolbox). Translates `ConditionalCheckFailedException` into `WRITE_CONFLICT`; every
 * other AWS error is rethrown as `STORAGE_FAILED` with its cause.
 */
import { BatchGetCommand as DocBatchGetCommand, PutCommand, type PutCommandInput } from '@aws-sdk/lib-dynamodb';
import { BatchGetCommand, BatchGetRequest, EntityFormatter, GetItemCommand, PutItemCommand } from 'dynamodb-toolbox';
import { checkpointKey, type ItemKey, type Storage, type ViewItem } from '../../sdk/contract/index.ts';
import { backoffMs, delay, mapLimit } from './concurrency.ts';
import { EngineError } from './errors.ts';
import type { ItemStore } from './processor.ts';

/** BatchGetItem takes at most 100 keys per request. */
const BATCH_GET_MAX_KEYS = 100;
/** Unprocessed keys mean throttling; a few backed-off rounds ride it out before the batch retries. */
const BATCH_GET_MAX_ROUNDS = 8;
const BATCH_GET_BACKOFF_INITIAL_MS = 25;
const BATCH_GET_BACKOFF_MAX_MS = 1_000;

function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

function storageError(what: string, error: unknown, context: Record<string, unknown> = {}): EngineError {
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  // Throttling, timeouts and 5xx are worth retrying; a malformed request (e.g. an item over
  // 400 KB, a number DynamoDB cannot hold) fails the same way every time.
  const retriable = name !== 'ValidationException' && name !== 'ResourceNotFoundException';
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
export class DynamoItemStore implements ItemStore {
  constructor(
    private readonly storage: Storage,
    private readonly readConcurrency: number,
  ) {}

  async readItems(keys: readonly { id: string; key: ItemKey }[]): Promise<Map<string, ViewItem>> {
    const chunks: { id: string; key: ItemKey }[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_MAX_KEYS) chunks.push(keys.slice(i, i + BATCH_GET_MAX_KEYS));
    const out = new Map<string, ViewItem>();
    await mapLimit(chunks, this.readConcurrency, async (chunk) => {
      for (const [id, item] of await this.readChunk(chunk)) out.set(id, item);
    });
    return out;
  }

  private async readChunk(chunk: readonly { id: string; key: ItemKey }[]): Promise<Map<string, ViewItem>> {
    const { storage } = this;
    const params = storage.table
      .build(BatchGetCommand)
      .requests(...chunk.map(({ key }) => storage.viewItems.build(BatchGetRequest).key(key)))
      .options({ consistent: true })
      .params();
    const formatter = storage.viewItems.build(EntityFormatter);
    const ids = new Map(chunk.map(({ id, key }) => [`${key.pk}\n${key.sk}`, id]));
    const out = new Map<string, ViewItem>();
    let requestItems: typeof params | undefined = params;
    for (let round = 1; requestItems !== undefined && Object.keys(requestItems).length > 0; round += 1) {
      let response;
      try {
        response = await storage.documentClient.send(new DocBatchGetCommand({ RequestItems: requestItems }));
      } catch (error) {
        throw storageError('BatchGetItem', error, { keys: chunk.length });
      }
      for (const raw of response.Responses?.[storage.tableName] ?? []) {
        const id = ids.get(`${raw.pk}\n${raw.sk}`);
        if (id === undefined) continue;
        out.set(id, formatter.format(raw) as ViewItem);
      }
      const unprocessed = response.UnprocessedKeys;
      if (unprocessed === undefined || Object.keys(unprocessed).length === 0) break;
      if (round >= BATCH_GET_MAX_ROUNDS) {
        throw new EngineError(
          'STORAGE_FAILED',
          `DynamoDB BatchGetItem left keys unprocessed after ${round} rounds (throttling); the batch is retried. Check the table's capacity`,
          { retriable: true },
        );
      }
      await delay(backoffMs(round, BATCH_GET_BACKOFF_INITIAL_MS, BATCH_GET_BACKOFF_MAX_MS));
      requestItems = unprocessed as typeof params;
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
      await this.storage.documentClient.send(new PutCommand(conditionalPutInput(this.storage.tableName, item, expectedVersion)));
    } catch (error) {
      if (isConditionFailure(error)) {
        throw new EngineError(
          'WRITE_CONFLICT',
          `view "${item.view}" key "${item.key}": the item is no longer at version ${expectedVersion}`,
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

  async writeCheckpoint(topic: string, partition: number, nextOffset: string): Promise<void> {
    // `position` mirrors `offset` as a number so the condition can refuse to move a checkpoint
    // backwards (a task that lost its partition may still finish an older batch).
    const position = Number(nextOffset);
    try {
      await this.storage.checkpoints
        .build(PutItemCommand)
        .item({ ...checkpointKey(topic, partition), topic, partition, offset: nextOffset, position, updatedAt: new Date().toISOString() })
        .options({ condition: { or: [{ attr: 'pk', exists: false }, { attr: 'position', exists: false }, { attr: 'position', lte: position }] } })
        .send();
    } catch (error) {
      if (isConditionFailure(error)) return;
      throw storageError('PutItem (checkpoint)', error, { topic, partition });
    }
  }
}
