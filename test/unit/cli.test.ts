/**
 * The `tributary` command line without a stack: its summary line, its key and environment
 * rules, and what a wrong command line prints (one line on stderr, exit code 2).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { defineApp, defineView, isTributaryError, session, tumbling, type WindowSnapshot } from '../../sdk/index.ts';
import { summaryLine } from '../../cli/internal/dev.ts';
import { ITEMS_PER_VIEW, viewSummaryLines } from '../../cli/internal/summary.ts';
import { formatDuration, formatWindow, parseTime, windowStatus } from '../../cli/internal/windows.ts';
import { keyOf } from '../../cli/internal/produce.ts';
import { projectEnv, readEnvFile } from '../../cli/internal/project.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(REPO_ROOT, 'cli', 'main.ts');
/** tsx by absolute URL: the commands run in a scratch folder with no node_modules. */
const TSX = pathToFileURL(path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const run = promisify(execFile);
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tributary-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function cli(args: string[], cwd = scratch): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', TSX, CLI, ...args], { cwd, env: { ...process.env, NODE_NO_WARNINGS: '1', KAFKA_BROKERS: '' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const orders = defineView({ name: 'orders', source: 'shop.orders', key: (e: { id: string }) => e.id, initial: () => ({}), reduce: (s) => s });
const customers = defineView({ name: 'customers', source: 'shop.customers', key: (e: { id: string }) => e.id, initial: () => ({}), reduce: (s) => s });
const app = defineApp({ name: 'shop', views: [orders, customers] });

describe('the dev summary line', () => {
  it('names each figure for what it counts and sums lag per view over its source partitions', () => {
    const line = summaryLine(
      app,
      { recordsConsumed: 10, eventsApplied: 12, writes: 7, changesDelivered: 3, triggerInvocations: 1, deadLetters: 2 },
      { 'shop.orders/0': 4, 'shop.orders/1': 5, 'shop.customers/0': 0 },
      11,
    );
    expect(line).toBe(
      'events in 10 (seeded 11) · view updates 12 over 2 views · items written 7 · changes delivered 3 in 1 invocation · dead letters 2 · lag orders 9, customers 0',
    );
  });
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const daily = defineView({
  name: 'daily',
  source: 'shop.orders',
  key: (e: { id: string }) => e.id,
  window: tumbling({ sizeMs: DAY }),
  graceMs: HOUR,
  emit: 'final',
  initial: () => ({ orders: 0 }),
  reduce: (s) => ({ orders: s.orders + 1 }),
});
const visits = defineView({
  name: 'visits',
  source: 'shop.orders',
  key: (e: { id: string }) => e.id,
  window: session({ gapMs: 30 * 60_000 }),
  graceMs: 0,
  initial: () => ({ n: 0 }),
  reduce: (s) => ({ n: s.n + 1 }),
  merge: (a, b) => ({ n: a.n + b.n }),
});
const DAY_1 = Date.UTC(2026, 11, 1);

function windowOf(key: string, start: number, end: number, state: unknown, updatedAt: string, partition = 0): WindowSnapshot<unknown> {
  return { key, state, version: 3, offsets: { [`shop.orders/${partition}`]: '41' }, updatedAt, window: { start, end } };
}

describe('how windows read', () => {
  it('shows bounds in UTC at the precision they have, the end without its date on the same day', () => {
    expect(formatWindow({ start: DAY_1, end: DAY_1 + DAY })).toBe('[2026-12-01 00:00–2026-12-02 00:00 UTC)');
    expect(formatWindow({ start: DAY_1 + 9 * HOUR, end: DAY_1 + 10 * HOUR })).toBe('[2026-12-01 09:00–10:00 UTC)');
    expect(formatWindow({ start: DAY_1 + 5_250, end: DAY_1 + 65_000 })).toBe('[2026-12-01 00:00:05.250–00:01:05.000 UTC)');
    expect(formatWindow({ start: DAY_1 + 5_250, end: DAY_1 + 65_000 }, 19)).toBe('[2026-12-01 00:00:05–00:01:05 UTC)');
    expect([DAY, 2 * HOUR, 10 * 60_000, 90_000, 250].map(formatDuration)).toEqual(['1 d', '2 h', '10 min', '90 s', '250 ms']);
    expect(parseTime('--from', '2026-12-01')).toBe(DAY_1);
    expect(parseTime('--from', String(DAY_1 + 7))).toBe(DAY_1 + 7);
    // As printed: a time without a zone is UTC, whatever the machine's time zone.
    expect(parseTime('<start>', '2026-12-01 09:30')).toBe(DAY_1 + 9.5 * HOUR);
    expect(parseTime('<start>', '2026-12-01T00:00:05.250')).toBe(DAY_1 + 5_250);
    expect(parseTime('<start>', '2026-12-01T10:00:00+01:00')).toBe(DAY_1 + 9 * HOUR);
  });

  it('is closed only once the stream time of its partition passes end + graceMs', () => {
    const w = windowOf('a', DAY_1, DAY_1 + DAY, {}, '', 1);
    const at = (t: number) => windowStatus(daily, w, new Map([['shop.orders/1', t], ['shop.orders/0', DAY_1 + 5 * DAY]]));
    expect(at(DAY_1 + DAY + HOUR)).toBe('open');
    expect(at(DAY_1 + DAY + HOUR + 1)).toBe('closed');
    expect(windowStatus(daily, w, new Map())).toBe('open');
  });
});

describe('the views part of the dev summary', () => {
  it('shows a windowed view\'s newest windows as key [start–end) status version state, bounded and cut to width', () => {
    const windows = [
      { ...windowOf('class-2', DAY_1 + DAY, DAY_1 + 2 * DAY, { orders: 4 }, '2026-12-02T10:00:00.000Z'), status: 'open' as const },
      { ...windowOf('class-1', DAY_1, DAY_1 + DAY, { orders: 17 }, '2026-12-02T01:00:00.000Z'), status: 'closed' as const },
      { ...windowOf('class-1', DAY_1 + DAY, DAY_1 + 2 * DAY, { orders: 1, note: 'x'.repeat(200) }, '2026-12-02T00:30:00.000Z'), status: 'open' as const },
      { ...windowOf('class-3', DAY_1 + DAY, DAY_1 + 2 * DAY, { orders: 9 }, '2026-12-02T00:10:00.000Z'), status: 'open' as const },
    ];
    const lines = viewSummaryLines({ view: daily, kind: 'windows', streamTime: DAY_1 + DAY + 10 * HOUR + 5_000, windows }, 90);
    expect(lines).toHaveLength(1 + ITEMS_PER_VIEW);
    expect(lines[0]).toBe('  daily  tumbling 1 d, grace 1 h, emit final · stream time 2026-12-02 10:00:05 UTC');
    expect(lines[1]).toBe('    class-2 [2026-12-02 00:00–2026-12-03 00:00 UTC)  open    v3  {"orders":4}');
    expect(lines[2]).toBe('    class-1 [2026-12-01 00:00–2026-12-02 00:00 UTC)  closed  v3  {"orders":17}');
    expect(lines[3]).toHaveLength(90);
    expect(lines[3]).toMatch(/^ {4}class-1 \[2026-12-02 00:00–2026-12-03 00:00 UTC\) {2}open {4}v3 {2}\{"orders":1,"note":"x+…$/);
    const session = viewSummaryLines({ view: visits, kind: 'windows', streamTime: undefined, windows: [{ ...windowOf('m-1', DAY_1 + 1_500, DAY_1 + 1_801_500, { n: 2 }, ''), status: 'open' }] }, 100);
    expect(session).toEqual(['  visits  session gap 30 min, grace 0 ms, emit changes · no stream time yet', '    m-1 [2026-12-01 00:00:01–00:30:01 UTC)  open    v3  {"n":2}']);
    expect(viewSummaryLines({ view: visits, kind: 'windows', streamTime: DAY_1, windows: [] }, 120)).toEqual(['  visits  session gap 30 min, grace 0 ms, emit changes · stream time 2026-12-01 00:00:00 UTC · no windows yet']);
  });

  it('shows an unwindowed view\'s key count and latest changed keys', () => {
    const items = [{ key: 'o-9', state: { total: 12 }, version: 2, offsets: {}, updatedAt: '2026-12-01T10:00:00.000Z' }];
    expect(viewSummaryLines({ view: orders, kind: 'keys', keys: 1000, more: true, items }, 100)).toEqual(['  orders  1000+ keys, latest changed:', '    o-9  v2  {"total":12}']);
    expect(viewSummaryLines({ view: orders, kind: 'keys', keys: 0, more: false, items: [] }, 100)).toEqual(['  orders  0 keys']);
  });
});

describe('produce --key', () => {
  it('takes a string or number field as the key and rejects a missing one with its line', () => {
    expect(keyOf({ id: 7 }, 'id', 'x line 1')).toBe('7');
    expect(keyOf({ id: 'a' }, 'id', 'x line 1')).toBe('a');
    let thrown: unknown;
    try {
      keyOf({ other: 1 }, 'id', 'orders.jsonl line 3');
    } catch (error) {
      thrown = error;
    }
    expect(isTributaryError(thrown, 'cli', 'INVALID_INPUT')).toBe(true);
    expect((thrown as Error).message).toContain('orders.jsonl line 3');
  });
});

describe('.tributary/env', () => {
  it('is read as `export KEY=value` lines, and the process environment wins over it', () => {
    const dir = path.join(scratch, 'env-project');
    mkdirSync(path.join(dir, '.tributary'), { recursive: true });
    writeFileSync(path.join(dir, '.tributary', 'env'), 'export KAFKA_BROKERS=127.0.0.1:9092\nexport TRIBUTARY_TABLE=shop-views\n');
    expect(readEnvFile(dir)).toEqual({ KAFKA_BROKERS: '127.0.0.1:9092', TRIBUTARY_TABLE: 'shop-views' });
    const env = projectEnv(dir, { TRIBUTARY_TABLE: 'other' });
    expect(env.TRIBUTARY_TABLE).toBe('other');
    expect(env.KAFKA_BROKERS).toBe('127.0.0.1:9092');
  });
});

// Each case starts Node with tsx: seconds, not milliseconds, on a loaded machine.
describe('the tributary command line', { timeout: 60_000 }, () => {
  it('prints help for every command', async () => {
    const commands = [[], ['dev'], ['produce'], ['views'], ['dead-letters']];
    const results = await Promise.all(commands.map((command) => cli([...command, '--help'])));
    results.forEach((result, i) => {
      expect(result.code, commands[i]!.join(' ')).toBe(0);
      expect(result.stdout).toMatch(/^Usage: tributary/);
    });
  });

  it('answers a wrong command line with one line on stderr and exit code 2', async () => {
    const cases = [
      [['bogus'], 'unknown command "bogus"'],
      [['dev', '--wat'], "Unknown option '--wat'"],
      [['views', 'fetch', 'x'], 'expected `get`, `query`, `latest`, `windows`, `window`'],
      [['views', 'windows', 'daily', 'k', '--from', 'yesterday'], '--from "yesterday" is not a time'],
      [['views', 'window', 'daily', 'k'], "window needs the window's start"],
      [['views', 'latest', 'daily', 'k', '--to', '2026-12-01'], '--from and --to go with `windows`'],
      [['dev', '--rate', 'fast', '--app', CLI], '--rate needs a positive integer'],
    ] as const;
    const results = await Promise.all(cases.map(([args]) => cli([...args])));
    for (const [i, [args, text]] of cases.entries()) {
      const result = results[i]!;
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr).toContain(text);
    }
  });

  it('sends `views get|query` on a windowed view to the window commands', async () => {
    const dir = path.join(scratch, 'windowed-project');
    mkdirSync(dir, { recursive: true });
    const sdk = path.join(REPO_ROOT, 'sdk', 'index.ts');
    writeFileSync(path.join(dir, 'app.ts'), `import { defineApp, defineView, tumbling } from '${sdk}';
export const app = defineApp({ name: 'shop', views: [defineView({ name: 'daily', source: 'shop.orders', key: (e: { id: string }) => e.id, window: tumbling({ sizeMs: 86_400_000 }), graceMs: 0, initial: () => 0, reduce: (s: number) => s + 1 })] });
`);
    const [get, query] = await Promise.all([cli(['views', 'get', 'daily', 'k'], dir), cli(['views', 'query', 'daily'], dir)]);
    for (const result of [get, query]) {
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('view "daily" has windows (tumbling 1 d, grace 0 ms, emit changes)');
      expect(result.stderr).toContain('`tributary views latest daily <key>`');
      expect(result.stderr).toContain('`tributary views windows daily <key> [--from t] [--to t]`');
    }
  });

  it('says what is missing when there is no app or no broker', async () => {
    const [noApp, noBroker] = await Promise.all([cli(['views', 'get', 'orders', 'o-1']), cli(['produce', 'orders', '--file', CLI])]);
    expect(noApp.code).toBe(1);
    expect(noApp.stderr).toContain('no app module: neither app.ts nor src/app.ts exists');
    expect(noBroker.code).toBe(1);
    expect(noBroker.stderr).toContain('no Kafka brokers');
  });
});
