/**
 * The rules of trigger bookkeeping (docs/architecture.md, invariant 4), owned by
 * engine/internal/ledger.ts: a change's `before` is the state that trigger last judged. Stated
 * through the in-memory driver where it can push the case, through BatchProcessor instances on
 * one in-memory table for concurrent batches and competing tasks, and through the ledger's
 * pure functions for the rest.
 */
import { describe, expect, it, vi } from 'vitest';
import { createTestDriver, MemoryItemStore } from '../../engine/index.ts';
import type { ChangeOutcome, ChangeSink } from '../../engine/internal/change-sink.ts';
import { ABSENT_ITEM, foldItem, itemId, snapshotOf } from '../../engine/internal/fold.ts';
import {
  changeSuperseded,
  settleJudged,
  TriggerLedger,
  writeBookkeeping,
} from '../../engine/internal/ledger.ts';
import { BatchProcessor, type BatchResult } from '../../engine/internal/processor.ts';
import { StateCache } from '../../engine/internal/state-cache.ts';
import { viewIndexKey, viewItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import { defineApp, defineTrigger, defineView, type App, type Change, type SourceRecord } from '../../sdk/index.ts';

/** One batch as a task runs it: apply, then the checkpoint (the commit pipeline's first step). */
async function processBatch(processor: BatchProcessor, topic: string, partition: number, records: readonly SourceRecord[]): Promise<BatchResult> {
  const result = await processor.apply(topic, partition, records);
  if (records.length > 0) await processor.checkpoint(topic, partition, result.nextOffset);
  return result;
}

type Booking = { classId: string; member: string };

const attendance = defineView({
  name: 'attendance',
  source: 'bookings',
  key: (e: Booking) => e.classId,
  initial: () => ({ booked: 0 }),
  reduce: (s, _e: Booking) => ({ booked: s.booked + 1 }),
});
// Keyed unlike the Kafka partitioning: one item collects events of every partition.
const perMember = defineView({
  name: 'perMember',
  source: 'bookings',
  key: (e: Booking) => e.member,
  initial: () => ({ visits: 0 }),
  reduce: (s, _e: Booking) => ({ visits: s.visits + 1 }),
});
// The rules of coalesced changes (one per item and batch); engine-every-changes.test.ts states 'every'.
const audit = defineTrigger({ view: attendance, function: 'audit', changes: 'coalesced' });
// Rejects the change to 2 bookings: that state is judged, never delivered.
const notTwo = defineTrigger({
  view: attendance,
  function: 'notify',
  name: 'notTwo',
  when: ({ after }) => after.booked !== 2,
  changes: 'coalesced',
});
const visits = defineTrigger({ view: perMember, function: 'visits', changes: 'coalesced' });

const booked = (classId: string, member = 'ann', partition = 0) => ({ partition, value: { classId, member } });
const transitions = (changes: readonly { change: Change }[]) => changes.map(({ change }) => [change.before, change.after, change.version]);

describe('trigger ledger: before is the state the trigger last judged', () => {
  it("gives a new item's first change no before, and the item's id and version as idempotency key", async () => {
    const driver = createTestDriver(defineApp({ name: 'gym', views: [attendance], triggers: [audit] }));
    await driver.send('bookings', [booked('yoga'), booked('yoga')]);
    expect(driver.changes).toHaveLength(1);
    expect(driver.changes[0]!.change).toEqual({
      view: 'attendance',
      key: 'yoga',
      before: undefined,
      after: { booked: 2 },
      // One version per applied event: two events, version 2.
      version: 2,
      offsets: { 'bookings/0': '1' },
      idempotencyKey: 'attendance#yoga##2',
    });
  });

  it.each([
    ['cached', 10_000],
    ['read from the table every batch', 0],
  ])('chains consecutive batches: before = the previous change’s after (%s)', async (_name, cacheMaxEntries) => {
    const driver = createTestDriver(defineApp({ name: 'gym', views: [attendance], triggers: [audit] }), { cacheMaxEntries });
    for (let i = 0; i < 3; i++) await driver.send('bookings', [booked('yoga')]);
    expect(transitions(driver.changes)).toEqual([
      [undefined, { booked: 1 }, 1],
      [{ booked: 1 }, { booked: 2 }, 2],
      [{ booked: 2 }, { booked: 3 }, 3],
    ]);
  });

  it.each([
    ['cached', 10_000],
    ['read from the table every batch', 0],
  ])('moves before past a change when() rejected: the next starts from the state last judged (%s)', async (_name, cacheMaxEntries) => {
    const driver = createTestDriver(defineApp({ name: 'gym', views: [attendance], triggers: [notTwo] }), { cacheMaxEntries });
    for (let i = 0; i < 3; i++) await driver.send('bookings', [booked('yoga')]);
    expect(transitions(driver.changes)).toEqual([
      [undefined, { booked: 1 }, 1],
      [{ booked: 2 }, { booked: 3 }, 3],
    ]);
  });

  it('moves before past a dead-lettered change, whether delivery failed or when() threw', async () => {
    const throwsAtThree = defineTrigger({
      view: attendance,
      function: 'audit',
      name: 'throwsAtThree',
      when: ({ after }) => {
        if (after.booked === 3) throw new Error('no');
        return true;
      },
    });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [attendance], triggers: [audit, throwsAtThree] }), {
      failDelivery: (trigger, change) => trigger.name === audit.name && change.version === 2,
    });
    for (let i = 0; i < 4; i++) await driver.send('bookings', [booked('yoga')]);
    expect(driver.deadLetters.map((d) => [d.code, d.kind === 'trigger' ? [d.trigger, (d.change as Change).version] : undefined])).toEqual([
      ['TRIGGER_DELIVERY_FAILED', [audit.name, 2]],
      ['TRIGGER_WHEN_FAILED', ['throwsAtThree', 3]],
    ]);
    expect(transitions(driver.changes.filter((c) => c.trigger === audit.name))).toEqual([
      [undefined, { booked: 1 }, 1],
      [{ booked: 2 }, { booked: 3 }, 3],
      [{ booked: 3 }, { booked: 4 }, 4],
    ]);
    expect(transitions(driver.changes.filter((c) => c.trigger === 'throwsAtThree'))).toEqual([
      [undefined, { booked: 1 }, 1],
      [{ booked: 1 }, { booked: 2 }, 2],
      [{ booked: 3 }, { booked: 4 }, 4],
    ]);
  });

  it('redelivers a change left unsettled by a crash with the same idempotency key and before', async () => {
    const driver = createTestDriver(defineApp({ name: 'gym', views: [attendance], triggers: [audit] }));
    await driver.send('bookings', [booked('yoga')]);
    await driver.send('bookings', [booked('yoga')]);
    const original = driver.changes[1]!.change;
    expect(original).toMatchObject({ before: { booked: 1 }, version: 2, idempotencyKey: 'attendance#yoga##2' });
    // The write stored the bookkeeping with the state; the crash came before the checkpoint.
    expect(driver.item('attendance', 'yoga')).toMatchObject({ pending: { [audit.name]: 1 }, befores: { '1': { booked: 1 } } });
    driver.store.checkpoints.set('checkpoint#bookings#0', '1');
    driver.restart();
    const result = await driver.redeliver('bookings', 0, 1);
    expect(result).toMatchObject({ skipped: 1, writes: 0, changesDelivered: 1 });
    expect(driver.changes).toHaveLength(3);
    expect(driver.changes[2]!.change).toEqual(original);
    // Settled by the checkpoint that redelivery wrote: a second restart owes nothing.
    driver.restart();
    await driver.redeliver('bookings', 0, 1);
    expect(driver.changes).toHaveLength(3);
  });

  it('judges batches of several partitions that write one item in write order, each from the state the one before judged', async () => {
    const app = defineApp({ name: 'gym', views: [perMember], triggers: [visits] });
    const store = new GatedStore();
    const sink = recordingSink();
    const processor = processorOf(app, store, sink);
    const ann = itemId(viewItemKey('perMember', 'ann'));
    // Partition 0's batch writes ann, then waits on another item before it judges ann.
    const first = processBatch(processor, 'bookings', 0, [record(0, 0, 'yoga', 'ann'), record(0, 1, 'yoga', 'slow')]);
    await vi.waitFor(() => expect(store.items.get(ann)?.version).toBe(1));
    // Partition 1's batch writes ann on top while the first change is still unjudged.
    const second = processBatch(processor, 'bookings', 1, [record(1, 0, 'spin', 'ann')]);
    await vi.waitFor(() => expect(store.items.get(ann)?.version).toBe(2));
    // Written over the unjudged change, the item still names the absent state as before.
    expect(store.items.get(ann)).toMatchObject({ pending: { [visits.name]: 0 } });
    store.release();
    await Promise.all([first, second]);
    expect(transitions(sink.changes.filter(({ change }) => change.key === 'ann'))).toEqual([
      [undefined, { visits: 1 }, 1],
      [{ visits: 1 }, { visits: 2 }, 2],
    ]);
  });

  it('settles a change another task moved the item past as superseded, and builds the next from that task’s bookkeeping', async () => {
    const app = defineApp({ name: 'gym', views: [perMember], triggers: [visits] });
    const store = new MemoryItemStore();
    const mine = recordingSink();
    const theirs = recordingSink();
    const taskA = processorOf(app, store, mine);
    const taskB = processorOf(app, store, theirs);
    const ann = itemId(viewItemKey('perMember', 'ann'));
    await processBatch(taskA, 'bookings', 0, [record(0, 0, 'yoga', 'ann')]);
    expect(changeSuperseded(store.items.get(ann), visits.name, 1)).toBe(false);
    // Task B owns partition 1 and moves ann on twice; task A's cache still holds version 1.
    await processBatch(taskB, 'bookings', 1, [record(1, 0, 'spin', 'ann')]);
    await processBatch(taskB, 'bookings', 1, [record(1, 1, 'spin', 'ann')]);
    expect(transitions(theirs.changes)).toEqual([
      [{ visits: 1 }, { visits: 2 }, 2],
      [{ visits: 2 }, { visits: 3 }, 3],
    ]);
    const stored = store.items.get(ann)!;
    expect(stored).toMatchObject({ version: 3, pending: { [visits.name]: 2 } });
    // A change to version 1 or 2 still in some task's hands is stale; the one to 3 is not.
    expect([1, 2, 3].map((version) => changeSuperseded(stored, visits.name, version))).toEqual([true, true, false]);
    // Task A's next write loses to the stale cache, re-reads, and starts where B's trigger judged last.
    const result = await processBatch(taskA, 'bookings', 0, [record(0, 1, 'yoga', 'ann')]);
    expect(result.conflicts).toBe(1);
    expect(transitions(mine.changes)).toEqual([
      [undefined, { visits: 1 }, 1],
      [{ visits: 3 }, { visits: 4 }, 4],
    ]);
  });
});

describe('trigger ledger: pure rules', () => {
  const snapshotAt = (version: number, state: unknown, pending?: Record<string, number>, befores?: Record<string, unknown>) => ({
    version,
    stateJson: JSON.stringify(state),
    offsets: { 'bookings/0': String(version - 1) },
    ...(pending !== undefined ? { pending, befores: befores ?? {} } : {}),
  });

  it('stamps a write: owed changes keep their older before, others start from the write’s starting state', () => {
    // What the write stores: its version and state, no intermediate states (coalesced triggers).
    const wrote = (from: { version: number }, state: unknown) => ({ version: from.version + 1, stateJson: JSON.stringify(state), intermediates: [] });
    expect(writeBookkeeping(ABSENT_ITEM, wrote(ABSENT_ITEM, { booked: 1 }), [audit, notTwo])).toEqual({
      pending: { [audit.name]: 0, notTwo: 0 },
      befores: {},
    });
    const v2 = snapshotAt(2, { booked: 2 }, { [audit.name]: 1 }, { '1': { booked: 1 } });
    expect(writeBookkeeping(v2, wrote(v2, { booked: 3 }), [audit, notTwo])).toEqual({
      pending: { [audit.name]: 1, notTwo: 2 },
      befores: { '1': { booked: 1 }, '2': { booked: 2 } },
    });
    // A write that leaves the state as it was owes no new change, but keeps what is owed.
    expect(writeBookkeeping(v2, wrote(v2, { booked: 2 }), [audit, notTwo])).toEqual({
      pending: { [audit.name]: 1 },
      befores: { '1': { booked: 1 } },
    });
    expect(writeBookkeeping(snapshotAt(2, { booked: 2 }), wrote(v2, { booked: 2 }), [audit])).toBeUndefined();
    // The fold stamps exactly that on the item and its cached snapshot.
    const write = foldItem(attendance, 'yoga', v2, [{ record: record(0, 5, 'yoga', 'ann'), event: { classId: 'yoga', member: 'ann' } }], {
      triggers: [audit, notTwo],
    }).write!;
    expect({ pending: write.item.pending, befores: write.item.befores }).toEqual(writeBookkeeping(v2, wrote(v2, { booked: 3 }), [audit, notTwo]));
    expect(write.snapshot.pending).toEqual(write.item.pending);
  });

  it('settles judged bookkeeping: cleared at the judged version, advanced when the item moved on, else left', () => {
    const judgedAt = snapshotAt(2, { booked: 2 }, { [audit.name]: 1 }, { '1': { booked: 1 } });
    expect(settleJudged(judgedAt, judgedAt, [audit.name], [audit.name])).toEqual(snapshotAt(2, { booked: 2 }));
    const movedOn = snapshotAt(3, { booked: 3 }, { [audit.name]: 1 }, { '1': { booked: 1 } });
    expect(settleJudged(movedOn, judgedAt, [audit.name], [audit.name])).toEqual({
      ...movedOn,
      pending: { [audit.name]: 2 },
      befores: { '2': { booked: 2 } },
    });
    // Already past what was judged, or nothing judged: nothing to change.
    expect(settleJudged({ ...movedOn, pending: { [audit.name]: 2 }, befores: { '2': { booked: 2 } } }, judgedAt, [audit.name], [audit.name])).toBeUndefined();
    expect(settleJudged(movedOn, judgedAt, [], ['removedTrigger'])).toBeUndefined();
  });

  it('treats bookkeeping read from the table as delivered only once a checkpoint passed every partition of the item', () => {
    const ledger = new TriggerLedger([audit]);
    const item = { ...snapshotAt(2, { booked: 2 }, { [audit.name]: 1 }, { '1': { booked: 1 } }), offsets: { 'bookings/0': '4', 'bookings/1': '7' } };
    expect(ledger.unprovenPartitions([item, snapshotAt(1, {})])).toEqual(['bookings/0', 'bookings/1']);
    ledger.noteDurable('bookings/0', 5n);
    ledger.noteDurable('bookings/1', 7n);
    expect(ledger.settle(item)).toBe(item);
    expect(ledger.unprovenPartitions([item])).toEqual(['bookings/1']);
    ledger.noteDurable('bookings/1', 8n);
    ledger.noteDurable('bookings/1', 3n);
    expect(ledger.settle(item)).toEqual({ version: 2, stateJson: item.stateJson, offsets: item.offsets });
  });

  it('judges turns of one item in registration order, each from what the turn before judged', async () => {
    const ledger = new TriggerLedger([audit]);
    const id = itemId(viewItemKey('attendance', 'yoga'));
    const v1 = snapshotAt(1, { booked: 1 }, { [audit.name]: 0 });
    const v2 = snapshotAt(2, { booked: 2 }, { [audit.name]: 0 });
    const first = ledger.openGates();
    const second = ledger.openGates();
    const gate1 = ledger.registerGate(id, first)!;
    const gate2 = ledger.registerGate(id, second)!;
    expect(gate1.prev).toBeUndefined();
    let secondJudged = false;
    const waiting = (async () => {
      await gate2.prev;
      secondJudged = true;
      return ledger.judge(attendance, 'yoga', v2, gate2);
    })();
    await Promise.resolve();
    expect(secondJudged).toBe(false);
    expect(ledger.judge(attendance, 'yoga', v1, gate1).deliveries[0]!.change.before).toBeUndefined();
    ledger.openGate(gate1);
    expect((await waiting).deliveries[0]!.change.before).toEqual({ booked: 1 });
    // Once both batches are done the item is forgotten: a later turn judges from the stored bookkeeping.
    ledger.closeGates(first);
    ledger.closeGates(second);
    const third = ledger.openGates();
    const gate3 = ledger.registerGate(id, third)!;
    expect(gate3.prev).toBeUndefined();
    expect(ledger.judge(attendance, 'yoga', v2, gate3).deliveries[0]!.change.before).toBeUndefined();
    // A closed batch takes no more turns.
    ledger.closeGates(third);
    expect(ledger.registerGate(id, third)).toBeUndefined();
  });

  it('reads bookkeeping back from a stored item only when it owes a change', () => {
    const stored: ViewItem = { ...viewItemKey('attendance', 'yoga'), ...viewIndexKey('attendance', 'yoga'), view: 'attendance', key: 'yoga', state: { booked: 1 }, version: 1, offsets: {}, updatedAt: 'x' };
    expect(snapshotOf({ ...stored, pending: {} })).not.toHaveProperty('pending');
    expect(snapshotOf({ ...stored, pending: { [audit.name]: 0 } })).toMatchObject({ pending: { [audit.name]: 0 }, befores: {} });
  });
});

/** A record of `bookings` as the consumer hands it over. */
function record(partition: number, offset: number, classId: string, member: string): SourceRecord {
  return {
    topic: 'bookings',
    partition,
    offset: String(offset),
    key: null,
    value: Buffer.from(JSON.stringify({ classId, member })),
    timestampMs: 0,
    headers: {},
  };
}

/** An in-memory table whose writes of member "slow" wait until released. */
class GatedStore extends MemoryItemStore {
  private opened!: () => void;
  private readonly gate = new Promise<void>((resolve) => {
    this.opened = resolve;
  });
  release(): void {
    this.opened();
  }
  override async putItem(item: ViewItem, expectedVersion: number): Promise<void> {
    if (item.key === 'slow') await this.gate;
    return super.putItem(item, expectedVersion);
  }
}

function recordingSink(): ChangeSink & { changes: { trigger: string; change: Change }[] } {
  const changes: { trigger: string; change: Change }[] = [];
  return {
    changes,
    async deliver(trigger, batch) {
      for (const change of batch) changes.push({ trigger: trigger.name, change: structuredClone(change) });
      return batch.map((): ChangeOutcome => 'delivered');
    },
  };
}

function processorOf(app: App, store: MemoryItemStore, changes: ChangeSink): BatchProcessor {
  return new BatchProcessor({
    app,
    store,
    cache: new StateCache({ maxEntries: 1_000, maxBytes: 1024 * 1024 }),
    deadLetters: { send: async () => {} },
    changes,
    limits: { writeConcurrency: 4, maxConflictRetries: 10 },
    now: () => new Date(0),
  });
}
