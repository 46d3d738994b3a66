/**
 * The handover of a build in the background survives a restart (docs/architecture.md, "View
 * lifecycle", step 3): once a live batch of a partition folded the view being built, every later
 * live batch of that partition folds it too, also in a task started after a crash or a rebalance,
 * when the build's checkpoint is behind the live group again. Before, a new task derived the
 * handover from the build's checkpoint alone: it made the batch skip the view (its records then
 * folded by the build, quietly: trigger changes after the handover missing) or, once the
 * handover was closing, wait for the build to fold records live folding had already applied.
 * A batch read again from below a skip (or below the live checkpoint) is left to the build until
 * the build has folded past it, and then hands the partition over at the skip (the checkpoint),
 * not at its first offset: the trigger's changes start at the recorded offset. The swap records
 * the build's target for a partition no live batch handed over.
 *
 * Runs `BuildGate` (engine/internal/build.ts) against the registry item and checkpoints on
 * DynamoDB Local; no broker is needed for the gate.
 */
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { BuildGate, prepareBackgroundBuild, swap, type BuildDeps } from '../../engine/internal/build.ts';
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
        live?: number;
        versions: Record<string, { skipped?: Record<string, number>; handedOver?: Record<string, number> }>;
      };

    // Partition 1 has not been reached by the build: its batch is left to the build, and recorded.
    const first = gate();
    expect(await first.skip(TOPIC, 1, records(1, 0, 10))).toEqual(new Set(['watched']));
    expect((await registry()).versions['2']?.skipped).toEqual({ 1: 10 });
    // The build folded partition 0 up to offset 100: the live batch from 100 folds the view.
    await store.writeCheckpoint(buildTopic, 0, '100');
    expect(await first.skip(TOPIC, 0, records(0, 100, 10))).toBeUndefined();
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100 });

    // The task dies; live folding went on to offset 150, the build's checkpoint stayed at 100.
    // A new task (or the next owner after a rebalance) keeps folding the view on partition 0 ...
    const restarted = gate();
    expect(await restarted.skip(TOPIC, 0, records(0, 150, 10))).toBeUndefined();
    // ... and still leaves partition 1 to the build, which has not reached it.
    expect(await restarted.skip(TOPIC, 1, records(1, 10, 10))).toEqual(new Set(['watched']));
    expect((await registry()).versions['2']?.skipped).toEqual({ 1: 20 });

    // The next owner of partition 1 reads it again from offset 15 (the batch that skipped up to
    // 20 was not committed) and finds the build there. The records up to 20 were left to the
    // build, which has not folded them: the batch is left to the build too (no fold racing the
    // build over records it owes, some of them then quiet, some not), and no handover is recorded.
    const owner = gate();
    await store.writeCheckpoint(buildTopic, 1, '15');
    expect(await owner.skip(TOPIC, 1, records(1, 15, 5))).toEqual(new Set(['watched']));
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100 });
    expect((await registry()).versions['2']?.skipped).toEqual({ 1: 20 });
    // Once the build folded past the skip, a batch read again from 15 hands the partition over,
    // at 20, not at its first offset: the records before 20 were the build's, folded quietly
    // (the batch's fold of them is fenced), and the trigger's changes start at 20.
    await store.writeCheckpoint(buildTopic, 1, '22');
    expect(await owner.skip(TOPIC, 1, records(1, 15, 10))).toBeUndefined();
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100, 1: 20 });
    // A task that never folded partition 1 folds it too now, and no skip is recorded past 20.
    expect(await gate().skip(TOPIC, 1, records(1, 30, 5))).toBeUndefined();
    expect((await registry()).versions['2']?.skipped).toEqual({ 1: 20 });

    // Partition 2: the live group checkpointed 40 before a crash, its commit stayed at 30. The
    // records up to 40 were applied before the build (their changes came from the version live
    // then): the batch read again from 30 hands the partition over at 40, once the build is there.
    await store.writeCheckpoint(TOPIC, 2, '40');
    await store.writeCheckpoint(buildTopic, 2, '35');
    expect(await gate().skip(TOPIC, 2, records(2, 30, 5))).toEqual(new Set(['watched']));
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100, 1: 20 });
    await store.writeCheckpoint(buildTopic, 2, '40');
    expect(await gate().skip(TOPIC, 2, records(2, 30, 15))).toBeUndefined();
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100, 1: 20, 2: 40 });

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
      closing.skip(TOPIC, 0, records(0, 160, 10)).then((skip) => ({ skip })),
      new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 3_000)),
    ]);
    expect(waited).toEqual({ skip: undefined });
    expect((await registry()).versions['2']?.handedOver).toEqual({ 0: 100, 1: 20, 2: 40 });

    // The swap records the build's target as the handover offset of a partition no live batch
    // handed over (partition 3: its first batch after the close comes after the swap), and keeps
    // every recorded one.
    await swap({ view, documentClient, tableName } as BuildDeps, undefined, undefined, new Map([[0, 100n], [1, 20n], [2, 40n], [3, 60n]]));
    const swapped = await registry();
    expect(swapped.live).toBe(2);
    expect(swapped.versions['2']?.handedOver).toEqual({ 0: 100, 1: 20, 2: 40, 3: 60 });
  });
});
