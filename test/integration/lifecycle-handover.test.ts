/**
 * The handover of a build in the background survives a restart (docs/architecture.md, "View
 * lifecycle", step 3): once a live batch of a partition folded the view being built, every later
 * live batch of that partition folds it too, also in a task started after a crash or a rebalance,
 * when the build's checkpoint is behind the live group again. Before, a new task derived the
 * handover from the build's checkpoint alone: it made the batch skip the view (its records then
 * folded by the build, quietly: trigger changes after the handover missing) or, once the
 * handover was closing, wait for the build to fold records live folding had already applied.
 *
 * Runs `BuildGate` (engine/internal/build.ts) against the registry item and checkpoints on
 * DynamoDB Local; no broker is needed for the gate.
 */
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { BuildGate, prepareBackgroundBuild } from '../../engine/internal/build.ts';
import { buildCheckpointTopic } from '../../engine/internal/processor.ts';
import { DynamoItemStore } from '../../engine/internal/dynamodb-store.ts';
import { defineView, type SourceRecord } from '../../sdk/index.ts';
import { viewRegistryKey, viewSegment } from '../../sdk/contract/index.ts';
import { createTable, uniqueName } from './helpers.ts';
import { testStorage } from './fixtures/engine-support.ts';

const TOPIC = 'handover-source';

/** Records `from`..`from + count - 1` of one partition (the gate reads only their offsets). */
function records(partition: number, from: number, count: number): SourceRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    topic: TOPIC,
    partition,
    offset: String(from + i),
    key: null,
    value: Buffer.from('{}'),
    timestampMs: 0,
    headers: {},
  }));
}

describe('build handover across a restart', () => {
  it('a partition handed over to live folding stays handed over in a new task, before and after the handover closes', async () => {
    const storage = testStorage(await createTable(uniqueName('life-handover')));
    const { documentClient, tableName } = storage;
    const view = defineView({ name: 'watched', source: TOPIC, version: 2, key: () => 'k', initial: () => 0, reduce: (n: number) => n + 1 });
    // As the start-up check leaves it: version 1 live, version 2 recorded and being built.
    await documentClient.send(
      new PutCommand({
        TableName: tableName,
        Item: { ...viewRegistryKey('watched'), view: 'watched', live: 1, versions: { '1': { fingerprint: 'a' }, '2': { fingerprint: 'b' } } },
      }),
    );
    await prepareBackgroundBuild(documentClient, tableName, view);
    const store = new DynamoItemStore(storage, 4);
    const buildTopic = buildCheckpointTopic(TOPIC, viewSegment('watched', 2));
    const gate = () => new BuildGate({ documentClient, tableName, store, stopping: () => false }, [view]);
    const registry = async () =>
      (await documentClient.send(new GetCommand({ TableName: tableName, Key: viewRegistryKey('watched'), ConsistentRead: true }))).Item as {
        versions: Record<string, { skipped?: Record<string, number>; handedOver?: Record<string, number> }>;
      };

    // Partition 1 has not been reached by the build: its batch is left to the build, and recorded.
    const first = gate();
    expect(await first.skip(TOPIC, 1, records(1, 0, 10), 1)).toEqual(new Set(['watched']));
    expect((await registry()).versions['2']?.skipped).toEqual({ 1: 10 });
    // The build folded partition 0 up to offset 100: the live batch from 100 folds the view.
    await store.writeCheckpoint(buildTopic, 0, '100');
    expect(await first.skip(TOPIC, 0, records(0, 100, 10), 1)).toBeUndefined();
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100 });

    // The task dies; live folding went on to offset 150, the build's checkpoint stayed at 100.
    // A new task (or the next owner after a rebalance) keeps folding the view on partition 0 ...
    const restarted = gate();
    expect(await restarted.skip(TOPIC, 0, records(0, 150, 10), 1)).toBeUndefined();
    // ... and still leaves partition 1 to the build, which has not reached it.
    expect(await restarted.skip(TOPIC, 1, records(1, 10, 10), 1)).toEqual(new Set(['watched']));
    expect((await registry()).versions['2']?.skipped).toEqual({ 1: 20 });

    // The next owner of partition 1 reads it again from offset 15 (the batch that skipped up to
    // 20 was not committed) and finds the build there: it folds the view, but records no
    // handover while the build has not folded the skipped records up to 20 (a later batch folding
    // without asking could fence them out) ...
    const owner = gate();
    await store.writeCheckpoint(buildTopic, 1, '15');
    expect(await owner.skip(TOPIC, 1, records(1, 15, 5), 2)).toBeUndefined();
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100 });
    // ... folds its next batch of the partition in the same generation (its folds run on from 15) ...
    expect(await owner.skip(TOPIC, 1, records(1, 20, 5), 2)).toBeUndefined();
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100 });
    // ... and records the handover from 15 once the build has folded past the skip.
    await store.writeCheckpoint(buildTopic, 1, '21');
    expect(await owner.skip(TOPIC, 1, records(1, 25, 5), 2)).toBeUndefined();
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100, 1: 15 });
    // A task in another generation that never folded partition 1 folds it too now.
    expect(await gate().skip(TOPIC, 1, records(1, 30, 5), 3)).toBeUndefined();
    expect((await registry()).versions['2']?.skipped).toEqual({ 1: 20 });

    // Once the build closes its handover, a new task does not wait for the build on partition 0.
    await documentClient.send(
      new UpdateCommand({
        TableName: tableName,
        Key: viewRegistryKey('watched'),
        UpdateExpression: 'SET versions.#v.closing = :now',
        ExpressionAttributeNames: { '#v': '2' },
        ExpressionAttributeValues: { ':now': new Date().toISOString() },
      }),
    );
    const closing = gate();
    const waited = await Promise.race([
      closing.skip(TOPIC, 0, records(0, 160, 10), 4).then((skip) => ({ skip })),
      new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 3_000)),
    ]);
    expect(waited).toEqual({ skip: undefined });
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100, 1: 15 });
  });
});
