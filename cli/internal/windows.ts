/**
 * How the CLI shows windowed views: a window as `[start–end)` in readable UTC, whether it is
 * still open or closed (stream time passed `end + graceMs`), and the reads behind
 * `tributary views windows|window|latest`. Views are read through the SDK's reads; whether a
 * window is closed comes from the stream time the engine stores in its checkpoints.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { createViewReader, isTributaryError, type App, type View, type WindowSnapshot } from '../../sdk/index.ts';
import { checkpointKey, DOCUMENT_CLIENT_OPTIONS, viewRegistryKey, viewSegment } from '../../sdk/contract/index.ts';
import { CliError } from './errors.ts';
import { findView, firstLine, toJson } from './project.ts';

type WindowOf = NonNullable<View['window']>;

/** Longest state shown on one line of the human form; `--json` shows all. */
const STATE_PREVIEW_CHARS = 120;

const UNITS: readonly [number, string][] = [
  [86_400_000, 'd'],
  [3_600_000, 'h'],
  [60_000, 'min'],
  [1_000, 's'],
];

/** A duration the way people say it: `1 d`, `2 h`, `10 min`, `90 s`, `250 ms`. */
export function formatDuration(ms: number): string {
  for (const [size, unit] of UNITS) if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}

/** How a view's window reads, e.g. `tumbling 1 d, grace 1 h, emit final`. */
export function describeWindowing(window: WindowOf): string {
  const shape = window.kind === 'session'
    ? `session gap ${formatDuration(window.gapMs)}`
    : window.kind === 'hopping'
      ? `hopping ${formatDuration(window.sizeMs)} every ${formatDuration(window.advanceMs)}`
      : `tumbling ${formatDuration(window.sizeMs)}`;
  return `${shape}, grace ${formatDuration(window.graceMs)}, emit ${window.emit}`;
}

/** Digits of a time needed to show `ms` exactly: minutes, seconds or milliseconds. */
function precisionOf(ms: number): 16 | 19 | 23 {
  if (ms % 60_000 === 0) return 16;
  return ms % 1_000 === 0 ? 19 : 23;
}

/** A time in UTC, `2026-12-01 23:05` (seconds and milliseconds only when it has them). */
export function formatUtc(ms: number, precision: 16 | 19 | 23 = precisionOf(ms)): string {
  return new Date(ms).toISOString().slice(0, precision).replace('T', ' ');
}

/**
 * A window as `[2026-12-01 00:00–2026-12-02 00:00 UTC)`; an end on the start's day omits the
 * date. Bounds show seconds or milliseconds when they have them, up to `maxPrecision` (19 =
 * seconds: the dev summary's compact form; the exact start is what `views window` takes).
 */
export function formatWindow(bounds: { readonly start: number; readonly end: number }, maxPrecision: 16 | 19 | 23 = 23): string {
  const precision = Math.min(maxPrecision, Math.max(precisionOf(bounds.start), precisionOf(bounds.end))) as 16 | 19 | 23;
  const start = formatUtc(bounds.start, precision);
  const end = formatUtc(bounds.end, precision);
  return `[${start}–${end.slice(0, 10) === start.slice(0, 10) ? end.slice(11) : end} UTC)`;
}

/** `open` until stream time passes the window's `end + graceMs`; then `closed` (a final view delivers it). */
export type WindowStatus = 'open' | 'closed';

/** Stream time of a view per source partition (`topic/partition` -> epoch ms), from the checkpoints. */
export type StreamTimes = ReadonlyMap<string, number>;

/**
 * Whether a window is closed: the stream time of the partitions its events came from (its
 * `offsets`) is past `end + graceMs`, as the engine decides it. No stream time yet = open.
 */
export function windowStatus(view: View<any, any>, item: WindowSnapshot<unknown>, streamTimes: StreamTimes): WindowStatus {
  const graceMs = view.window?.graceMs ?? 0;
  const times = Object.keys(item.offsets).map((partition) => streamTimes.get(partition)).filter((t): t is number => t !== undefined);
  return times.length > 0 && Math.max(...times) > item.window.end + graceMs ? 'closed' : 'open';
}

/** A state on one line, cut at `max` characters. */
export function compactState(state: unknown, max = STATE_PREVIEW_CHARS): string {
  const json = toJson(state);
  return json.length <= max ? json : `${json.slice(0, max - 1)}…`;
}

/** One window on one line: `[start–end UTC)  open    v3  {"booked":2}`, led by the key when asked. */
export function windowLine(item: WindowSnapshot<unknown>, status: WindowStatus, options: { readonly withKey?: boolean; readonly stateChars?: number; readonly compact?: boolean } = {}): string {
  return `${options.withKey ? `${item.key} ` : ''}${formatWindow(item.window, options.compact ? 19 : 23)}  ${status.padEnd(6)}  v${item.version}  ${compactState(item.state, options.stateChars)}`;
}

/**
 * Reads the stream time of `view` in each partition of its source (those the checkpoints know),
 * for the version its alias names: that is the version reads show, and each version keeps its
 * own stream time (`<view>@<version>` from version 2; docs/architecture.md "Windows").
 */
export async function readStreamTimes(client: DynamoDBDocumentClient, table: string, view: View<any, any>, partitions: Iterable<number>): Promise<Map<string, number>> {
  const registry = await client.send(new GetCommand({ TableName: table, Key: viewRegistryKey(view.name), ProjectionExpression: 'live', ConsistentRead: true }));
  const live = typeof registry.Item?.live === 'number' ? registry.Item.live : 1;
  const key = viewSegment(view.name, live);
  const times = new Map<string, number>();
  await Promise.all([...new Set(partitions)].map(async (partition) => {
    const out = await client.send(new GetCommand({ TableName: table, Key: checkpointKey(view.source, partition), ProjectionExpression: 'streamTime' }));
    const time = (out.Item?.streamTime as Record<string, unknown> | undefined)?.[key];
    if (typeof time === 'number') times.set(`${view.source}/${partition}`, time);
  }));
  return times;
}

/** The partitions named in the windows' `offsets`: those whose stream time decides them. */
export function partitionsOf(view: View<any, any>, items: readonly WindowSnapshot<unknown>[]): number[] {
  const prefix = `${view.source}/`;
  return [...new Set(items.flatMap((item) => Object.keys(item.offsets).filter((p) => p.startsWith(prefix)).map((p) => Number(p.slice(prefix.length)))))];
}

/** `--from` / `--to` / `<start>`: epoch ms or an ISO-8601 time (`2026-12-01`, `2026-12-01T10:00Z`). */
export function parseTime(name: string, raw: string): number {
  // A date and time without a zone is UTC here, as the CLI prints (JavaScript would take local time).
  const iso = raw.trim().replace(/^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d(:\d\d(\.\d+)?)?)$/, '$1T$2Z');
  const ms = /^\d+$/.test(iso) ? Number(iso) : Date.parse(iso);
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new CliError('USAGE', `views: ${name} ${JSON.stringify(raw)} is not a time; give epoch milliseconds or an ISO-8601 time, e.g. 2026-12-01 or 2026-12-01T10:00:00Z (UTC unless it names a zone)`);
  }
  return ms;
}

function windowedView(app: App, viewName: string, command: string): View<any, any> {
  const view = findView(app, viewName);
  if (view.window === undefined) {
    throw new CliError('USAGE', `views ${command}: view "${view.name}" has no window; read it with \`tributary views get ${view.name} <key>\` or \`tributary views query ${view.name}\``);
  }
  return view;
}

/**
 * `views get|query` on a windowed view: the commands that fit (a key has one item per window).
 * Undefined for a view without a window.
 */
export function windowedReadHint(view: View<any, any>, command: 'get' | 'query'): CliError | undefined {
  if (view.window === undefined) return undefined;
  return new CliError(
    'USAGE',
    `views ${command}: view "${view.name}" has windows (${describeWindowing(view.window)}), one item per key and window; use \`tributary views latest ${view.name} <key>\` for a key's newest window, \`tributary views windows ${view.name} <key> [--from t] [--to t]\` for its windows in time order, or \`tributary views window ${view.name} <key> <start>\` for one`,
  );
}

async function readWith<T>(table: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    // The SDK's own refusals (a window past retention, a bad argument) say what to do already.
    if (isTributaryError(error, 'sdk', 'WINDOW_EXPIRED', 'INVALID_ARGUMENT')) throw error;
    throw new CliError('NOT_CONFIGURED', `cannot read table "${table}": ${firstLine(error)}; is \`tributary dev\` running in this folder (or AWS_ENDPOINT_URL_DYNAMODB / TRIBUTARY_TABLE set)?`, { cause: error });
  }
}

/** What `views windows|window|latest` asks for. */
export type WindowRead =
  | { readonly action: 'windows'; readonly from?: number; readonly to?: number; readonly limit?: number }
  | { readonly action: 'window'; readonly start: number }
  | { readonly action: 'latest' };

/** `views windows|window|latest <view> <key> …`: the lines to print. */
export async function viewWindows(app: App, table: string, viewName: string, key: string, read: WindowRead, json: boolean): Promise<string[]> {
  const view = windowedView(app, viewName, read.action);
  const dynamodb = new DynamoDBClient({});
  const reader = createViewReader({ tableName: table, dynamodb });
  const items: WindowSnapshot<unknown>[] = [];
  let retention: { retentionMs: number; expiredBefore: number } | undefined;
  if (read.action === 'windows') {
    let cursor: string | undefined;
    do {
      const page = await readWith(table, () => reader.windows(view, key, { ...(read.from === undefined ? {} : { from: read.from }), ...(read.to === undefined ? {} : { to: read.to }), ...(cursor ? { cursor } : {}), limit: 1_000 }));
      items.push(...page.items);
      // Without --from the read starts at 0, always before retention: nothing to say then.
      if (read.from !== undefined) retention ??= page.retention;
      cursor = page.cursor;
    } while (cursor !== undefined && (read.limit === undefined || items.length < read.limit));
  } else {
    const item = await readWith(table, () => (read.action === 'window' ? reader.window(view, key, read.start) : reader.latestWindow(view, key)));
    if (item) items.push(item);
  }
  const shown = read.action === 'windows' && read.limit !== undefined ? items.slice(0, read.limit) : items;
  const client = DynamoDBDocumentClient.from(dynamodb, DOCUMENT_CLIENT_OPTIONS);
  const streamTimes = await readWith(table, () => readStreamTimes(client, table, view, partitionsOf(view, shown)));
  const withStatus = shown.map((item) => ({ ...item, status: windowStatus(view, item, streamTimes) }));
  if (json) return [toJson(read.action === 'windows' ? withStatus : (withStatus[0] ?? null), 2)];
  const header = `${view.name}[${key}]  ${describeWindowing(view.window!)}`;
  if (shown.length === 0) {
    const which = read.action === 'window' ? `no window starting ${formatUtc(read.start)} UTC` : read.action === 'latest' ? 'no window yet' : `no windows${read.from === undefined && read.to === undefined ? '' : ' in that range'}`;
    if (read.action !== 'windows') throw new CliError('NOT_FOUND', `view "${view.name}" key ${JSON.stringify(key)}: ${which} in table "${table}"; \`tributary views windows ${view.name} ${key}\` lists the key's windows`);
    return [header, `${which}${retention ? ` (windows that ended before ${formatUtc(retention.expiredBefore, 19)} UTC have expired)` : ''}`];
  }
  if (read.action !== 'windows') {
    const item = withStatus[0]!;
    return [`${header}`, `${formatWindow(item.window)}  ${item.status}  version ${item.version}, updated ${item.updatedAt}`, toJson(item.state, 2)];
  }
  return [
    header,
    ...withStatus.map((item) => windowLine(item, item.status)),
    `${shown.length} window${shown.length === 1 ? '' : 's'}${retention ? `; windows that ended before ${formatUtc(retention.expiredBefore, 19)} UTC have expired` : ''}`,
  ];
}
