/**
 * Removal of a view's replaced versions: once the alias (`live` on the view's registry item)
 * names a version, the items of every recorded version below it are deleted in the background,
 * a bounded page at a time, and the version's registry record gets `removedAt`.
 *
 * - **Never before the swap.** Only versions below `live` are removed, and `live` only moves up
 *   (the swap's condition, build.ts). A version above `live` (a build under way) is never touched.
 * - **After a grace period.** Readers cache the alias (`aliasCacheMs`, 5 s by default) and a
 *   paged read stays on the version its first page read: removal starts `graceMs` after
 *   `swappedAt`, so reads that began before the swap finish on whole items.
 * - **Bounded.** One `Query` of the `byKey` index (one shard of the version's segment, at most
 *   {@link REMOVAL_PAGE} keys) and `BatchWriteItem` deletes of 25 at a time, one page after the
 *   other; progress is logged after every page. A stop ends it between pages; the next start goes
 *   on (the registry says which versions still have items).
 */
import { BatchWriteCommand, GetCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { TABLE_INDEXES, VIEW_INDEX_SHARDS, viewIndexPartition, viewRegistryKey, viewSegment } from '../../sdk/contract/index.ts';
import type { View } from '../../sdk/index.ts';
import { buildTableCopyName } from './build.ts';
import { errorInfo } from './errors.ts';
import type { Logger } from './log.ts';

/** Keys read per index page (and so deleted per round) while removing a replaced version. */
export const REMOVAL_PAGE = 100;
/** Keys per BatchWriteItem (DynamoDB's limit). */
const DELETE_BATCH = 25;
/** Rounds for deletes DynamoDB leaves unprocessed (throttling) before the page is tried later. */
const UNPROCESSED_ROUNDS = 8;

/** What a removal needs from the running task. */
export interface RemovalDeps {
  readonly documentClient: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly log: Logger;
  /** Resolves when the task is asked to stop: the removal ends between pages. */
  readonly stopRequested: Promise<void>;
  /** How long after the swap removal starts (reads that began before it finish first). */
  readonly graceMs: number;
}

interface RegistryEntry {
  readonly live?: number;
  readonly swappedAt?: string;
  readonly versions?: Record<string, { readonly removedAt?: string }>;
}

const sleep = (ms: number, stop: Promise<void>): Promise<boolean> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void stop.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });

/**
 * Removes the items of every version of `view` below its live one that still has them (see the
 * module header). Never rejects: a failure is logged, and the next start tries again.
 */
export async function removeReplacedVersions(deps: RemovalDeps, view: string): Promise<void> {
  let stopped = false;
  void deps.stopRequested.then(() => (stopped = true));
  try {
    const { Item } = await deps.documentClient.send(new GetCommand({ TableName: deps.tableName, Key: viewRegistryKey(view), ConsistentRead: true }));
    const entry = Item as RegistryEntry | undefined;
    const live = entry?.live;
    if (entry === undefined || live === undefined) return;
    const replaced = Object.entries(entry.versions ?? {})
      .filter(([version, recorded]) => Number(version) < live && recorded.removedAt === undefined)
      .map(([version]) => Number(version))
      .sort((a, b) => a - b);
    if (replaced.length === 0) return;
    const swappedMs = entry.swappedAt !== undefined ? Date.parse(entry.swappedAt) : Date.now();
    const wait = Math.max(0, swappedMs + deps.graceMs - Date.now());
    if (wait > 0 && (await sleep(wait, deps.stopRequested))) return;
    for (const version of replaced) {
      const segment = viewSegment(view, version);
      deps.log.info('removing a replaced view version', { view, version, live, segment });
      const deleted = await deleteSegment(deps, segment, () => stopped, (shard, total) =>
        deps.log.info('replaced view version removal progress', { view, version, shard, shards: VIEW_INDEX_SHARDS, deleted: total }),
      );
      if (deleted === undefined) return;
      await deps.documentClient.send(
        new UpdateCommand({
          TableName: deps.tableName,
          Key: viewRegistryKey(view),
          UpdateExpression: 'SET versions.#v.removedAt = :now',
          ConditionExpression: 'attribute_exists(versions.#v)',
          ExpressionAttributeNames: { '#v': String(version) },
          ExpressionAttributeValues: { ':now': new Date().toISOString() },
        }),
      );
      deps.log.info('replaced view version removed', { view, version, deleted });
    }
  } catch (error) {
    deps.log.warn('removing replaced view versions failed; the next start goes on', { view, error: errorInfo(error).message });
  }
}

/**
 * Deletes every item of one segment, one `byKey` index page of one shard at a time; `onPage` after
 * each page that deleted keys. Resolves with the count, or undefined when `stopped` ended it.
 */
async function deleteSegment(
  deps: RemovalDeps,
  segment: string,
  stopped: () => boolean,
  onPage: (shard: number, deleted: number) => void,
): Promise<number | undefined> {
  let deleted = 0;
  for (let shard = 0; shard < VIEW_INDEX_SHARDS; shard += 1) {
    let start: Record<string, unknown> | undefined;
    do {
      if (stopped()) return undefined;
      const page = await deps.documentClient.send(
        new QueryCommand({
          TableName: deps.tableName,
          IndexName: TABLE_INDEXES.byKey.indexName,
          KeyConditionExpression: 'ixShard = :shard',
          ExpressionAttributeValues: { ':shard': viewIndexPartition(segment, shard) },
          Limit: REMOVAL_PAGE,
          ExclusiveStartKey: start,
        }),
      );
      const keys = (page.Items ?? []).map((item) => ({ pk: item.pk as string, sk: item.sk as string }));
      for (let i = 0; i < keys.length; i += DELETE_BATCH) await deleteKeys(deps, keys.slice(i, i + DELETE_BATCH));
      deleted += keys.length;
      if (keys.length > 0) onPage(shard, deleted);
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
  }
  return deleted;
}

/**
 * Removes the private table copies the builds of a table aggregation folded (build.ts,
 * `buildTableCopy`), once their version is live or replaced: for every recorded version at or
 * below `live` without `tableCopyRemovedAt`, the copy's items (no reader ever reads them, so no
 * grace period), then `tableCopyRemovedAt` on the version. A version above `live` (a build
 * under way) keeps its copy. Never rejects: a failure is logged, and the next start tries again.
 *
 * @example
 * await removeTableCopies(removal, tiers); // tiers = defineView({ source: membersTable, … })
 */
export async function removeTableCopies(deps: RemovalDeps, view: View<any, any>): Promise<void> {
  const table = view.over;
  if (table === undefined) return;
  let stopped = false;
  void deps.stopRequested.then(() => (stopped = true));
  try {
    const { Item } = await deps.documentClient.send(new GetCommand({ TableName: deps.tableName, Key: viewRegistryKey(view.name), ConsistentRead: true }));
    const entry = Item as (RegistryEntry & { versions?: Record<string, { tableCopyRemovedAt?: string }> }) | undefined;
    const live = entry?.live;
    if (entry === undefined || live === undefined) return;
    const versions = Object.entries(entry.versions ?? {})
      .filter(([version, recorded]) => Number(version) <= live && recorded.tableCopyRemovedAt === undefined)
      .map(([version]) => Number(version));
    for (const version of versions) {
      const segment = buildTableCopyName(table.name, viewSegment(view.name, version));
      const deleted = await deleteSegment(deps, segment, () => stopped, (shard, total) =>
        deps.log.info('build table copy removal progress', { view: view.name, version, segment, shard, shards: VIEW_INDEX_SHARDS, deleted: total }),
      );
      if (deleted === undefined) return;
      await deps.documentClient.send(
        new UpdateCommand({
          TableName: deps.tableName,
          Key: viewRegistryKey(view.name),
          UpdateExpression: 'SET versions.#v.tableCopyRemovedAt = :now',
          ConditionExpression: 'attribute_exists(versions.#v)',
          ExpressionAttributeNames: { '#v': String(version) },
          ExpressionAttributeValues: { ':now': new Date().toISOString() },
        }),
      );
      if (deleted > 0) deps.log.info('build table copy removed', { view: view.name, version, segment, deleted });
    }
  } catch (error) {
    deps.log.warn('removing build table copies failed; the next start goes on', { view: view.name, error: errorInfo(error).message });
  }
}

async function deleteKeys(deps: RemovalDeps, keys: readonly { pk: string; sk: string }[]): Promise<void> {
  let requests = keys.map((Key) => ({ DeleteRequest: { Key } }));
  for (let round = 0; requests.length > 0; round += 1) {
    if (round >= UNPROCESSED_ROUNDS) throw new Error(`BatchWriteItem left ${requests.length} deletes unprocessed after ${round} rounds (throttling)`);
    if (round > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 50 * 2 ** round)));
    const result = await deps.documentClient.send(new BatchWriteCommand({ RequestItems: { [deps.tableName]: requests } }));
    requests = (result.UnprocessedItems?.[deps.tableName] ?? []) as typeof requests;
  }
}
