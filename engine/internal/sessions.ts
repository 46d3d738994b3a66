/**
 * Session windows (docs/architecture.md, "Windows"): per key, events closer than `gapMs` form
 * one session `[first event, last event + gapMs)`. Pure: given the key's stored sessions that
 * the batch's events could touch and those events, {@link planSessions} decides which sessions
 * they form, which stored ones merge (through the view's `merge(a, b)`), and which events are
 * late (they would change a closed session). The processor writes the plan atomically: the
 * merged session's put and the absorbed sessions' deletes in one transaction, so a crash never
 * leaves both.
 */
import type { View, WindowBounds } from '../../sdk/index.ts';
import { offsetsKey, parseState, stringifyState, viewItemKey, viewSegment, type ItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import { compareOffsets, snapshotOf, type ItemSnapshot, type RoutedEvent } from './fold.ts';


/** A stored session of the key, as read. */
export interface StoredSession {
  readonly item: ViewItem;
  readonly bounds: WindowBounds;
}

/** One session the batch writes. */
export interface SessionPlan {
  /** The session's bounds after the batch. */
  readonly bounds: WindowBounds;
  readonly itemKey: ItemKey;
  /**
   * What the fold starts from: the stored session at the same start (its version is the write's
   * condition), with the state and offsets of every session merged into it.
   */
  readonly snapshot: ItemSnapshot;
  /** The events that land in it, in partition order. */
  readonly events: RoutedEvent[];
  /** Stored sessions merged into it under another start: deleted with the write. */
  readonly absorbed: readonly StoredSession[];
}

/** What {@link planSessions} decided for one key's events. */
export interface SessionsPlan {
  readonly sessions: SessionPlan[];
  /** Events that would change a closed session: late, not applied. */
  readonly late: { readonly event: RoutedEvent; readonly closed: WindowBounds }[];
  /** Events at or below the key's applied offset of their partition (already applied). */
  readonly skipped: number;
  /** A `merge()` that threw or returned undefined: the batch cannot be folded. */
  readonly mergeError?: { readonly error: unknown; readonly sessions: readonly WindowBounds[] };
}

/** The range of stored sessions the events could touch: start below `startBelow`, end above `endAbove`. */
export function sessionReadRange(view: View<any, any>, events: readonly RoutedEvent[]): { startBelow: number; endAbove: number } {
  const gap = (view.window as { gapMs: number }).gapMs;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const { timeMs } of events) {
    min = Math.min(min, timeMs!);
    max = Math.max(max, timeMs!);
  }
  return { startBelow: max + gap, endAbove: min };
}

interface Interval {
  start: number;
  end: number;
  stored: StoredSession[];
  events: RoutedEvent[];
}

/**
 * Plans a batch of one session key: each fresh event joins (and bridges) the sessions its own
 * session `[t, t + gapMs)` overlaps, unless one of them has closed at the event's stream time
 * (then it is late). A session's state is the `merge` of the stored sessions it absorbs, in
 * start order, then its new events folded in partition order; `merge` and `reduce` should not
 * depend on the order of merging (counts, sums, sets, min/max), as in any session aggregation.
 *
 * @example
 * const plan = planSessions(view, key, stored, events, (e) => streamTimeAt(e));
 */
export function planSessions(
  view: View<any, any>,
  key: string,
  stored: readonly StoredSession[],
  events: readonly RoutedEvent[],
  streamTimeOf: (event: RoutedEvent) => number,
): SessionsPlan {
  const window = view.window!;
  const gap = (window as { gapMs: number }).gapMs;
  // The key's fence: every event of a partition up to the highest offset applied to any of its
  // sessions was decided already (events of a key are applied in partition order).
  const applied = new Map<string, string>();
  for (const { item } of stored) {
    for (const [partition, offset] of Object.entries(item.offsets)) {
      const known = applied.get(partition);
      if (known === undefined || compareOffsets(offset, known) > 0) applied.set(partition, offset);
    }
  }
  let skipped = 0;
  const intervals: Interval[] = stored.map((s) => ({ start: s.bounds.start, end: s.bounds.end, stored: [s], events: [] }));
  const late: { event: RoutedEvent; closed: WindowBounds }[] = [];
  for (const event of events) {
    const done = applied.get(offsetsKey(event.record.topic, event.record.partition));
    if (done !== undefined && compareOffsets(event.record.offset, done) <= 0) {
      skipped += 1;
      continue;
    }
    const t = event.timeMs!;
    const own = { start: t, end: t + gap };
    const touching = intervals.filter((i) => i.start < own.end && i.end > own.start);
    const streamTime = streamTimeOf(event);
    const closed = touching.find((i) => streamTime > i.end + window.graceMs);
    if (closed !== undefined) {
      late.push({ event, closed: { start: closed.start, end: closed.end } });
      continue;
    }
    const merged: Interval = {
      start: Math.min(own.start, ...touching.map((i) => i.start)),
      end: Math.max(own.end, ...touching.map((i) => i.end)),
      stored: touching.flatMap((i) => i.stored),
      events: [...touching.flatMap((i) => i.events), event],
    };
    for (const i of touching) intervals.splice(intervals.indexOf(i), 1);
    intervals.push(merged);
  }
  const sessions: SessionPlan[] = [];
  for (const interval of intervals) {
    if (interval.events.length === 0) continue;
    // Events in partition order again (merging may have joined them out of order).
    interval.events.sort((a, b) => compareOffsets(a.record.offset, b.record.offset));
    const members = [...interval.stored].sort((a, b) => a.bounds.start - b.bounds.start);
    const base = members.find((m) => m.bounds.start === interval.start);
    const absorbed = members.filter((m) => m !== base);
    let snapshot: ItemSnapshot = base !== undefined ? snapshotOf(base.item) : { version: 0, stateJson: undefined, offsets: {} };
    if (absorbed.length > 0) {
      let state: unknown;
      try {
        state = members.map((m) => parseState(JSON.stringify(m.item.state))).reduce((a, b) => {
          const next = view.merge!(a, b);
          if (next === undefined) throw new Error('merge() returned undefined');
          return next;
        });
      } catch (error) {
        return { sessions: [], late, skipped, mergeError: { error, sessions: members.map((m) => m.bounds) } };
      }
      const offsets: Record<string, string> = {};
      for (const m of members) {
        for (const [partition, offset] of Object.entries(m.item.offsets)) {
          if (offsets[partition] === undefined || compareOffsets(offset, offsets[partition]!) > 0) offsets[partition] = offset;
        }
      }
      snapshot = { ...snapshot, stateJson: stringifyState(state), offsets };
    }
    sessions.push({
      bounds: { start: interval.start, end: interval.end },
      itemKey: viewItemKey(viewSegment(view.name, view.version), key, interval.start),
      snapshot: { ...snapshot, window: { start: interval.start, end: interval.end } },
      events: interval.events,
      absorbed,
    });
  }
  return { sessions, late, skipped };
}
