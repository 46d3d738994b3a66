/**
 * Dead-letter replay: after the code of a view (or a trigger's function) is fixed, the letters
 * the view dead-lettered are folded into it again, exactly once, and the changes its triggers
 * could not deliver are delivered again.
 *
 * The fence. A dead-lettered source record lies below the source offsets its item has already
 * passed, so the item's own fence would skip it. Replay therefore folds the dead-letter topic
 * itself as a source: each letter is a record whose coordinates are the letter's own, in a
 * replay topic per view and code (`<deadLetterTopic>:view:<view>:<code>`), so an item's
 * `offsets` gain an entry `<deadLetterTopic>:view:<view>:<code>/<partition>` and a second replay
 * skips what the first applied, through the same fence and conditional writes as live folding.
 * User code (decode, filter, key, lookups, reduce) still sees the original record. A letter
 * still poison is dead-lettered again, naming the letter it replays (`replayOf`); that later
 * letter stands for it from then on. Trigger letters are delivered again with their idempotency
 * key; a checkpoint per trigger and code (`<deadLetterTopic>:trigger:<trigger>:<code>`) says how
 * far a replay got, so a second replay delivers nothing twice. The processor's checkpoint of
 * each replay topic is what lets a later batch settle the trigger bookkeeping a replay wrote.
 *
 * Pure of Kafka: {@link replayLetters} takes the letters, a store and sinks, so the test driver's
 * store serves as well as DynamoDB; `replay-runner.ts` reads the topic and wires the real ones.
 */
import type { App, Change, SourceRecord, Trigger, View } from '../../sdk/index.ts';
import type { ChangeSink, DeadLetterSink } from './change-sink.ts';
import { coordinates, type DeadLetter, type PoisonDeadLetter } from './dead-letter.ts';
import { EngineError, errorInfo } from './errors.ts';
import { BatchProcessor, type ItemStore } from './processor.ts';
import { StateCache } from './state-cache.ts';
import { compareOffsets } from './fold.ts';
import { decodeState } from '../../sdk/contract/index.ts';

/** A message of the dead-letter topic: where it is, when it was written, and its JSON value. */
export interface StoredDeadLetter {
  readonly partition: number;
  /** Offset in the dead-letter topic, decimal. */
  readonly offset: string;
  /** The message's Kafka timestamp (epoch ms). */
  readonly timestampMs: number;
  /** The letter as `encodeDeadLetter` wrote it; undefined when the value is not a JSON object. */
  readonly value: Readonly<Record<string, unknown>> | undefined;
}

/** Which letters to replay. */
export interface ReplaySelection {
  /** The views whose letters (poison records, and their triggers' undelivered changes) to replay. */
  readonly views: readonly string[];
  /**
   * Only letters of these codes (e.g. `REDUCE_FAILED`, `TRIGGER_DELIVERY_FAILED`). Safe to
   * narrow: each code has its own fence, so letters left out stay replayable.
   * @default every code
   */
  readonly codes?: readonly string[];
  /**
   * Only letters written up to this time: in each partition of the dead-letter topic, the letters
   * before the first one written after it (a prefix, so those left out stay replayable).
   * @default no limit
   */
  readonly until?: Date;
}

/** A letter replay could not use, and why. */
export interface UnreplayableLetter {
  readonly partition: number;
  readonly offset: string;
  readonly reason: string;
}

/** Progress of a replay, after each batch. */
export interface ReplayProgress {
  /** Letters selected so far handled. */
  readonly done: number;
  /** Letters selected. */
  readonly total: number;
}

/** What a replay did. */
export interface ReplaySummary {
  /** Letters of the chosen views (and codes, and time) read from the dead-letter topic. */
  readonly selected: number;
  /** Poison records folded into their view now. */
  readonly replayed: number;
  /** Poison records an earlier replay had applied (skipped by the fence). */
  readonly alreadyApplied: number;
  /** Poison records the view's `filter` now drops. */
  readonly filtered: number;
  /** Poison records still poison: dead-lettered again with the new reason (`replayOf` names the letter). */
  readonly stillPoison: number;
  /** Letters an earlier replay dead-lettered again: their later letter stands for them. */
  readonly superseded: number;
  /** Trigger changes delivered again. */
  readonly delivered: number;
  /** Trigger changes an earlier replay delivered (or judged) already. */
  readonly alreadyDelivered: number;
  /** Trigger changes whose `when` now says no: nothing to deliver. */
  readonly notDue: number;
  /** Trigger changes that failed again and were dead-lettered again. */
  readonly failedAgain: number;
  /** Letters that cannot be replayed, each with the reason. */
  readonly unreplayable: readonly UnreplayableLetter[];
}

/** What {@link replayLetters} needs. */
export interface ReplayDeps {
  /** The app with the fixed code. */
  readonly app: App;
  readonly store: ItemStore;
  /** Where letters still poison (and changes failing again) go: the dead-letter topic. */
  readonly deadLetters: DeadLetterSink;
  /** Delivers trigger changes (the dispatcher), with no superseded check: a replayed change is owed. */
  readonly changes: ChangeSink;
  /** The dead-letter topic the letters were read from (it names the fences). */
  readonly deadLetterTopic: string;
  readonly onProgress?: (progress: ReplayProgress) => void;
  /** @default 500 */
  readonly batchSize?: number;
  readonly now?: () => Date;
}

/** Records folded per processor batch. */
const DEFAULT_REPLAY_BATCH = 500;

/** The replay topic (fence) of a view's poison letters of one code. */
export function replayTopicOfView(deadLetterTopic: string, view: string, code: string): string {
  return `${deadLetterTopic}:view:${view}:${code}`;
}

/** The replay topic (fence) of a trigger's letters of one code. */
export function replayTopicOfTrigger(deadLetterTopic: string, trigger: string, code: string): string {
  return `${deadLetterTopic}:trigger:${trigger}:${code}`;
}

function position(partition: number, offset: string): string {
  return `${partition}@${offset}`;
}

/** The source record a poison letter carries, or why it carries none. */
function originalRecord(value: Readonly<Record<string, unknown>>): { ok: true; record: SourceRecord } | { ok: false; reason: string } {
  const source = value.source as { topic?: unknown; partition?: unknown; offset?: unknown; timestampMs?: unknown } | undefined;
  const original = value.original as { key?: unknown; value?: unknown; headers?: unknown } | undefined;
  const omitted = value.omitted as { fields?: unknown; reason?: unknown } | undefined;
  if (Array.isArray(omitted?.fields) && omitted.fields.includes('original.value')) {
    return { ok: false, reason: `the letter holds no value (${String(omitted.reason ?? 'it was too large')}); the record is in the source topic at ${String(source?.topic)}/${String(source?.partition)}@${String(source?.offset)} while retained` };
  }
  if (source === undefined || typeof source.topic !== 'string' || typeof source.partition !== 'number' || typeof source.offset !== 'string' || original === undefined) {
    return { ok: false, reason: 'the letter has no source coordinates or original record (not written by this engine?)' };
  }
  const headers: Record<string, Buffer> = {};
  for (const [name, b64] of Object.entries((original.headers ?? {}) as Record<string, unknown>)) {
    if (typeof b64 === 'string') headers[name] = Buffer.from(b64, 'base64');
  }
  return {
    ok: true,
    record: {
      topic: source.topic,
      partition: source.partition,
      offset: source.offset,
      key: typeof original.key === 'string' ? Buffer.from(original.key, 'base64') : null,
      value: typeof original.value === 'string' ? Buffer.from(original.value, 'base64') : null,
      timestampMs: typeof source.timestampMs === 'number' ? source.timestampMs : 0,
      headers,
    },
  };
}

/**
 * The view as replay folds it: its source is the replay topic, and every function of user code
 * gets the original record in place of the replay record (which carries the fence coordinates).
 */
function replayView(view: View<any, any>, topic: string, originals: WeakMap<SourceRecord, SourceRecord>): View<any, any> {
  const original = (record: SourceRecord): SourceRecord => originals.get(record) ?? record;
  const lookup =
    view.lookup === undefined
      ? undefined
      : Object.fromEntries(Object.entries(view.lookup).map(([name, l]) => [name, { ...l, key: (event: unknown, record: SourceRecord) => l.key(event, original(record)) }]));
  return {
    ...view,
    source: topic,
    decode: (value: Buffer, record: SourceRecord) => view.decode(value, original(record)),
    filter: (event: unknown, record: SourceRecord) => view.filter(event, original(record)),
    key: (event: unknown, record: SourceRecord) => view.key(event, original(record)),
    reduce: (state: unknown, event: unknown, record: SourceRecord, rows: unknown) =>
      (view.reduce as (s: unknown, e: unknown, r: SourceRecord, rows: unknown) => unknown)(state, event, original(record), rows),
    ...(view.onTombstone !== undefined ? { onTombstone: (record: SourceRecord) => view.onTombstone!(original(record)) } : {}),
    ...(lookup !== undefined ? { lookup } : {}),
  } as View<any, any>;
}

/** Why a view's letters cannot be replayed, or undefined. */
function unsupported(view: View<any, any>): string | undefined {
  if (view.window !== undefined) {
    return `view "${view.name}" is windowed: its windows may have closed (and sent their final results) since the records were dead-lettered, so replay cannot apply them exactly; bump the view's version to rebuild it from the topic's history with the fixed code`;
  }
  if (view.over !== undefined) {
    return `view "${view.name}" aggregates a table: its dead letters are rows' changes, which replay does not re-derive; bump the view's version to rebuild it from the table's history with the fixed code`;
  }
  return undefined;
}

interface Group {
  readonly topic: string;
  readonly partition: number;
  readonly letters: { letter: StoredDeadLetter; value: Readonly<Record<string, unknown>> }[];
}

/**
 * Replays the selected dead letters of `letters` (everything read from the dead-letter topic)
 * with the app's current code: poison records are folded into their view behind the replay
 * fence; trigger changes are delivered again. Safe to run again: what was applied or delivered
 * is skipped. Run one replay at a time per app (concurrent replays of one view may both deliver
 * a change, never both apply a record).
 *
 * @example
 * const summary = await replayLetters({ app, store, deadLetters, changes, deadLetterTopic: app.deadLetterTopic }, letters, { views: ['attendance'] });
 * console.log(`${summary.replayed} replayed, ${summary.alreadyApplied} already applied, ${summary.stillPoison} still poison`);
 */
export async function replayLetters(deps: ReplayDeps, letters: readonly StoredDeadLetter[], selection: ReplaySelection): Promise<ReplaySummary> {
  const { app, deadLetterTopic } = deps;
  if (selection.views.length === 0) throw new EngineError('INVALID_ARGUMENT', 'replay needs at least one view; name the view whose letters to replay');
  const views = new Map<string, View<any, any>>();
  for (const name of selection.views) {
    const view = app.views.find((v) => v.name === name);
    if (view === undefined) {
      throw new EngineError('INVALID_ARGUMENT', `replay: app "${app.name}" has no view "${name}"; its views are ${app.views.map((v) => v.name).join(', ') || '(none)'}`);
    }
    const why = unsupported(view);
    if (why !== undefined) throw new EngineError('REPLAY_UNSUPPORTED', why, { context: { view: name } });
    views.set(name, view);
  }
  const codes = selection.codes === undefined ? undefined : new Set(selection.codes);
  const untilMs = selection.until?.getTime();

  // Letters an earlier replay dead-lettered again: the later letter stands for them.
  const replaced = new Set<string>();
  for (const { value } of letters) {
    const of = value?.replayOf as { partition?: unknown; offset?: unknown } | undefined;
    if (typeof of?.partition === 'number' && typeof of.offset === 'string') replaced.add(position(of.partition, of.offset));
  }

  const sorted = [...letters].sort((a, b) => a.partition - b.partition || compareOffsets(a.offset, b.offset));
  const cut = new Set<number>();
  const groups = new Map<string, Group>();
  const unreplayable: UnreplayableLetter[] = [];
  let selected = 0;
  let superseded = 0;
  for (const letter of sorted) {
    const value = letter.value;
    if (value === undefined || (value.app !== undefined && value.app !== app.name)) continue;
    if (typeof value.view !== 'string' || !views.has(value.view)) continue;
    if (codes !== undefined && !codes.has(String(value.code))) continue;
    if (cut.has(letter.partition)) continue;
    if (untilMs !== undefined && letter.timestampMs > untilMs) {
      cut.add(letter.partition);
      continue;
    }
    selected += 1;
    if (replaced.has(position(letter.partition, letter.offset))) {
      superseded += 1;
      continue;
    }
    const view = views.get(value.view)!;
    let topic: string;
    if (value.kind === 'poison') {
      if (value.code === 'LATE') {
        unreplayable.push({ partition: letter.partition, offset: letter.offset, reason: 'a late event: its windows had closed, so it is not applied to them' });
        continue;
      }
      const version = typeof value.viewVersion === 'number' ? value.viewVersion : 1;
      if (version !== view.version) {
        unreplayable.push({
          partition: letter.partition,
          offset: letter.offset,
          reason: `dead-lettered by version ${version} of view "${view.name}", and this code is version ${view.version}: the build of version ${view.version} folded the record again from the topic's history`,
        });
        continue;
      }
      topic = replayTopicOfView(deadLetterTopic, view.name, String(value.code));
    } else if (value.kind === 'trigger') {
      const trigger = app.triggers.find((t) => t.name === value.trigger);
      if (trigger === undefined) {
        unreplayable.push({ partition: letter.partition, offset: letter.offset, reason: `the app has no trigger "${String(value.trigger)}" any more` });
        continue;
      }
      topic = replayTopicOfTrigger(deadLetterTopic, trigger.name, String(value.code));
    } else continue;
    const id = `${topic}\n${letter.partition}`;
    let group = groups.get(id);
    if (group === undefined) {
      group = { topic, partition: letter.partition, letters: [] };
      groups.set(id, group);
    }
    group.letters.push({ letter, value });
  }

  const counts = { replayed: 0, alreadyApplied: 0, filtered: 0, stillPoison: 0, delivered: 0, alreadyDelivered: 0, notDue: 0, failedAgain: 0 };
  let done = superseded + unreplayable.length;
  const report = (): void => deps.onProgress?.({ done, total: selected });
  report();
  const cache = new StateCache({ maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 });
  const batchSize = deps.batchSize ?? DEFAULT_REPLAY_BATCH;

  for (const group of groups.values()) {
    const first = group.letters[0]!.value;
    if (first.kind === 'trigger') {
      const result = await replayTriggerGroup(deps, group, unreplayable, () => {
        done += 1;
      });
      counts.delivered += result.delivered;
      counts.alreadyDelivered += result.alreadyDelivered;
      counts.notDue += result.notDue;
      counts.failedAgain += result.failedAgain;
      report();
      continue;
    }
    const view = views.get(String(first.view))!;
    const originals = new WeakMap<SourceRecord, SourceRecord>();
    const replayOf = new WeakMap<SourceRecord, { partition: number; offset: string }>();
    const records: SourceRecord[] = [];
    for (const { letter, value } of group.letters) {
      const original = originalRecord(value);
      if (!original.ok) {
        unreplayable.push({ partition: letter.partition, offset: letter.offset, reason: original.reason });
        done += 1;
        continue;
      }
      // The replay record: the original's content at the letter's coordinates (the fence's).
      const record: SourceRecord = { ...original.record, topic: group.topic, partition: letter.partition, offset: letter.offset };
      originals.set(record, original.record);
      replayOf.set(record, { partition: letter.partition, offset: letter.offset });
      records.push(record);
    }
    // Letters still poison go out again with the original record and the letter they replay.
    const deadLetters: DeadLetterSink = {
      send: async (sent: readonly DeadLetter[]) => {
        const mapped = sent.map((letter): DeadLetter => {
          if (letter.kind !== 'poison') return letter;
          const of = replayOf.get(letter.record);
          if (of === undefined) return letter;
          counts.stillPoison += 1;
          const original = originals.get(letter.record)!;
          // The reason names the original coordinates, not the replay record's.
          const reason = letter.reason.split(coordinates(letter.record)).join(`${coordinates(original)} (replayed from ${deadLetterTopic}/${of.partition}@${of.offset})`);
          return { ...letter, record: original, reason, replayOf: of } satisfies PoisonDeadLetter;
        });
        await deps.deadLetters.send(mapped);
      },
    };
    const processor = new BatchProcessor({
      app: { ...app, views: [replayView(view, group.topic, originals)], triggers: app.triggers.filter((t) => t.view.name === view.name) },
      store: deps.store,
      cache,
      deadLetters,
      changes: deps.changes,
      limits: { writeConcurrency: 16, maxConflictRetries: 10 },
      ...(deps.now !== undefined ? { now: deps.now } : {}),
    });
    const stored = await deps.store.readCheckpoint(group.topic, group.partition);
    for (let i = 0; i < records.length; i += batchSize) {
      const chunk = records.slice(i, i + batchSize);
      const result = await processor.apply(group.topic, group.partition, chunk);
      counts.replayed += result.applied;
      counts.alreadyApplied += result.skipped;
      counts.filtered += result.filtered;
      // Never lowers a checkpoint an earlier, longer replay wrote (it proves that replay's deliveries).
      if (stored === undefined || compareOffsets(result.nextOffset, stored) > 0) await processor.checkpoint(group.topic, group.partition, result.nextOffset);
      done += chunk.length;
      report();
    }
  }
  return { selected, superseded, unreplayable, ...counts };
}

/** Delivers a trigger's letters of one partition and code again, past the replay checkpoint. */
async function replayTriggerGroup(
  deps: ReplayDeps,
  group: Group,
  unreplayable: UnreplayableLetter[],
  handled: () => void,
): Promise<{ delivered: number; alreadyDelivered: number; notDue: number; failedAgain: number }> {
  const counts = { delivered: 0, alreadyDelivered: 0, notDue: 0, failedAgain: 0 };
  const trigger = deps.app.triggers.find((t) => t.name === group.letters[0]!.value.trigger) as Trigger<any>;
  const stored = await deps.store.readCheckpoint(group.topic, group.partition);
  let next: string | undefined;
  for (const { letter, value } of group.letters) {
    handled();
    if (stored !== undefined && compareOffsets(letter.offset, stored) < 0) {
      counts.alreadyDelivered += 1;
      continue;
    }
    next = (BigInt(letter.offset) + 1n).toString();
    const omitted = value.omitted as { fields?: unknown } | undefined;
    const change = value.change as Change | undefined;
    if (change === undefined || typeof change.idempotencyKey !== 'string' || (Array.isArray(omitted?.fields) && omitted.fields.includes('change.after'))) {
      unreplayable.push({ partition: letter.partition, offset: letter.offset, reason: 'the letter does not hold the whole change (its states were too large for a letter); the view item holds the key\'s current state' });
      continue;
    }
    let due: boolean;
    try {
      due = trigger.when({ ...change, before: decodeState(change.before), after: decodeState(change.after) }) === true;
    } catch (error) {
      counts.failedAgain += 1;
      await deps.deadLetters.send([
        {
          kind: 'trigger',
          code: 'TRIGGER_WHEN_FAILED',
          reason: `trigger "${trigger.name}": when() threw for key "${change.key}" version ${change.version} on replay: ${errorInfo(error).message}; make when() return a boolean for every change`,
          trigger: trigger.name,
          view: trigger.view.name,
          key: change.key,
          function: trigger.function,
          change,
          error: errorInfo(error),
        },
      ]);
      continue;
    }
    if (!due) {
      counts.notDue += 1;
      continue;
    }
    const [outcome] = await deps.changes.deliver(trigger, [change]);
    if (outcome === 'dead-lettered') counts.failedAgain += 1;
    else counts.delivered += 1;
  }
  if (next !== undefined && (stored === undefined || compareOffsets(next, stored) > 0)) await deps.store.writeCheckpoint(group.topic, group.partition, next);
  return counts;
}
