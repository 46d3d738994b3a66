/**
 * Table aggregations (a view over a `defineTable`): the row changes of a batch, and the events
 * they owe the views that aggregate the table. Pure; the processor drives it.
 *
 * Exactly once across the row and its group items (docs/architecture.md, "Tables"): a row's
 * old value is its stored state, so the change of each record is derived from the row item
 * *before* the row is written, and the processor writes the group items of a batch first and the
 * row items after them. Each group event carries the table record itself, so the group item's
 * offsets vector fences it like any event. A crash between the two leaves the rows as they were:
 * the replay derives the same changes, the groups skip what they applied, and the rows are
 * written. One record gives a group item at most one event (old and new in one `RowChange`
 * when the row stays in its group), so no two events of one item share an offset.
 */
import type { SourceRecord, View } from '../../sdk/index.ts';
import type { ViewKey } from '../../sdk/index.ts';
import { DEFAULT_LOOKUP_MAX_AGE_MS } from '../../sdk/index.ts';
import { offsetsKey, parseState, preview, stringifyState, viewItemKey, viewKeyProblem, viewSegment, type ItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import { coordinates, type PoisonDeadLetter } from './dead-letter.ts';
import { errorInfo } from './errors.ts';
import { compareOffsets, itemId, unstorableReason, type ItemEvents, type ItemSnapshot, type RoutedEvent } from './fold.ts';

/** One record's change of one row: its value before and after (undefined: absent). */
interface RowStep {
  readonly record: SourceRecord;
  readonly old: unknown;
  readonly new: unknown;
}

/** Whether a row value would be stored by the table's fold (else it is poison there and changes nothing). */
function storable(table: View<any, any>, row: unknown): boolean {
  let json: string | undefined;
  try {
    json = stringifyState(row);
  } catch {
    return false;
  }
  return json !== undefined && Buffer.byteLength(json) <= table.maxStateBytes && unstorableReason(row) === undefined;
}

/**
 * The row changes of one table item's events, behind its offset fence: from the stored row,
 * each record replaces the value (a tombstone removes it). Records the row already applied are
 * skipped, exactly as the table's own fold skips them.
 */
export function rowSteps(table: View<any, any>, snapshot: ItemSnapshot, events: readonly RoutedEvent[]): RowStep[] {
  const seen: Record<string, string> = { ...snapshot.offsets };
  let current: unknown = snapshot.stateJson === undefined ? undefined : parseState(snapshot.stateJson);
  const steps: RowStep[] = [];
  for (const entry of events) {
    const partitionKey = offsetsKey(entry.record.topic, entry.record.partition);
    const stored = seen[partitionKey];
    if (stored !== undefined && compareOffsets(entry.record.offset, stored) <= 0) continue;
    seen[partitionKey] = entry.record.offset;
    let next: unknown;
    try {
      next = table.reduce(null, entry.event, entry.record);
    } catch {
      continue; // the table's fold dead-letters it
    }
    const value = typeof next === 'symbol' ? undefined : next;
    if (value !== undefined && !storable(table, value)) continue;
    if (value === undefined && current === undefined) continue;
    steps.push({ record: entry.record, old: current, new: value });
    current = value;
  }
  return steps;
}

/** The group events the row changes of a batch owe the views over their tables, and the poison among them. */
export interface DerivedEvents {
  readonly items: ItemEvents[];
  readonly deadLetters: PoisonDeadLetter[];
}

function groupOf(
  view: View<any, any>,
  change: { old: unknown; new: unknown },
  record: SourceRecord,
  letters: PoisonDeadLetter[],
): string | undefined {
  let counts: boolean;
  let key: ViewKey | undefined | null;
  try {
    counts = view.filter(change, record) === true;
    if (!counts) return undefined;
    key = view.key(change, record);
  } catch (error) {
    letters.push({
      kind: 'poison',
      code: 'KEY_FAILED',
      reason: `view "${view.name}": key() or filter() threw for a row of table "${view.over!.name}" at ${coordinates(record)}: ${errorInfo(error).message}; make them accept every row`,
      view: view.name,
      record,
      error: errorInfo(error),
    });
    return undefined;
  }
  if (viewKeyProblem(key) !== undefined) {
    letters.push({
      kind: 'poison',
      code: 'KEY_MISSING',
      reason: `view "${view.name}": key() returned ${preview(key)} for a row of table "${view.over!.name}" at ${coordinates(record)}; return a string, a bigint or a finite number for every row`,
      view: view.name,
      record,
    });
    return undefined;
  }
  return String(key);
}

/**
 * Derives, for every view over a table, the group events of the row changes: a row that stays
 * in its group gives that group one `{ old, new }`; one that moves gives its old group
 * `{ old, new: undefined }` and its new group `{ old: undefined, new }`. Events per group item in
 * offset order (one partition per batch).
 *
 * @example
 * const derived = deriveGroupEvents(app.views, tableItems, snapshots);
 */
export function deriveGroupEvents(
  views: readonly View<any, any>[],
  tableItems: readonly ItemEvents[],
  snapshots: ReadonlyMap<string, ItemSnapshot>,
): DerivedEvents {
  const letters: PoisonDeadLetter[] = [];
  const out = new Map<string, ItemEvents>();
  const add = (view: View<any, any>, key: string, record: SourceRecord, event: { old: unknown; new: unknown }): void => {
    // The version in the code: a bumped aggregation folds into its own segment (fold.ts writes it there).
    const itemKey = viewItemKey(viewSegment(view.name, view.version), key);
    const id = itemId(itemKey);
    let item = out.get(id);
    if (item === undefined) {
      item = { id, view, key, itemKey, events: [] };
      out.set(id, item);
    }
    item.events.push({ record, event });
  };
  for (const tableItem of tableItems) {
    const aggregations = views.filter((v) => v.over === tableItem.view);
    if (aggregations.length === 0) continue;
    const steps = rowSteps(tableItem.view, snapshots.get(tableItem.id)!, tableItem.events);
    for (const view of aggregations) {
      for (const step of steps) {
        const from = step.old === undefined ? undefined : groupOf(view, { old: step.old, new: undefined }, step.record, letters);
        const to = step.new === undefined ? undefined : groupOf(view, { old: undefined, new: step.new }, step.record, letters);
        if (from !== undefined && from === to) {
          add(view, from, step.record, { old: step.old, new: step.new });
          continue;
        }
        if (from !== undefined) add(view, from, step.record, { old: step.old, new: undefined });
        if (to !== undefined) add(view, to, step.record, { old: undefined, new: step.new });
      }
    }
  }
  for (const item of out.values()) {
    item.events.sort((a, b) => compareOffsets(a.record.offset, b.record.offset));
  }
  return { items: [...out.values()], deadLetters: letters };
}

/** Rows kept by the lookup cache of one engine task: a bound on its memory (invariant 6). */
export const LOOKUP_CACHE_MAX_ENTRIES = 10_000;

/**
 * The rows lookups read or this task wrote, with when: an LRU of at most `maxEntries` rows.
 * A row is served only while younger than its lookup's `maxAgeMs`; an absent row is kept too.
 */
export class LookupCache {
  private readonly rows = new Map<string, { json: string | undefined; atMs: number }>();
  constructor(private readonly maxEntries = LOOKUP_CACHE_MAX_ENTRIES) {}

  /** The row as JSON (undefined: no row) when cached at most `maxAgeMs` ago; else `'miss'`. */
  get(id: string, maxAgeMs: number, nowMs: number): { json: string | undefined } | 'miss' {
    const entry = this.rows.get(id);
    if (entry === undefined || nowMs - entry.atMs > maxAgeMs || maxAgeMs === 0) return 'miss';
    this.rows.delete(id);
    this.rows.set(id, entry);
    return { json: entry.json };
  }

  set(id: string, json: string | undefined, nowMs: number): void {
    this.rows.delete(id);
    this.rows.set(id, { json, atMs: nowMs });
    while (this.rows.size > this.maxEntries) this.rows.delete(this.rows.keys().next().value!);
  }

  get size(): number {
    return this.rows.size;
  }
}

/**
 * Enrichment lookups: the rows every event of `items` asks for (by each view's `lookup`), from
 * `cache` when a row there is young enough for every lookup asking for it (its `maxAgeMs`), the
 * others with `read` (one batched, consistent read of the distinct missing rows), attached to the
 * events as `rows` for `reduce`. A missing row (or a tombstone, or a key of undefined/null) is
 * undefined; a throwing or unusable key makes the event poison (`KEY_FAILED`), and it is not
 * folded. Rows read are cached.
 *
 * @example
 * const letters = await attachLookups(items, (keys) => store.readItems(keys), { rows: new LookupCache(), nowMs: Date.now() });
 */
export async function attachLookups(
  items: ItemEvents[],
  read: (keys: { id: string; key: ItemKey }[]) => Promise<Map<string, ViewItem>>,
  cache?: { readonly rows: LookupCache; readonly nowMs: number },
): Promise<{ deadLetters: PoisonDeadLetter[]; reads: number }> {
  const letters: PoisonDeadLetter[] = [];
  const wanted = new Map<string, { id: string; key: ItemKey }>();
  /** Per row, the least `maxAgeMs` of the lookups asking for it. */
  const maxAge = new Map<string, number>();
  const plans: { item: ItemEvents; index: number; ids: Record<string, string | undefined> }[] = [];
  for (const item of items) {
    const lookups = item.view.lookup;
    if (lookups === undefined) continue;
    const keep: RoutedEvent[] = [];
    for (const entry of item.events) {
      const ids: Record<string, string | undefined> = {};
      let poisoned = false;
      for (const [as, lookup] of Object.entries(lookups)) {
        let key: ViewKey | undefined | null;
        try {
          key = lookup.key(entry.event, entry.record);
        } catch (error) {
          letters.push({
            kind: 'poison',
            code: 'KEY_FAILED',
            reason: `view "${item.view.name}": lookup "${as}" key() threw for record at ${coordinates(entry.record)}: ${errorInfo(error).message}; make it return a key (or undefined) for every event`,
            view: item.view.name,
            record: entry.record,
            key: item.key,
            error: errorInfo(error),
          });
          poisoned = true;
          break;
        }
        if (key === undefined || key === null) {
          ids[as] = undefined;
          continue;
        }
        const problem = viewKeyProblem(key);
        if (problem !== undefined) {
          letters.push({
            kind: 'poison',
            code: 'KEY_FAILED',
            reason: `view "${item.view.name}": lookup "${as}" key() returned ${preview(key)} for record at ${coordinates(entry.record)}; return a string, a bigint, a finite number, or undefined for no row`,
            view: item.view.name,
            record: entry.record,
            key: item.key,
          });
          poisoned = true;
          break;
        }
        // The rows of the table's version in the code (a bumped table has its own segment).
        const itemKey = viewItemKey(viewSegment(lookup.table.name, lookup.table.version), String(key));
        const id = itemId(itemKey);
        wanted.set(id, { id, key: itemKey });
        const age = lookup.maxAgeMs ?? DEFAULT_LOOKUP_MAX_AGE_MS;
        maxAge.set(id, Math.min(age, maxAge.get(id) ?? age));
        ids[as] = id;
      }
      if (poisoned) continue;
      plans.push({ item, index: keep.length, ids });
      keep.push(entry);
    }
    item.events.splice(0, item.events.length, ...keep);
  }
  if (plans.length === 0) return { deadLetters: letters, reads: 0 };
  const json = new Map<string, string | undefined>();
  const misses: { id: string; key: ItemKey }[] = [];
  for (const want of wanted.values()) {
    const hit = cache?.rows.get(want.id, maxAge.get(want.id)!, cache.nowMs) ?? 'miss';
    if (hit === 'miss') misses.push(want);
    else json.set(want.id, hit.json);
  }
  const found = misses.length > 0 ? await read(misses) : new Map<string, ViewItem>();
  for (const { id } of misses) {
    const state = found.get(id)?.state;
    const rowJson = state === undefined ? undefined : JSON.stringify(state);
    json.set(id, rowJson);
    cache?.rows.set(id, rowJson, cache.nowMs);
  }
  const rowOf = (id: string | undefined): unknown => {
    if (id === undefined) return undefined;
    const rowJson = json.get(id);
    return rowJson === undefined ? undefined : parseState(rowJson);
  };
  for (const { item, index, ids } of plans) {
    const rows: Record<string, unknown> = {};
    for (const [as, id] of Object.entries(ids)) rows[as] = rowOf(id);
    item.events[index] = { ...item.events[index]!, rows: Object.freeze(rows) };
  }
  return { deadLetters: letters, reads: misses.length };
}
