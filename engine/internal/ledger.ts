/**
 * The trigger ledger: the one owner of the rule "a change's `before` is the state that trigger
 * last judged" (docs/architecture.md, invariant 4). It decides what trigger bookkeeping a write
 * carries (`pending`: trigger → version last judged, `befores`: those states), which changes an
 * item owes and from which `before`, the order in which batches of this process that write one
 * item judge it, what the bookkeeping becomes once changes are delivered, skipped or
 * dead-lettered, and whether a stored item has moved past a change. The fold stamps what the
 * ledger says a write carries; the processor asks the ledger instead of keeping judging state.
 * Pure functions apart from {@link TriggerLedger}, which holds only this process's knowledge:
 * the judging turns in flight and the checkpoints known durable.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Change, Trigger, View, WindowBounds } from '../../sdk/index.ts';
import { decodeState, MAX_TRIGGERED_STATE_BYTES, viewSegment, type ViewItem } from '../../sdk/contract/index.ts';
import type { TriggerDeadLetterEntry } from './dead-letter.ts';
import { errorInfo } from './errors.ts';
import type { ItemSnapshot } from './fold.ts';
import { isOriginKey } from './repartition.ts';

/** The trigger bookkeeping a write stores on its item, atomically with the state. */
export interface Bookkeeping {
  /** Per trigger with a change owed, the version of the state it last judged (0 = absent). */
  readonly pending: Record<string, number>;
  /**
   * The states named by `pending`, keyed by version (the absent state has no entry), and, while
   * a `changes: 'every'` trigger owes changes, every intermediate state after the version it
   * last judged: one change per state.
   */
  readonly befores: Record<string, unknown>;
}

/**
 * Bytes an item may spend on its state and the states its bookkeeping keeps (`befores`): twice
 * the largest state of a view with triggers, so a write that applies one event always fits, and
 * the rest of DynamoDB's 400 KB stays for keys, offsets and attribute names.
 */
export const MAX_ITEM_STATES_BYTES = 2 * MAX_TRIGGERED_STATE_BYTES;

/** One state a write passed through, after one applied event: its version and JSON (undefined: deleted). */
export interface WrittenState {
  readonly version: number;
  readonly stateJson: string | undefined;
}

/**
 * How `befores` holds a kept intermediate state in which the item was deleted (`reduce`
 * returned DELETE): a state cannot be `undefined` in DynamoDB, and a view state cannot have
 * this key at its top level (the fold refuses it as STATE_NOT_STORABLE).
 */
export const ABSENT_TAG = '$absent';
const ABSENT_STATE = Object.freeze({ [ABSENT_TAG]: true });

/** A kept state as a change carries it: undefined for a deleted one. */
function keptState(value: unknown): unknown {
  return value !== null && typeof value === 'object' && Object.prototype.hasOwnProperty.call(value, ABSENT_TAG) ? undefined : value;
}

/** What a write stores, as {@link writeBookkeeping} needs it. */
export interface WriteStates {
  /** The new state (JSON; undefined: the item is deleted) and version. */
  readonly version: number;
  readonly stateJson: string | undefined;
  /**
   * The states between the snapshot's and the new one, oldest first, one per applied event
   * that changed the state (recorded only when a trigger takes every change).
   */
  readonly intermediates: readonly WrittenState[];
}

/** Whether a trigger takes one change per applied event (`changes: 'every'`). */
function takesEvery(trigger: Trigger<any> | undefined): boolean {
  return trigger?.changes === 'every';
}

/**
 * The states to keep for `pending`: each trigger's last judged state and, from the lowest
 * version an `every` trigger last judged (`floor`), every state after it the write passed
 * through. `lookup` gives a version's state, or undefined when nothing holds it.
 */
function keptBefores(
  pending: Readonly<Record<string, number>>,
  floor: number | undefined,
  versions: Iterable<number>,
  lookup: (version: number) => unknown,
): Record<string, unknown> {
  const befores: Record<string, unknown> = {};
  const keep = (version: number): void => {
    if (version === 0) return;
    const name = String(version);
    if (befores[name] !== undefined) return;
    const state = lookup(version);
    if (state !== undefined) befores[name] = state;
  };
  for (const since of Object.values(pending)) keep(since);
  if (floor !== undefined) for (const version of versions) if (version > floor) keep(version);
  return befores;
}

/** The lowest version a trigger in `pending` last judged, among those `every` names (all when undefined). */
function lowestSince(pending: Readonly<Record<string, number>>, every?: (name: string) => boolean): number | undefined {
  let floor: number | undefined;
  for (const [name, since] of Object.entries(pending)) {
    if (every !== undefined && !every(name)) continue;
    if (floor === undefined || since < floor) floor = since;
  }
  return floor;
}

/**
 * What a write of `snapshot`'s item carries: a trigger with a change not yet delivered keeps
 * its older `before`; a trigger owes a change when the write changed the final state
 * (`'coalesced'`) or any state it passed through (`'every'`), starting from the state it was
 * last judged on (the write's starting state). While an `'every'` trigger owes changes, the
 * intermediate states after the one it last judged stay in `befores` until delivered, so a
 * crash redelivers each of them. Undefined when no change is owed.
 *
 * @example
 * const bookkeeping = writeBookkeeping(snapshot, { version, stateJson, intermediates: [] }, triggers);
 * const item = { ...rest, ...(bookkeeping ?? {}) };
 */
export function writeBookkeeping(
  snapshot: ItemSnapshot,
  write: WriteStates,
  triggers: readonly Trigger<any>[],
): Bookkeeping | undefined {
  const finalChanged = write.stateJson !== snapshot.stateJson;
  const anyChanged = finalChanged || write.intermediates.some((s) => s.stateJson !== snapshot.stateJson);
  const pending: Record<string, number> = { ...snapshot.pending };
  for (const trigger of triggers) {
    if (pending[trigger.name] !== undefined) continue;
    if (takesEvery(trigger) ? anyChanged : finalChanged) pending[trigger.name] = snapshot.version;
  }
  if (Object.keys(pending).length === 0) return undefined;
  const byName = new Map(triggers.map((t) => [t.name, t]));
  const floor = lowestSince(pending, (name) => takesEvery(byName.get(name)));
  const written = new Map(write.intermediates.map((s) => [s.version, s.stateJson]));
  const versions = [
    ...Object.keys(snapshot.befores ?? {}).map(Number),
    ...(snapshot.stateJson !== undefined ? [snapshot.version] : []),
    ...written.keys(),
  ];
  const befores = keptBefores(pending, floor, versions, (version) => {
    if (version === snapshot.version && snapshot.stateJson !== undefined) return JSON.parse(snapshot.stateJson);
    if (written.has(version)) {
      const json = written.get(version);
      return json === undefined ? ABSENT_STATE : JSON.parse(json);
    }
    return snapshot.befores?.[String(version)];
  });
  return { pending, befores };
}

/**
 * Bytes of the states `snapshot`'s bookkeeping keeps plus its state: what a write adds its own
 * states to when checking {@link MAX_ITEM_STATES_BYTES}. An upper bound, counted as JSON.
 */
export function keptStatesBytes(snapshot: ItemSnapshot): number {
  let bytes = snapshot.stateJson !== undefined ? Buffer.byteLength(snapshot.stateJson) : 0;
  for (const state of Object.values(snapshot.befores ?? {})) bytes += Buffer.byteLength(JSON.stringify(state));
  return bytes;
}

/** The bookkeeping a stored item carries, or undefined when it owes no change. */
export function storedBookkeeping(item: Pick<ViewItem, 'pending' | 'befores'>): Bookkeeping | undefined {
  if (item.pending === undefined || Object.keys(item.pending).length === 0) return undefined;
  return { pending: item.pending, befores: item.befores ?? {} };
}

/** The state a trigger last judged an item at (its `after`; undefined: deleted), and that state's version. */
export interface JudgedState {
  readonly version: number;
  readonly stateJson: string | undefined;
}

/** One trigger's verdict on one item's pending change. */
export interface PendingDelivery {
  readonly trigger: Trigger<any>;
  readonly change: Change;
  /** `when(change)` said yes: deliver. No: just clear the bookkeeping. */
  readonly deliver: boolean;
  /** Set when `when` threw: the change goes to the dead-letter topic instead. */
  readonly deadLetter?: TriggerDeadLetterEntry;
}

/** Idempotency key of a change: `(view, key, window start, version)` joined (an unwindowed item's window part is empty). */
export function changeIdempotencyKey(view: string, key: string, window: { readonly start: number } | undefined, version: number): string {
  return `${view}#${key}#${window?.start ?? ''}#${version}`;
}

/**
 * The changes an item owes its triggers, filtered by each trigger's `when`: per trigger listed
 * in `pending`, from the state that trigger last judged (`before`) to the current state: one
 * change (`'coalesced'`), or one per state kept in `befores` after that one, each with its own
 * version, oldest first (`'every'`; a state equal to the one before it is no change).
 *
 * @example
 * for (const d of pendingDeliveries(view, key, snapshot, app.triggers)) if (d.deliver) changes.push(d.change);
 */
export function pendingDeliveries(
  view: View<any, any>,
  key: string,
  snapshot: ItemSnapshot,
  triggers: readonly Trigger<any>[],
  judged?: ReadonlyMap<string, JudgedState>,
): PendingDelivery[] {
  const pending = snapshot.pending;
  // A tombstone (version > 0, no state) owes the change that deleted it: `after` undefined.
  if (pending === undefined || snapshot.version === 0) return [];
  const out: PendingDelivery[] = [];
  const after = snapshot.stateJson === undefined ? undefined : JSON.parse(snapshot.stateJson);
  for (const trigger of triggers) {
    if (trigger.view.name !== view.name) continue;
    const since = pending[trigger.name];
    if (since === undefined) continue;
    // A change judged since the stored bookkeeping was written (by this process, not yet settled
    // in the item) is where this one starts; one at or past this version leaves nothing to judge.
    const last = judged?.get(trigger.name);
    if (last !== undefined && last.version >= snapshot.version) continue;
    const from = last !== undefined && last.version >= since ? last.version : since;
    let before: unknown =
      from !== since
        ? last!.stateJson === undefined
          ? undefined
          : JSON.parse(last!.stateJson)
        : since === 0
          ? undefined
          : keptState(snapshot.befores?.[String(since)]);
    // The version of `before`, as the trigger last judged it: lets a subscriber tell a change
    // that follows the one it holds from one after a gap (0: the trigger judged no earlier version).
    let beforeVersion = from;
    const steps: { version: number; state: unknown }[] = [];
    if (takesEvery(trigger)) {
      const versions = Object.keys(snapshot.befores ?? {})
        .map(Number)
        .filter((version) => version > from && version < snapshot.version)
        .sort((a, b) => a - b);
      for (const version of versions) steps.push({ version, state: keptState(snapshot.befores![String(version)]) });
    }
    steps.push({ version: snapshot.version, state: after });
    for (const step of steps) {
      // An event that left the state as it was is no change (a crash re-read may reorder keys: compare values).
      // Nor is a delete of an item that did not exist (for any trigger).
      if (before === undefined && step.state === undefined) continue;
      if (takesEvery(trigger) && before !== undefined && isDeepStrictEqual(before, step.state)) continue;
      out.push(judgeChange(trigger, view.name, key, before, beforeVersion, step.state, step.version, snapshot.offsets, snapshot.window));
      before = step.state;
      beforeVersion = step.version;
    }
  }
  return out;
}

/** One change, judged by its trigger's `when` (a throw dead-letters it). */
function judgeChange(
  trigger: Trigger<any>,
  view: string,
  key: string,
  before: unknown,
  beforeVersion: number,
  after: unknown,
  version: number,
  offsets: Readonly<Record<string, string>>,
  window: WindowBounds | undefined,
): PendingDelivery {
  const change: Change = {
    view,
    key,
    ...(window !== undefined ? { window: { start: window.start, end: window.end } } : {}),
    before: before === undefined ? undefined : structuredClone(before),
    ...(beforeVersion > 0 ? { beforeVersion } : {}),
    after: after === undefined ? undefined : structuredClone(after),
    ...(after === undefined ? { deleted: true as const } : {}),
    version,
    offsets: { ...offsets },
    // A rebuilt view's items count their versions afresh: its changes are told apart by the view version.
    idempotencyKey: changeIdempotencyKey(viewSegment(view, trigger.view.version), key, window, version),
    ...(trigger.view.version > 1 ? { viewVersion: trigger.view.version } : {}),
  };
  try {
    // The change travels as JSON (bigints tagged); when() sees the view's own types, as handlers do.
    const judged = { ...change, before: decodeState(change.before), after: decodeState(change.after) };
    return { trigger, change, deliver: trigger.when(judged) === true };
  } catch (error) {
    return {
      trigger,
      change,
      deliver: false,
      deadLetter: {
        kind: 'trigger',
        code: 'TRIGGER_WHEN_FAILED',
        reason: `trigger "${trigger.name}": when() threw for key "${key}" version ${version}: ${errorInfo(error).message}; make when() return a boolean for every change`,
        trigger: trigger.name,
        view,
        key,
        function: trigger.function,
        change,
        error: errorInfo(error),
      },
    };
  }
}

/**
 * The snapshot after the changes of `judged` triggers up to `version` (state `stateJson`) were
 * delivered, skipped or dead-lettered, when the item has moved on past `version`: their
 * bookkeeping starts at `version` instead of an older one, so the next change starts there.
 */
export function advancePending(
  snapshot: ItemSnapshot,
  judged: readonly string[],
  version: number,
  stateJson: string | undefined,
): ItemSnapshot {
  if (snapshot.pending === undefined || snapshot.version <= version) return snapshot;
  const pending: Record<string, number> = { ...snapshot.pending };
  let advanced = false;
  for (const name of judged) {
    const since = pending[name];
    if (since !== undefined && since < version) {
      pending[name] = version;
      advanced = true;
    }
  }
  if (!advanced) return snapshot;
  const befores = keptBefores(pending, lowestSince(pending), Object.keys(snapshot.befores ?? {}).map(Number), (v) =>
    v === version ? (stateJson === undefined ? undefined : JSON.parse(stateJson)) : snapshot.befores?.[String(v)],
  );
  return { ...snapshot, pending, befores };
}

/** The snapshot after the pending bookkeeping of `cleared` triggers was removed. */
export function clearPending(snapshot: ItemSnapshot, cleared: readonly string[]): ItemSnapshot {
  if (snapshot.pending === undefined) return snapshot;
  const pending: Record<string, number> = { ...snapshot.pending };
  for (const name of cleared) delete pending[name];
  const { pending: _p, befores: _b, ...rest } = snapshot;
  if (Object.keys(pending).length === 0) return rest;
  // Which remaining triggers take every change is not known here: keep every state from the
  // lowest version still owed (a superset; the item's next write keeps exactly what is needed).
  const befores = keptBefores(pending, lowestSince(pending), Object.keys(snapshot.befores ?? {}).map(Number), (v) =>
    snapshot.befores?.[String(v)],
  );
  return { ...rest, pending, befores };
}

/**
 * What the cached snapshot `cached` of an item becomes once the changes of `judgedAt` (the
 * snapshot they were judged from) were delivered, skipped or dead-lettered: `judged` names the
 * triggers that judged a change, `cleared` those plus the triggers no longer in the app. Still
 * at that version: the bookkeeping of `cleared` goes. Moved on (another batch wrote the item,
 * keeping the older bookkeeping): the `judged` triggers' bookkeeping advances to `judgedAt`,
 * so a change built from it later starts where this one ended. Undefined: leave it as it is.
 *
 * @example
 * const settled = settleJudged(cache.peek(id)!, judgedAt, ['notify'], ['notify']);
 * if (settled !== undefined) cache.set(id, settled);
 */
export function settleJudged(
  cached: ItemSnapshot,
  judgedAt: ItemSnapshot,
  judged: readonly string[],
  cleared: readonly string[],
): ItemSnapshot | undefined {
  if (cached.version === judgedAt.version) return clearPending(cached, cleared);
  if (cached.version > judgedAt.version && judgedAt.version > 0 && judged.length > 0) {
    const advanced = advancePending(cached, judged, judgedAt.version, judgedAt.stateJson);
    if (advanced !== cached) return advanced;
  }
  return undefined;
}

/**
 * Whether a stored item's trigger bookkeeping has moved past `version` for `trigger`: a later
 * write of the item records that the trigger already judged the state at `version` or later
 * (or owes nothing), so a change to `version` still in some task's hands is stale. The item's
 * own version alone proves nothing: a write keeps the bookkeeping of changes still owed.
 *
 * @example
 * if (changeSuperseded(await store.readItem(key), 'classNearlyFull', change.version)) skip(change);
 */
export function changeSuperseded(item: Pick<ViewItem, 'version' | 'pending'> | undefined, trigger: string, version: number): boolean {
  if (item === undefined || item.version <= version) return false;
  const since = item.pending?.[trigger];
  return since === undefined || since >= version;
}

/**
 * What this process judged of one item's triggers while batches touching it are unfinished.
 * Batches of several partitions can write one item (a view key unlike the Kafka key); each
 * write keeps the stored bookkeeping of the changes still owed, so a later batch's change would
 * start from an older `before`. Judging them one batch after the other, in write order, against
 * what the earlier batch judged keeps `before` = the state the trigger last judged.
 */
interface ItemJudging {
  /** Resolves once the latest registered batch judged this item and handed its changes on. */
  tail: Promise<void> | undefined;
  /** Per trigger, the latest version judged and its state. */
  readonly judged: Map<string, JudgedState>;
  /** Batches registered and not finished: the entry is dropped at 0, so memory stays bounded. */
  holders: number;
}

/** One batch's place in an item's judging order. */
export interface JudgeGate {
  readonly id: string;
  /** The previous batch's turn; this batch judges after it. */
  readonly prev: Promise<void> | undefined;
  readonly open: () => void;
  opened: boolean;
  dropped: boolean;
}

/** The gates one batch registered; closed once the batch finished or failed. */
export interface GateList {
  readonly gates: JudgeGate[];
  closed: boolean;
}

/** An item's judged changes: what to deliver and which bookkeeping names nothing deliverable. */
export interface ItemJudgement {
  readonly deliveries: PendingDelivery[];
  /** Bookkeeping of triggers removed from the app since the write: nothing to deliver. */
  readonly unknown: string[];
}

/**
 * The ledger of one engine process: which triggers watch which view, the judging turns of the
 * batches in flight (see {@link ItemJudging}), and the checkpoints known durable, which settle
 * bookkeeping read from the table. One instance per {@link BatchProcessor}.
 *
 * @example
 * const ledger = new TriggerLedger(app.triggers);
 * const gates = ledger.openGates();
 * const gate = ledger.registerGate(item.id, gates); // right after the item's write, under its lock
 * await gate?.prev;
 * const { deliveries } = ledger.judge(item.view, item.key, written, gate);
 * ledger.closeGates(gates); // when the batch is finished with its items
 */
export class TriggerLedger {
  private readonly triggersByView = new Map<string, Trigger<any>[]>();
  private readonly triggerNames: Set<string>;
  /** Per item id, only while batches that owe its changes are unfinished (see {@link ItemJudging}). */
  private readonly judging = new Map<string, ItemJudging>();
  /**
   * Next offset known durable per `topic/partition` (this processor's own checkpoints, and ones
   * read from the store); only grows. A lower value than the truth only costs a redelivery.
   */
  private readonly durableUpTo = new Map<string, bigint>();

  constructor(triggers: readonly Trigger<any>[]) {
    for (const trigger of triggers) {
      const list = this.triggersByView.get(trigger.view.name) ?? [];
      list.push(trigger);
      this.triggersByView.set(trigger.view.name, list);
    }
    this.triggerNames = new Set(triggers.map((t) => t.name));
  }

  /** The triggers subscribed to a view. */
  triggersOf(view: string): readonly Trigger<any>[] {
    return this.triggersByView.get(view) ?? [];
  }

  /** A batch's (empty) list of judging turns. */
  openGates(): GateList {
    return { gates: [], closed: false };
  }

  /** The batch is finished with its items, whatever happened: its turns end. */
  closeGates(gates: GateList): void {
    gates.closed = true;
    for (const gate of gates.gates) this.dropGate(gate);
  }

  /** Takes the next turn to judge item `id`'s triggers, after the batches registered before. */
  registerGate(id: string, gates: GateList): JudgeGate | undefined {
    if (gates.closed) return undefined;
    let judging = this.judging.get(id);
    if (judging === undefined) {
      judging = { tail: undefined, judged: new Map(), holders: 0 };
      this.judging.set(id, judging);
    }
    let open!: () => void;
    const turn = new Promise<void>((resolve) => {
      open = resolve;
    });
    const gate: JudgeGate = { id, prev: judging.tail, open, opened: false, dropped: false };
    judging.tail = turn;
    judging.holders += 1;
    gates.gates.push(gate);
    return gate;
  }

  /** Lets the next batch judge the item (this one judged it, or never will). */
  openGate(gate: JudgeGate): void {
    if (gate.opened) return;
    gate.opened = true;
    gate.open();
  }

  /** The batch is finished with the item: once no batch holds it, forget what was judged. */
  private dropGate(gate: JudgeGate): void {
    this.openGate(gate);
    if (gate.dropped) return;
    gate.dropped = true;
    const judging = this.judging.get(gate.id);
    if (judging === undefined) return;
    judging.holders -= 1;
    if (judging.holders <= 0) this.judging.delete(gate.id);
  }

  /**
   * Judges the changes `snapshot` (an item with `pending` bookkeeping) owes, from what the
   * batches before `gate` judged, and records what this one judged for the batches after it.
   */
  judge(view: View<any, any>, key: string, snapshot: ItemSnapshot, gate: JudgeGate | undefined): ItemJudgement {
    const pending = snapshot.pending!;
    const triggers = this.triggersOf(view.name);
    const judging = gate !== undefined ? this.judging.get(gate.id) : undefined;
    const deliveries = pendingDeliveries(view, key, snapshot, triggers, judging?.judged);
    if (judging !== undefined && snapshot.version > 0) {
      for (const { trigger } of deliveries) {
        const last = judging.judged.get(trigger.name);
        if (last === undefined || last.version < snapshot.version) {
          judging.judged.set(trigger.name, { version: snapshot.version, stateJson: snapshot.stateJson });
        }
      }
    }
    const unknown = Object.keys(pending).filter(
      (name) => !this.triggerNames.has(name) || !triggers.some((t) => t.name === name),
    );
    return { deliveries, unknown };
  }

  /** Records that everything of a partition below `nextOffset` is durable (its checkpoint). */
  noteDurable(partitionKey: string, nextOffset: bigint): void {
    if ((this.durableUpTo.get(partitionKey) ?? -1n) < nextOffset) this.durableUpTo.set(partitionKey, nextOffset);
  }

  /**
   * The partitions whose checkpoints could prove the bookkeeping of `snapshots` delivered,
   * where what is known so far does not: the caller reads them and notes them durable.
   */
  unprovenPartitions(snapshots: readonly ItemSnapshot[]): string[] {
    const unknown = new Set<string>();
    for (const snapshot of snapshots) {
      if (snapshot.pending === undefined) continue;
      for (const [partitionKey, offset] of Object.entries(snapshot.offsets)) {
        if (isOriginKey(partitionKey)) continue; // proven through the repartition partition's own key
        if ((this.durableUpTo.get(partitionKey) ?? -1n) <= BigInt(offset)) unknown.add(partitionKey);
      }
    }
    return [...unknown];
  }

  /**
   * Drops trigger bookkeeping that is already delivered. A batch delivers (or dead-letters)
   * every change pending on each item it wrote before it checkpoints, so bookkeeping is settled
   * once, for every partition the item has applied events of, a checkpoint has passed the
   * item's offset: the batch that wrote it last has finished. Otherwise the changes are owed
   * (a crash between write and delivery) and are delivered again (docs/architecture.md, invariant 4).
   */
  settle(snapshot: ItemSnapshot): ItemSnapshot {
    if (snapshot.pending === undefined) return snapshot;
    // A repartitioned view's original partitions are not checkpointed by its fold (repartition.ts).
    const offsets = Object.entries(snapshot.offsets).filter(([partitionKey]) => !isOriginKey(partitionKey));
    if (offsets.length === 0) return snapshot;
    for (const [partitionKey, offset] of offsets) {
      if ((this.durableUpTo.get(partitionKey) ?? -1n) <= BigInt(offset)) return snapshot;
    }
    return clearPending(snapshot, Object.keys(snapshot.pending));
  }
}
