/**
 * Creates the views table of an app the way the CDK app deploys it (pk/sk strings,
 * on-demand, TTL on `ttl`), for the embedded stack, tests and LocalStack.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { LocalStackError } from './errors.ts';
import { TABLE_KEY_SCHEMA } from '../../sdk/contract/index.ts';

/** How long a new table may take to become ACTIVE; DynamoDB Local is instant, LocalStack takes seconds. */
export const DEFAULT_TABLE_ACTIVE_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 100;

/** Options of {@link ensureViewsTable}. */
export interface EnsureViewsTableOptions {
  /** @default {@link DEFAULT_TABLE_ACTIVE_TIMEOUT_MS} */
  readonly timeoutMs?: number;
}

/**
 * Creates the views table if it does not exist and waits until it is ACTIVE. An existing table
 * is left as it is (its data is kept), so `npm run dev` can restart on the same data.
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
    await dynamodb.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: TABLE_KEY_SCHEMA.partitionKey, AttributeType: 'S' },
          { AttributeName: TABLE_KEY_SCHEMA.sortKey, AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: TABLE_KEY_SCHEMA.partitionKey, KeyType: 'HASH' },
          { AttributeName: TABLE_KEY_SCHEMA.sortKey, KeyType: 'RANGE' },
        ],
      }),
    );
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
    if (Table?.TableStatus === 'ACTIVE') break;
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
      new UpdateTimeToLiveCommand({ TableName: tableName, TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true } }),
    );
  }
}
