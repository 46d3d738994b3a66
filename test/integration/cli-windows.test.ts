/**
 * The CLI's windowed reads on DynamoDB Local: `tributary views windows|window|latest` and the
 * dev summary's windowed lines. Items and checkpoints are written directly in the layout the
 * engine writes; the expected lines are computed here from what was written (bounds, states,
 * and open/closed from each partition's stream time against end + graceMs), not read back.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { PutItemCommand } from 'dynamodb-toolbox/entity/actions/put';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createViewReader, defineApp, defineView, session, tumbling, type View } from '../../sdk/index.ts';
import { checkpointKey, createStorage, DOCUMENT_CLIENT_OPTIONS, offsetsKey, viewIndexKey, viewItemKey, type Storage } from '../../sdk/contract/index.ts';
import { readViewSummary, RecentKeys, viewSummaryLines } from '../../cli/internal/summary.ts';
import { createTable, dynamoClient, LOCAL_CREDENTIALS, stack, uniqueName, waitFor } from './helpers.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(REPO_ROOT, 'cli', 'main.ts');
const TSX = pathToFileURL(path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const run = promisify(execFile);

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const TOPIC = 'cli-windows.orders';

/** The app the CLI loads, written to the scratch folder; the test's own copy reads the same table. */
const APP_SOURCE = (sdk: string) => `import { defineApp, defineView, session, tumbling } from ${JSON.stringify(sdk)};
const daily = defineView({ name: 'daily', source: ${JSON.stringify(TOPIC)}, key: (e: { id: string }) => e.id, window: tumbling({ sizeMs: ${DAY} }), graceMs: ${HOUR}, retentionMs: ${7 * DAY}, emit: 'final', initial: () => ({ orders: 0 }), reduce: (s: { orders: number }) => ({ orders: s.orders + 1 }) });
const visits = defineView({ name: 'visits', source: ${JSON.stringify(TOPIC)}, key: (e: { id: string }) => e.id, window: session({ gapMs: ${30 * MIN} }), graceMs: 0, retentionMs: ${7 * DAY}, initial: () => ({ n: 0 }), reduce: (s: { n: number }) => ({ n: s.n + 1 }), merge: (a: { n: number }, b: { n: number }) => ({ n: a.n + b.n }) });
export const app = defineApp({ name: 'clishop', views: [daily, visits] });
`;
const daily = defineView({ name: 'daily', source: TOPIC, key: (e: { id: string }) => e.id, window: tumbling({ sizeMs: DAY }), graceMs: HOUR, retentionMs: 7 * DAY, emit: 'final', initial: () => ({ orders: 0 }), reduce: (s) => ({ orders: s.orders + 1 }) });
const visits = defineView({ name: 'visits', source: TOPIC, key: (e: { id: string }) => e.id, window: session({ gapMs: 30 * MIN }), graceMs: 0, retentionMs: 7 * DAY, initial: () => ({ n: 0 }), reduce: (s) => ({ n: s.n + 1 }), merge: (a, b) => ({ n: a.n + b.n }) });
const app = defineApp({ name: 'clishop', views: [daily, visits] });

/** Today 00:00 UTC: the windows are days before and including it, inside retention. */
const today = Math.floor(Date.now() / DAY) * DAY;
const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
/** Stream time per partition: partition 0 is 2 h into today (yesterday is closed), partition 1 only 30 min (yesterday's grace runs). */
const STREAM_TIME = [today + 2 * HOUR, today + 30 * MIN];

interface Written {
  readonly view: View<any, any>;
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly state: unknown;
  readonly version: number;
  readonly partition: number;
  readonly updatedAt: string;
}

const written: Written[] = [
  { view: daily, key: 'class-1', start: today - 2 * DAY, end: today - DAY, state: { orders: 5 }, version: 5, partition: 0, updatedAt: '2026-01-01T00:00:01.000Z' },
  { view: daily, key: 'class-1', start: today - DAY, end: today, state: { orders: 8 }, version: 8, partition: 0, updatedAt: '2026-01-01T00:00:02.000Z' },
  { view: daily, key: 'class-1', start: today, end: today + DAY, state: { orders: 2 }, version: 2, partition: 0, updatedAt: '2026-01-01T00:00:05.000Z' },
  { view: daily, key: 'class-2', start: today - DAY, end: today, state: { orders: 3 }, version: 3, partition: 1, updatedAt: '2026-01-01T00:00:04.000Z' },
  { view: daily, key: 'class-2', start: today, end: today + DAY, state: { orders: 1 }, version: 1, partition: 1, updatedAt: '2026-01-01T00:00:03.000Z' },
  { view: visits, key: 'member-1', start: today + 10 * MIN + 1_500, end: today + 55 * MIN + 1_500, state: { n: 4 }, version: 4, partition: 0, updatedAt: '2026-01-01T00:00:06.000Z' },
];

/** The reference: closed once the stream time of the window's partition passes end + graceMs. */
const statusOf = (w: Written) => (STREAM_TIME[w.partition]! > w.end + w.view.window!.graceMs ? 'closed' : 'open');
const dayWindow = (start: number) => `[${utcDay(start)} 00:00–${utcDay(start + DAY)} 00:00 UTC)`;

let storage: Storage;
let tableName: string;
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tributary-cli-windows-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const s = stack();
  const env = {
    ...process.env,
    NODE_NO_WARNINGS: '1',
    AWS_REGION: s.region,
    AWS_ENDPOINT_URL_DYNAMODB: s.dynamodbEndpoint,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    TRIBUTARY_TABLE: tableName,
  };
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', TSX, CLI, ...args], { cwd: scratch, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  writeFileSync(path.join(scratch, 'app.ts'), APP_SOURCE(path.join(REPO_ROOT, 'sdk', 'index.ts')));
  tableName = await createTable(uniqueName('cli-windows'));
  storage = createStorage({ dynamodb: dynamoClient(), tableName });
  await Promise.all(written.map((w) => {
    const bounds = { start: w.start, end: w.end };
    return storage.viewItems.build(PutItemCommand).item({
      ...viewItemKey(w.view.name, w.key, bounds),
      ...viewIndexKey(w.view.name, w.key, bounds),
      view: w.view.name,
      key: w.key,
      state: w.state,
      version: w.version,
      offsets: { [offsetsKey(TOPIC, w.partition)]: '10' },
      updatedAt: w.updatedAt,
      windowStart: w.start,
      windowEnd: w.end,
      ttl: Math.ceil((w.end + 7 * DAY) / 1000),
    }).send();
  }));
  await Promise.all(STREAM_TIME.map((time, partition) => storage.checkpoints.build(PutItemCommand).item({
    ...checkpointKey(TOPIC, partition),
    topic: TOPIC,
    partition,
    offset: '11',
    updatedAt: new Date().toISOString(),
    streamTime: { daily: time, visits: time },
  }).send()));
  // windowsAt (the dev summary) goes through the eventually consistent key index.
  const reader = createViewReader({ dynamodb: dynamoClient(), tableName });
  await waitFor(async () => (await reader.windowsAt(daily, today)).items.length === 2 && (await reader.windowsAt(daily, today - DAY)).items.length === 2, {
    timeoutMs: 10_000,
    message: 'the key index lists the written windows',
  });
});

describe('tributary views windows|window|latest', { timeout: 60_000 }, () => {
  it('lists a key\'s windows in time order as [start–end UTC) open|closed vN state, and in JSON', async () => {
    const [all, ranged, json] = await Promise.all([
      cli(['views', 'windows', 'daily', 'class-1']),
      cli(['views', 'windows', 'daily', 'class-1', '--from', utcDay(today - DAY), '--to', String(today)]),
      cli(['views', 'windows', 'daily', 'class-2', '--json']),
    ]);
    const expected = (w: Written) => `${dayWindow(w.start)}  ${statusOf(w).padEnd(6)}  v${w.version}  ${JSON.stringify(w.state)}`;
    const class1 = written.filter((w) => w.view === daily && w.key === 'class-1');
    expect(all.stderr).toBe('');
    expect(all.stdout.trimEnd().split('\n')).toEqual(['daily[class-1]  tumbling 1 d, grace 1 h, emit final', ...class1.map(expected), '3 windows']);
    // Partition 0's stream time is past yesterday's end + 1 h: closed; today's is open.
    expect(class1.map(statusOf)).toEqual(['closed', 'closed', 'open']);
    expect(ranged.stdout.trimEnd().split('\n')).toEqual(['daily[class-1]  tumbling 1 d, grace 1 h, emit final', expected(class1[1]!), '1 window']);
    const class2 = written.filter((w) => w.view === daily && w.key === 'class-2');
    expect(JSON.parse(json.stdout)).toEqual(class2.map((w) => ({
      key: w.key,
      state: w.state,
      version: w.version,
      offsets: { [`${TOPIC}/${w.partition}`]: '10' },
      updatedAt: w.updatedAt,
      window: { start: w.start, end: w.end },
      // Partition 1 is 30 min past yesterday's end, inside its 1 h grace: still open.
      status: 'open',
    })));
  });

  it('reads one window by its start and the newest window, and says when there is none', async () => {
    const [one, latest, session, none] = await Promise.all([
      cli(['views', 'window', 'daily', 'class-2', utcDay(today - DAY)]),
      cli(['views', 'latest', 'daily', 'class-1']),
      cli(['views', 'latest', 'visits', 'member-1', '--json']),
      cli(['views', 'window', 'daily', 'class-2', String(today - 2 * DAY)]),
    ]);
    const w = written[3]!;
    expect(one.stdout.trimEnd().split('\n')).toEqual([
      'daily[class-2]  tumbling 1 d, grace 1 h, emit final',
      `${dayWindow(w.start)}  open  version 3, updated ${w.updatedAt}`,
      ...JSON.stringify(w.state, null, 2).split('\n'),
    ]);
    expect(latest.stdout.split('\n')[1]).toBe(`${dayWindow(today)}  open  version 2, updated ${written[2]!.updatedAt}`);
    const m = written[5]!;
    // Partition 0's stream time (2 h) is past the session's end (55 min) + grace 0: closed.
    expect(JSON.parse(session.stdout)).toMatchObject({ key: 'member-1', window: { start: m.start, end: m.end }, state: m.state, status: 'closed' });
    // A range reaching past retention says so.
    const old = await cli(['views', 'windows', 'daily', 'class-1', '--from', utcDay(today - 30 * DAY)]);
    expect(old.stdout.trimEnd().split('\n').at(-1)).toMatch(/^3 windows; windows that ended before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC have expired$/);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`view "daily" key "class-2": no window starting ${utcDay(today - 2 * DAY)} 00:00 UTC`);
  });
});

describe('the dev summary of a windowed view', () => {
  it('shows the newest windows of every key by last write, with open/closed from stream time', async () => {
    const dynamodb = dynamoClient();
    const reads = {
      reader: createViewReader({ dynamodb, tableName }),
      client: DynamoDBDocumentClient.from(dynamodb, DOCUMENT_CLIENT_OPTIONS),
      table: tableName,
      partitions: () => [0, 1],
      recent: new RecentKeys(() => app),
    };
    const dailyLines = viewSummaryLines(await readViewSummary(daily, reads), 120);
    // Today's and yesterday's windows of every key, newest write first; the day before is not shown.
    const shown = written.filter((w) => w.view === daily && w.start >= today - DAY).sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)).slice(0, 3);
    expect(dailyLines).toEqual([
      `  daily  tumbling 1 d, grace 1 h, emit final · stream time ${new Date(STREAM_TIME[0]!).toISOString().slice(0, 19).replace('T', ' ')} UTC`,
      ...shown.map((w) => `    ${w.key} ${dayWindow(w.start)}  ${statusOf(w).padEnd(6)}  v${w.version}  ${JSON.stringify(w.state)}`),
    ]);
    // A session view has no aligned windows: the keys come from what the seed produced.
    reads.recent.note(TOPIC, Buffer.from(JSON.stringify({ id: 'member-1' })), null);
    const m = written[5]!;
    const time = (ms: number) => new Date(ms).toISOString().slice(11, 19);
    expect(viewSummaryLines(await readViewSummary(visits, reads), 120)[1]).toBe(`    member-1 [${utcDay(m.start)} ${time(m.start)}–${time(m.end)} UTC)  closed  v4  {"n":4}`);
  });
});
