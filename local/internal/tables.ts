/**
 * Creates the views table of an app the way the CDK app deploys it (pk/sk strings, the two
 * KEYS_ONLY indexes of `TABLE_INDEXES`, on-demand, TTL on `ttl`), for the embedded stack, tests,
 * the bench and LocalStack.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  type AttributeDefinition,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { LocalStackError } from './errors.ts';
import { TABLE_INDEXES, TABLE_KEY_SCHEMA, TABLE_TTL_ATTRIBUTE } from '../../sdk/contract/index.ts';

/** How long a new table may take to become ACTIVE; DynamoDB Local is instant, LocalStack takes seconds. */
export const DEFAULT_TABLE_ACTIVE_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 100;

/**
 * The CreateTable input of a views table: the key schema and both global secondary indexes of
 * the shared contract, on-demand.
 *
 * @example
 * await dynamodb.send(new CreateTableCommand(viewsTableInput('gym-views')));
 */
export function viewsTableInput(tableName: string): CreateTableCommandInput {
  const attributes = new Map<string, AttributeDefinition['AttributeType']>([
    [TABLE_KEY_SCHEMA.partitionKey, 'S'],
    [TABLE_KEY_SCHEMA.sortKey, 'S'],
  ]);
  for (const index of Object.values(TABLE_INDEXES)) {
    attributes.set(index.partitionKey.name, index.partitionKey.type);
    attributes.set(index.sortKey.name, index.sortKey.type);
  }
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [...attributes].map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType })),
    KeySchema: [
      { AttributeName: TABLE_KEY_SCHEMA.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLE_KEY_SCHEMA.sortKey, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: Object.values(TABLE_INDEXES).map((index) => ({
      IndexName: index.indexName,
      KeySchema: [
        { AttributeName: index.partitionKey.name, KeyType: 'HASH' },
        { AttributeName: index.sortKey.name, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: index.projection },
    })),
  };
}

/** Options of {@link ensureViewsTable}. */
export interface EnsureViewsTableOptions {
  /** @default {@link DEFAULT_TABLE_ACTIVE_TIMEOUT_MS} */
  readonly timeoutMs?: number;
}

/**
 * Creates the views table if it does not exist and waits until it is ACTIVE, indexes included.
 * An existing table is left as it is (its data is kept), so `npm run dev` can restart on the
 * same data; one without the indexes of `TABLE_INDEXES` was made for an earlier storage layout
 * and is refused with `TABLE_CREATE_FAILED` saying how to start afresh.
 *
 * @example
 * await ensureViewsTable(new DynamoDBClient({}), 'gym-views');
 */
export async function ensureViewsTable(
  dynamodb: DynamoDBClient,
  tableName: string,
  options: EnsureViewsTableOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TABLE_ACTIVE_TIMEOUT_MS;
  let created = false;
  try {
    await dynamodb.send(new CreateTableCommand(viewsTableInput(tableName)));
    created = true;
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) {
      throw new LocalStackError('TABLE_CREATE_FAILED', `creating views table "${tableName}" failed: ${(error as Error).message}`, {
        cause: error,
        context: { component: 'dynamodb' },
      });
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
    const indexes = new Map((Table?.GlobalSecondaryIndexes ?? []).map((index) => [index.IndexName, index.IndexStatus]));
    const missing = Object.values(TABLE_INDEXES).filter((index) => !indexes.has(index.indexName)).map((index) => index.indexName);
    if (Table !== undefined && missing.length > 0) {
      throw new LocalStackError(
        'TABLE_CREATE_FAILED',
        `views table "${tableName}" exists without the index${missing.length > 1 ? 'es' : ''} ${missing.join(', ')}: it was created for an earlier storage layout, whose items this version cannot read; delete the table (for npm run dev: delete the data directory .tributary/) to start empty`,
        { context: { component: 'dynamodb', missing } },
      );
    }
    if (Table?.TableStatus === 'ACTIVE' && [...indexes.values()].every((status) => status === undefined || status === 'ACTIVE')) break;
    if (Date.now() > deadline) {
      throw new LocalStackError(
        'TABLE_CREATE_FAILED',
        `views table "${tableName}" is ${Table?.TableStatus ?? 'missing'} after ${timeoutMs} ms; check the DynamoDB endpoint or raise timeoutMs`,
        { context: { component: 'dynamodb' } },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  if (created) {
    await dynamodb.send(
      new UpdateTimeToLiveCommand({ TableName: tableName, TimeToLiveSpecification: { AttributeName: TABLE_TTL_ATTRIBUTE, Enabled: true } }),
    );
  }
}
