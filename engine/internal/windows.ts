/**
 * Event time, window assignment and stream time (docs/architecture.md, "Windows"). Pure: the
 * routing step (`fold.ts`) asks which windows an event lands in and whether they have closed;
 * the processor keeps one {@link StreamClock} state per source partition and stores it on the
 * partition's checkpoint, so a restart decides every event exactly as before.
 *
 * - Windows are aligned to the epoch, `[start, end)` in epoch milliseconds.
 * - Stream time, per source partition and view, is the largest event time read so far.
 * - A window closes when stream time passes `end + graceMs` (is strictly greater); an event for
 *   a closed window is late.
 */
import type { SourceRecord, View, WindowBounds, WindowDefinition } from '../../sdk/index.ts';
import { preview, viewSegment } from '../../sdk/contract/index.ts';
import { errorInfo } from './errors.ts';

/**
 * Largest event time a window can start at: the table's sort keys hold window starts as 15
 * decimal digits (about the year 33658).
 */
export const MAX_EVENT_TIME_MS = 999_999_999_999_999;

/** The event time of one event, or why it cannot be read (a poison record). */
export type EventTimeResult =
  | { readonly ok: true; readonly timeMs: number }
  | { readonly ok: false; readonly code: 'TIMESTAMP_FAILED' | 'TIMESTAMP_INVALID'; readonly reason: string; readonly error?: unknown };

/**
 * The event time of `event` for a windowed view: its `timestamp(event, record)`, or the record
 * timestamp. Anything but an integer from 0 to {@link MAX_EVENT_TIME_MS} is refused, never
 * rounded or clamped.
 *
 * @example
 * const time = eventTimeOf(view, event, record);
 * if (!time.ok) deadLetter(time.code, time.reason);
 */
export function eventTimeOf(view: View<any, any>, event: unknown, record: SourceRecord): EventTimeResult {
  const extract = view.window?.timestamp;
  let value: unknown;
  if (extract === undefined) {
    value = record.timestampMs;
  } else {
    try {
      value = extract(event, record);
    } catch (error) {
      return {
        ok: false,
        code: 'TIMESTAMP_FAILED',
        reason: `view "${view.name}": timestamp() threw: ${errorInfo(error).message}; make timestamp() return the event's time in epoch milliseconds for every event`,
        error,
      };
    }
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_EVENT_TIME_MS) {
    const source = extract === undefined ? 'the record timestamp' : 'timestamp()';
    return {
      ok: false,
      code: 'TIMESTAMP_INVALID',
      reason: `view "${view.name}": ${source} gave ${preview(value)}, not an event time (an integer number of epoch milliseconds from 0 to ${MAX_EVENT_TIME_MS}); ${extract === undefined ? 'produce records with their event time as timestamp, or give the view a timestamp()' : 'return e.g. Date.parse(event.at), and filter out events without a time'}`,
    };
  }
  return { ok: true, timeMs: value };
}

/**
 * The windows of a tumbling or hopping view that contain `timeMs`, earliest first; for a session
 * view, the event's own session `[timeMs, timeMs + gapMs)` before any merge. Windows that would
 * start before the epoch are left out (their start cannot be stored).
 *
 * @example
 * windowsOf(hopping({ sizeMs: 10, advanceMs: 5 }) compiled, 12); // [{ start: 5, end: 15 }, { start: 10, end: 20 }]
 */
export function windowsOf(window: WindowDefinition, timeMs: number): WindowBounds[] {
  if (window.kind === 'session') return [{ start: timeMs, end: timeMs + window.gapMs }];
  const size = window.sizeMs;
  const advance = window.kind === 'hopping' ? window.advanceMs : size;
  const out: WindowBounds[] = [];
  const last = Math.floor(timeMs / advance) * advance;
  for (let start = last - size + advance; start <= last; start += advance) {
    if (start >= 0) out.push({ start, end: start + size });
  }
  return out;
}

/** Stream time past which the window is closed: its end plus the view's grace. */
export function closeTimeOf(window: WindowDefinition, bounds: WindowBounds): number {
  return bounds.end + window.graceMs;
}

/** Whether a window has closed at `streamTimeMs`: stream time is past its end plus grace. */
export function isClosed(window: WindowDefinition, bounds: WindowBounds, streamTimeMs: number | undefined): boolean {
  return streamTimeMs !== undefined && streamTimeMs > closeTimeOf(window, bounds);
}

/** Expiry of a window's item (DynamoDB TTL, epoch seconds): its end plus retention. */
export function windowTtlSeconds(window: WindowDefinition, bounds: WindowBounds): number {
  return Math.ceil((bounds.end + window.retentionMs) / 1000);
}

/**
 * The name a view version's stream time is kept under (on checkpoints, in a {@link StreamClock}):
 * its segment, the view name for version 1 (so the stream time stored before versions existed
 * stays where it is) and `<view>@<version>` from version 2. Each version has its own: a build
 * advances its version's while live folding advances the live one's (build.ts).
 *
 * @example
 * streamTimeKey(perDay); // "perDay", or "perDay@2" for version 2
 */
export function streamTimeKey(view: Pick<View<any, any>, 'name' | 'version'>): string {
  return viewSegment(view.name, view.version);
}

/**
 * What is known of one source partition's stream time: per windowed view, the largest event
 * time read (absent until the view's first event), and the offset through which every record
 * was decided durably (applied, dead-lettered or dropped); a record at or below it is read
 * again only after a crash or rebalance and is already settled.
 */
export interface PartitionStreamTime {
  /** Last offset decided; -1 when none. */
  readonly decidedThrough: bigint;
  /** Stream-time key ({@link streamTimeKey}) -> stream time in epoch ms. */
  readonly times: Readonly<Record<string, number>>;
  /**
   * Per stream-time key, a last decided offset above {@link decidedThrough}: records up to it
   * were decided for that view version by its build (build.ts), whose stream time the view took.
   */
  readonly viewDecided?: Readonly<Record<string, bigint>>;
}

/** The stream time of a partition nothing is known of. */
export const NO_STREAM_TIME: PartitionStreamTime = Object.freeze({ decidedThrough: -1n, times: Object.freeze({}) });

/**
 * The working copy of one partition's stream time during a batch: records are observed in
 * partition order; {@link state} is what the batch leaves once it is durable.
 *
 * @example
 * const clock = new StreamClock(known);
 * if (!clock.decided(record.offset)) { const now = clock.observe('perDay', timeMs); ... }
 * clock.pass(record.offset);
 */
export class StreamClock {
  private decidedThrough: bigint;
  private readonly times: Record<string, number>;
  private readonly viewDecided: Record<string, bigint>;

  constructor(state: PartitionStreamTime = NO_STREAM_TIME) {
    this.decidedThrough = state.decidedThrough;
    this.times = { ...state.times };
    this.viewDecided = { ...state.viewDecided };
  }

  /**
   * Whether the record at `offset` was decided before (durably), for every view or, with `view`
   * (a stream-time key), for that one by its build: it must not be judged again.
   */
  decided(offset: string, view?: string): boolean {
    const position = BigInt(offset);
    if (position <= this.decidedThrough) return true;
    const own = view === undefined ? undefined : this.viewDecided[view];
    return own !== undefined && position <= own;
  }

  /**
   * Takes a build's stream time for `view` (a stream-time key): the build decided every record
   * of the partition through `decidedThrough` with stream time `timeMs` after them. The caller
   * makes sure the build got at least as far as this clock (build.ts, `BuildGate`).
   */
  adopt(view: string, decidedThrough: bigint, timeMs: number | undefined): void {
    if (timeMs !== undefined) this.advance(view, timeMs);
    if (decidedThrough > this.decidedThrough && !(this.viewDecided[view]! >= decidedThrough)) this.viewDecided[view] = decidedThrough;
  }

  /** Reads an event time for `view`: stream time becomes the largest seen. Returns it. */
  observe(view: string, timeMs: number): number {
    const now = this.times[view];
    if (now === undefined || timeMs > now) this.times[view] = timeMs;
    return this.times[view]!;
  }

  /** The stream time of `view`, undefined before its first event. */
  time(view: string): number | undefined {
    return this.times[view];
  }

  /** Raises `view`'s stream time to at least `timeMs` (idle close); returns whether it moved. */
  advance(view: string, timeMs: number): boolean {
    const now = this.times[view];
    if (now !== undefined && now >= timeMs) return false;
    this.times[view] = timeMs;
    return true;
  }

  /** The record at `offset` is read: everything through it is decided once the batch is durable. */
  pass(offset: string): void {
    const position = BigInt(offset);
    if (position > this.decidedThrough) this.decidedThrough = position;
  }

  /** What the batch leaves. */
  state(): PartitionStreamTime {
    const viewDecided = Object.entries(this.viewDecided).filter(([, through]) => through > this.decidedThrough);
    return { decidedThrough: this.decidedThrough, times: { ...this.times }, ...(viewDecided.length > 0 ? { viewDecided: Object.fromEntries(viewDecided) } : {}) };
  }
}

/**
 * The stream time that closes windows of a view for final results: the least over every
 * partition of its source. Any partition may write any item of a view keyed unlike its Kafka
 * key, so a window is final only once no partition can still apply an event to it: each
 * partition judges its own events late past its own stream time, and that stream time only
 * grows. Undefined (nothing closes) while any partition's stream time is unknown.
 *
 * @example
 * const closing = closingStreamTime([100, 250, 90]); // 90
 */
export function closingStreamTime(perPartition: readonly (number | undefined)[]): number | undefined {
  if (perPartition.length === 0) return undefined;
  let least = Number.POSITIVE_INFINITY;
  for (const time of perPartition) {
    if (time === undefined) return undefined;
    if (time < least) least = time;
  }
  return least;
}

/**
 * The closing-index shard of a window item awaiting its final result: the view and the source
 * partition whose record created the item. The task that owns that partition delivers the
 * item's final change; the shard never changes for an item.
 *
 * @example
 * closeShardOf('bookingsPerDay', 'bookings', 3); // "bookingsPerDay#bookings/3"
 */
export function closeShardOf(view: string, topic: string, partition: number): string {
  return `${view}#${topic}/${partition}`;
}

/**
 * The stream time advances a quiet partition is owed (views with `idleCloseMs`): when no record
 * of it was read for `idleCloseMs` of wall clock, its stream time becomes at least the wall
 * clock minus `idleCloseMs`. Trades exactness for liveness: an event that arrives after such an
 * advance with an older time is late.
 *
 * @example
 * for (const { view, timeMs } of idleAdvances(app.views, 'bookings', lastReadMs, Date.now())) ...
 * // `view` is the stream-time key (see streamTimeKey)
 */
export function idleAdvances(
  views: readonly View<any, any>[],
  topic: string,
  lastReadWallMs: number,
  nowWallMs: number,
): { view: string; timeMs: number }[] {
  const out: { view: string; timeMs: number }[] = [];
  for (const view of views) {
    const idleMs = view.window?.idleCloseMs;
    if (view.source !== topic || idleMs === undefined) continue;
    if (nowWallMs - lastReadWallMs >= idleMs) out.push({ view: streamTimeKey(view), timeMs: nowWallMs - idleMs });
  }
  return out;
}
