/**
 * The live rows in the views table (docs/architecture.md, "Storage layout"), all under the
 * `live#` prefix, which nothing else writes: a connection, its subscriptions by key and by
 * prefix, and, under the connection, what each subscription wrote so that `disconnect` and
 * `unsubscribe` can delete it. Rows carry a TTL (24 h, API Gateway's connection limit) so a
 * connection whose `$disconnect` never ran still goes.
 */
import { BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { connectionPk, keySubscriptionsPk, LIVE_ROW_TTL_S, prefixSubscriptionsPk } from '../../sdk/contract/index.ts';
import type { LivePrincipal } from '../../sdk/index.ts';
import type { LiveTarget } from './protocol.ts';

const CONNECTION_SK = '_';
const SUBSCRIPTION_SK_PREFIX = 's#';

/** One subscriber of a key or prefix, as the fan-out finds it. */
export interface Subscriber {
  readonly connectionId: string;
  readonly subscription: string;
  /** Set for a prefix subscription. */
  readonly prefix?: string;
}

interface RowKey {
  readonly pk: string;
  readonly sk: string;
}

/** The live rows of one views table. */
export class LiveSubscriptions {
  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly nowMs: () => number = Date.now,
  ) {}

  private ttl(): number {
    return Math.floor(this.nowMs() / 1000) + LIVE_ROW_TTL_S;
  }

  /** Records a connection and who it is. */
  async putConnection(connectionId: string, principal: LivePrincipal): Promise<void> {
    await this.documents.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: connectionPk(connectionId), sk: CONNECTION_SK, principal: JSON.stringify(principal), connectedAt: new Date(this.nowMs()).toISOString(), ttl: this.ttl() },
      }),
    );
  }

  /** Who a connection is, or undefined when it has no row. */
  async principalOf(connectionId: string): Promise<LivePrincipal | undefined> {
    const { Item } = await this.documents.send(new GetCommand({ TableName: this.tableName, Key: { pk: connectionPk(connectionId), sk: CONNECTION_SK }, ConsistentRead: true }));
    return typeof Item?.principal === 'string' ? (JSON.parse(Item.principal) as LivePrincipal) : undefined;
  }

  /** The ids of a connection's subscriptions. */
  async subscriptionsOf(connectionId: string): Promise<string[]> {
    const rows = await this.queryAll({
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :s)',
      ExpressionAttributeValues: { ':pk': connectionPk(connectionId), ':s': SUBSCRIPTION_SK_PREFIX },
      ConsistentRead: true,
    });
    return rows.map((row) => String(row.sk).slice(SUBSCRIPTION_SK_PREFIX.length));
  }

  /**
   * Writes a subscription's rows (replacing one of the same id): under the connection first,
   * naming the rows it owns, then the rows the fan-out finds. Written before the snapshot is
   * read, so no change between the two is missed.
   */
  async putSubscription(connectionId: string, subscription: string, view: string, target: LiveTarget): Promise<void> {
    await this.deleteSubscription(connectionId, subscription);
    const ttl = this.ttl();
    const rows: Record<string, unknown>[] =
      'prefix' in target
        ? [{ pk: prefixSubscriptionsPk(view), sk: `${target.prefix}#${connectionId}#${subscription}`, connectionId, subscription, view, prefix: target.prefix, ttl }]
        : target.keys.map((key) => ({ pk: keySubscriptionsPk(view, key), sk: `${connectionId}#${subscription}`, connectionId, subscription, view, key, ttl }));
    const owner = {
      pk: connectionPk(connectionId),
      sk: SUBSCRIPTION_SK_PREFIX + subscription,
      view,
      targets: rows.map((row) => ({ pk: row.pk, sk: row.sk })),
      ttl,
    };
    await this.documents.send(new PutCommand({ TableName: this.tableName, Item: owner }));
    await this.batchWrite(rows.map((Item) => ({ PutRequest: { Item } })));
  }

  /** Deletes one subscription's rows; false when the connection has no such subscription. */
  async deleteSubscription(connectionId: string, subscription: string): Promise<boolean> {
    const key = { pk: connectionPk(connectionId), sk: SUBSCRIPTION_SK_PREFIX + subscription };
    const { Item } = await this.documents.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
    if (Item === undefined) return false;
    await this.batchWrite([...(Item.targets as RowKey[]), key].map((Key) => ({ DeleteRequest: { Key } })));
    return true;
  }

  /** Deletes every row of a connection (on `$disconnect`, or when a post found it gone). */
  async deleteConnection(connectionId: string): Promise<void> {
    const rows = await this.queryAll({ KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': connectionPk(connectionId) }, ConsistentRead: true });
    const keys: RowKey[] = [];
    for (const row of rows) {
      for (const target of (row.targets as RowKey[] | undefined) ?? []) keys.push(target);
      keys.push({ pk: String(row.pk), sk: String(row.sk) });
    }
    await this.batchWrite(keys.map((Key) => ({ DeleteRequest: { Key } })));
  }

  /** The subscribers of one key of a view. */
  async keySubscribers(view: string, key: string): Promise<Subscriber[]> {
    const rows = await this.queryAll({ KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': keySubscriptionsPk(view, key) } });
    return rows.map((row) => ({ connectionId: String(row.connectionId), subscription: String(row.subscription) }));
  }

  /** The prefix subscribers of a view (the fan-out keeps those whose prefix starts the key). */
  async prefixSubscribers(view: string): Promise<Subscriber[]> {
    const rows = await this.queryAll({ KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': prefixSubscriptionsPk(view) } });
    return rows.map((row) => ({ connectionId: String(row.connectionId), subscription: String(row.subscription), prefix: String(row.prefix) }));
  }

  private async queryAll(input: Omit<ConstructorParameters<typeof QueryCommand>[0], 'TableName'>): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.documents.send(new QueryCommand({ ...input, TableName: this.tableName, ...(start !== undefined ? { ExclusiveStartKey: start } : {}) }));
      out.push(...((page.Items ?? []) as Record<string, unknown>[]));
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    return out;
  }

  /** BatchWriteItem in chunks of 25, resending what DynamoDB left unprocessed (with a short backoff). */
  private async batchWrite(requests: Record<string, unknown>[]): Promise<void> {
    for (let i = 0; i < requests.length; i += 25) {
      let pending = requests.slice(i, i + 25);
      for (let attempt = 0; pending.length > 0; attempt++) {
        const result = await this.documents.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: pending as never } }));
        pending = (result.UnprocessedItems?.[this.tableName] ?? []) as Record<string, unknown>[];
        if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 25 * 2 ** attempt)));
      }
    }
  }
}
