/**
 * The views part of `tributary dev`'s live summary: per view, a few of its most recently
 * changed items in human form, and for a windowed view its newest windows as
 * `key [start–end UTC) open|closed vN state`. A bounded number of lines per view, each cut to
 * the terminal's width. Views are read through the SDK's reads; which windows to look at comes
 * from the stream time in the engine's checkpoints and from the keys the seed just produced.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isTributaryError, type App, type SourceRecord, type View, type ViewReader, type ViewSnapshot, type WindowSnapshot } from '../../sdk/index.ts';
import { compactState, describeWindowing, formatUtc, readStreamTimes, windowLine, windowStatus, type StreamTimes, type WindowStatus } from './windows.ts';

/** Items shown per view: enough to see the data move, few enough not to flood the terminal. */
export const ITEMS_PER_VIEW = 3;
/** Keys of an unwindowed view read per summary, to pick the latest changed (one query page). */
const KEYS_READ = 1_000;
/** Recently produced keys remembered per view, for the windowed views' newest windows. */
const RECENT_KEYS = 12;

/** What the summary shows of one view, as read. */
export type ViewSummary =
  | { readonly view: View<any, any>; readonly kind: 'keys'; readonly keys: number; readonly more: boolean; readonly items: readonly ViewSnapshot<unknown>[] }
  | {
      readonly view: View<any, any>;
      readonly kind: 'windows';
      /** Latest stream time of the view over its source partitions; undefined before the first checkpoint. */
      readonly streamTime: number | undefined;
      readonly windows: readonly (WindowSnapshot<unknown> & { readonly status: WindowStatus })[];
    };

/** Cuts a line to `width` columns. */
function fit(line: string, width: number): string {
  return line.length <= width ? line : `${line.slice(0, width - 1)}…`;
}

/** The newest first: by the item's last write, then the window's start. */
function newestFirst(a: ViewSnapshot<unknown> & { window?: { start: number } }, b: ViewSnapshot<unknown> & { window?: { start: number } }): number {
  return b.updatedAt.localeCompare(a.updatedAt) || (b.window?.start ?? 0) - (a.window?.start ?? 0);
}

/** The lines of one view: a header, then at most {@link ITEMS_PER_VIEW} items, none wider than `width`. */
export function viewSummaryLines(summary: ViewSummary, width: number): string[] {
  const name = `  ${summary.view.name}`;
  if (summary.kind === 'keys') {
    const header = `${name}  ${summary.keys}${summary.more ? '+' : ''} key${summary.keys === 1 && !summary.more ? '' : 's'}${summary.items.length > 0 ? ', latest changed:' : ''}`;
    return [header, ...summary.items.slice(0, ITEMS_PER_VIEW).map((item) => fit(`    ${item.key}  v${item.version}  ${compactState(item.state, width)}`, width))].map((line) => fit(line, width));
  }
  const time = summary.streamTime === undefined ? 'no stream time yet' : `stream time ${formatUtc(summary.streamTime, 19)} UTC`;
  const header = `${name}  ${describeWindowing(summary.view.window!)} · ${time}${summary.windows.length > 0 ? '' : ' · no windows yet'}`;
  return [header, ...summary.windows.slice(0, ITEMS_PER_VIEW).map((item) => `    ${windowLine(item, item.status, { withKey: true, stateChars: width, compact: true })}`)].map((line) => fit(line, width));
}

/** Remembers the keys the seed produced per view, newest first, to find windowed views' newest windows. */
export class RecentKeys {
  private readonly keys = new Map<string, string[]>();

  /** `app`: the app now running (the engine restarts with a new one when a file changes). */
  constructor(private readonly app: () => App) {}

  /** Notes the view keys of one produced value (a view that cannot decode or key it is skipped). */
  note(topic: string, value: Buffer, key: Buffer | null): void {
    const record: SourceRecord = { topic, partition: 0, offset: '0', key, value, timestampMs: Date.now(), headers: {} };
    for (const view of this.app().views) {
      if (view.source !== topic || view.window === undefined) continue;
      try {
        const event = view.decode(value, record);
        if (!view.filter(event, record)) continue;
        const viewKey = view.key(event, record);
        if (viewKey === undefined || viewKey === null) continue;
        const list = (this.keys.get(view.name) ?? []).filter((k) => k !== String(viewKey));
        list.unshift(String(viewKey));
        this.keys.set(view.name, list.slice(0, RECENT_KEYS));
      } catch {
        // Poison for this view: the engine reports it; the summary has nothing to show of it.
      }
    }
  }

  of(view: View<any, any>): readonly string[] {
    return this.keys.get(view.name) ?? [];
  }
}

/** Where the summary reads from. */
export interface SummaryReads {
  readonly reader: ViewReader;
  readonly client: DynamoDBDocumentClient;
  readonly table: string;
  /** Partitions of each source topic (`topic` -> partition numbers). */
  readonly partitions: (topic: string) => readonly number[];
  readonly recent: RecentKeys;
}

/** Start of the newest tumbling or hopping window holding `time`. */
function newestStart(window: NonNullable<View['window']>, time: number): number | undefined {
  if (window.kind === 'session') return undefined;
  const step = window.kind === 'hopping' ? window.advanceMs : window.sizeMs;
  return Math.floor(time / step) * step;
}

/** Reads one view's summary: its latest changed keys, or its newest windows. */
export async function readViewSummary(view: View<any, any>, reads: SummaryReads): Promise<ViewSummary> {
  if (view.window === undefined) {
    const page = await reads.reader.query(view, undefined, { limit: KEYS_READ });
    return { view, kind: 'keys', keys: page.items.length, more: page.cursor !== undefined, items: [...page.items].sort(newestFirst).slice(0, ITEMS_PER_VIEW) };
  }
  const window = view.window;
  const streamTimes: StreamTimes = await readStreamTimes(reads.client, reads.table, view, reads.partitions(view.source));
  const streamTime = streamTimes.size > 0 ? Math.max(...streamTimes.values()) : undefined;
  const found = new Map<string, WindowSnapshot<unknown>>();
  const add = (item: WindowSnapshot<unknown> | undefined) => {
    if (item) found.set(`${item.window.start}#${item.key}`, item);
  };
  // Windows a past read or the retention already dropped are simply not shown.
  const tolerant = async <T>(read: Promise<T>): Promise<T | undefined> => read.catch((error: unknown) => {
    if (isTributaryError(error, 'sdk', 'WINDOW_EXPIRED')) return undefined;
    throw error;
  });
  const start = streamTime === undefined ? undefined : newestStart(window, streamTime);
  const step = window.kind === 'hopping' ? window.advanceMs : window.kind === 'tumbling' ? window.sizeMs : 0;
  await Promise.all([
    // Every key's newest aligned windows (the current one and the one before, which may just have closed).
    ...(start === undefined ? [] : [start, start - step].filter((s) => s >= 0).map(async (s) => {
      const page = await tolerant(reads.reader.windowsAt(view, s, { limit: KEYS_READ }));
      for (const item of page?.items ?? []) add(item);
    })),
    // The newest window of each key the seed just produced (sessions start anywhere).
    ...reads.recent.of(view).map(async (key) => add(await tolerant(reads.reader.latestWindow(view, key)))),
  ]);
  const windows = [...found.values()].sort(newestFirst).slice(0, ITEMS_PER_VIEW).map((item) => ({ ...item, status: windowStatus(view, item, streamTimes) }));
  return { view, kind: 'windows', streamTime, windows };
}

/** Every view's lines, in the app's order. */
export async function readViewsSummary(app: App, reads: SummaryReads, width: number): Promise<string[]> {
  const summaries = await Promise.all(app.views.map((view) => readViewSummary(view, reads)));
  return summaries.flatMap((summary) => viewSummaryLines(summary, width));
}
