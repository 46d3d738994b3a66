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
import { defineApp, defineView, isTributaryError } from '../../sdk/index.ts';
import { summaryLine } from '../../cli/internal/dev.ts';
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
      [['views', 'fetch', 'x'], 'expected `get` or `query`'],
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

  it('says what is missing when there is no app or no broker', async () => {
    const [noApp, noBroker] = await Promise.all([cli(['views', 'get', 'orders', 'o-1']), cli(['produce', 'orders', '--file', CLI])]);
    expect(noApp.code).toBe(1);
    expect(noApp.stderr).toContain('no app module: neither app.ts nor src/app.ts exists');
    expect(noBroker.code).toBe(1);
    expect(noBroker.stderr).toContain('no Kafka brokers');
  });
});
