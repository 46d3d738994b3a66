/**
 * The package as a team installs it: `npm pack` this repository, install the tarball into a
 * fresh project outside it (its own package.json, the app in test/integration/fixtures/package-app),
 * and there
 * - type-check the app against `tributary/sdk` with plain `tsc` (NodeNext, no
 *   allowImportingTsExtensions; skipLibCheck as `tsc --init` sets it: checking every .d.ts of
 *   the AWS SDK would take five times as long and tests nothing of ours);
 * - run its views and trigger through `tributary/testing`;
 * - run `tributary dev` on it for real (the bin of the installed package): events produced with
 *   `tributary produce` reach the view, read back through the SDK; the trigger's handler runs;
 * - synthesize its CDK stack offline, with the engine image built from the Dockerfile the package
 *   ships, and run that Dockerfile's bundling step on the project.
 * npm runs with `--prefer-offline`: the versions installed are the repository's own, already in
 * npm's cache after `npm ci`.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE = path.join(REPO_ROOT, 'test', 'integration', 'fixtures', 'package-app');
const run = promisify(execFile);
/** Long steps on a loaded 2-core machine: packing builds the package, installing unpacks aws-cdk-lib. */
const STEP_TIMEOUT_MS = 240_000;

/** The version of `name` the repository has installed, so npm finds it in its cache. */
function installedVersion(name: string): string {
  return (JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

let scratch: string;
let project: string;
let dev: ChildProcess | undefined;
let devOutput = '';
const timings: string[] = [];

async function timed<T>(label: string, step: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await step();
  } finally {
    timings.push(`${label} ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

/** Runs a command in the project; on failure the error carries its output. */
async function inProject(file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await run(file, [...args], { cwd: project, env: { ...process.env, NODE_NO_WARNINGS: '1', ...env }, maxBuffer: 32 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { message: string; stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** `node --import tsx <script>` with the project's own tsx (a dependency of the package). */
function tsx(script: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return inProject(process.execPath, ['--import', 'tsx', script, ...args], env);
}

beforeAll(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'tributary-package-'));
  const packed = await timed('npm pack', async () => {
    const { stdout } = await run('npm', ['pack', '--pack-destination', scratch, '--json'], { cwd: REPO_ROOT, maxBuffer: 32 * 1024 * 1024 });
    // npm prints the prepare script's output before the JSON report.
    return (JSON.parse(stdout.slice(stdout.indexOf('[\n'))) as { filename: string }[])[0]!.filename;
  });
  project = path.join(scratch, 'shop');
  cpSync(FIXTURE, project, { recursive: true });
  writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({ name: 'shop', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
  await timed('npm install', () => inProject('npm', [
    'install', '--prefer-offline', '--no-audit', '--no-fund',
    path.join(scratch, packed),
    `aws-cdk-lib@${installedVersion('aws-cdk-lib')}`,
    `constructs@${installedVersion('constructs')}`,
    `typescript@${installedVersion('typescript')}`,
    `@types/node@${installedVersion('@types/node')}`,
  ]));
}, STEP_TIMEOUT_MS * 2);

afterAll(async () => {
  if (dev && dev.exitCode === null) dev.kill('SIGKILL');
  console.log(`package test: ${timings.join(', ')}`);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the packed tributary package in a project of its own', () => {
  it('installs only the built package: entries, bin and the shipped Dockerfile, no sources', () => {
    const installed = path.join(project, 'node_modules', 'tributary');
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as { exports: Record<string, unknown>; bin: Record<string, string> };
    expect(Object.keys(manifest.exports)).toEqual(expect.arrayContaining(['.', './sdk', './engine', './cdk', './local', './testing']));
    for (const entry of ['sdk', 'engine', 'cdk', 'local', 'testing']) {
      expect(existsSync(path.join(installed, 'dist', entry, 'index.js')), entry).toBe(true);
      expect(existsSync(path.join(installed, 'dist', entry, 'index.d.ts')), entry).toBe(true);
    }
    expect(existsSync(path.join(project, 'node_modules', '.bin', 'tributary'))).toBe(true);
    expect(existsSync(path.join(installed, 'dist', 'engine', 'app.Dockerfile'))).toBe(true);
    expect(readdirSync(installed).sort()).toEqual(['README.md', 'dist', 'package.json']);
  });

  it('type-checks the app against tributary/sdk with plain tsc', async () => {
    await timed('tsc', () => inProject(process.execPath, [path.join('node_modules', 'typescript', 'bin', 'tsc'), '-p', '.']));
  }, STEP_TIMEOUT_MS);

  it('runs the views and the trigger through tributary/testing', async () => {
    expect(await timed('tributary/testing', () => tsx('views.check.ts'))).toContain('views ok');
  }, STEP_TIMEOUT_MS);

  it('runs on `tributary dev`: produced events reach the view, read through the SDK, and the handler runs', async () => {
    const notified = path.join(project, 'notified.jsonl');
    const started = Date.now();
    dev = spawn(path.join(project, 'node_modules', '.bin', 'tributary'), ['dev'], {
      cwd: project,
      env: { ...process.env, NODE_NO_WARNINGS: '1', TRIBUTARY_KAFKA_PORT: '0', TRIBUTARY_DYNAMODB_PORT: '0', TRIBUTARY_LAMBDA_PORT: '0', SHOP_NOTIFY_FILE: notified },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    dev.stdout!.on('data', (chunk: Buffer) => { devOutput += chunk.toString('utf8'); });
    dev.stderr!.on('data', (chunk: Buffer) => { devOutput += chunk.toString('utf8'); });
    await waitFor(() => devOutput.includes('Ctrl-C stops everything') || dev!.exitCode !== null, { timeoutMs: 120_000, intervalMs: 200, message: 'tributary dev to start' });
    expect(dev.exitCode, devOutput).toBeNull();
    timings.push(`tributary dev start ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const env = Object.fromEntries(readFileSync(path.join(project, '.tributary', 'env'), 'utf8').trim().split('\n').map((line) => line.replace(/^export /, '').split('=', 2) as [string, string]));
    expect(env.TRIBUTARY_TABLE).toBe('shop-views');
    expect(env.KAFKA_BROKERS).toMatch(/^127\.0\.0\.1:\d+$/);

    const orders = [
      { orderId: 'o-1', customerId: 'c-1', total: 60 },
      { orderId: 'o-2', customerId: 'c-2', total: 5 },
      { orderId: 'o-3', customerId: 'c-1', total: 50 },
      { orderId: 'o-4', customerId: 'c-3', total: 120 },
    ];
    writeFileSync(path.join(project, 'orders.jsonl'), `${orders.map((o) => JSON.stringify(o)).join('\n')}\n`);
    // The reference, computed here from the events, not by the engine.
    const expected: Record<string, { orders: number; spent: number }> = {};
    for (const o of orders) {
      const prior = expected[o.customerId] ?? { orders: 0, spent: 0 };
      expected[o.customerId] = { orders: prior.orders + 1, spent: prior.spent + o.total };
    }
    const bigSpenders = Object.entries(expected).filter(([, s]) => s.spent >= 100).map(([customer, s]) => ({ customer, spent: s.spent }));

    const produced = await inProject(path.join(project, 'node_modules', '.bin', 'tributary'), ['produce', 'shop.orders', '--file', 'orders.jsonl', '--key', 'customerId']);
    expect(produced).toContain(`produced ${orders.length} events to "shop.orders"`);

    const keys = Object.keys(expected);
    await waitFor(async () => JSON.stringify(JSON.parse(await tsx('read.ts', keys))) === JSON.stringify(expected), { timeoutMs: 60_000, intervalMs: 500, message: 'the view to hold every order' });
    await waitFor(() => existsSync(notified) && readFileSync(notified, 'utf8').trim().split('\n').length >= bigSpenders.length, { timeoutMs: 60_000, intervalMs: 200, message: 'the notify handler to run' });
    const calls = readFileSync(notified, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { customer: string; spent: number });
    expect(calls.sort((a, b) => a.customer.localeCompare(b.customer))).toEqual(bigSpenders);

    const view = await inProject(path.join(project, 'node_modules', '.bin', 'tributary'), ['views', 'get', 'customerTotals', 'c-1', '--json']);
    expect((JSON.parse(view) as { state: unknown }).state).toEqual(expected['c-1']);

    dev.kill('SIGTERM');
    await waitFor(() => dev!.exitCode !== null, { timeoutMs: 60_000, intervalMs: 100, message: 'tributary dev to stop on SIGTERM' });
    expect(dev.exitCode, devOutput).toBe(0);
    // The summary stays human: engine logs and metric lines go to .tributary/logs, not the screen.
    expect(devOutput).not.toContain('"_aws"');
    expect(readFileSync(path.join(project, '.tributary', 'logs', 'engine.log'), 'utf8')).toContain('"_aws"');
    timings.push(`tributary dev total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }, STEP_TIMEOUT_MS);

  it('synthesizes its CDK stack offline, the engine image from the Dockerfile the package ships', async () => {
    const outdir = path.join(scratch, 'cdk.out');
    await timed('cdk synth', () => tsx('cdk.ts', [], { CDK_OUTDIR: outdir }));
    const assets = JSON.parse(readFileSync(path.join(outdir, 'Shop.assets.json'), 'utf8')) as { dockerImages: Record<string, { source: { directory: string; dockerFile: string; dockerBuildArgs: Record<string, string> } }> };
    const [image] = Object.values(assets.dockerImages);
    expect(image!.source.dockerFile).toBe('node_modules/tributary/dist/engine/app.Dockerfile');
    expect(image!.source.dockerBuildArgs).toEqual({ APP_MODULE: 'src/app.ts' });
    const context = path.join(outdir, image!.source.directory);
    expect(existsSync(path.join(context, image!.source.dockerFile))).toBe(true);
    expect(existsSync(path.join(context, 'src', 'app.ts'))).toBe(true);
    expect(existsSync(path.join(context, 'package-lock.json'))).toBe(true);
    // Only the Dockerfile of node_modules: the image installs the dependencies itself.
    expect(readdirSync(path.join(context, 'node_modules'))).toEqual(['tributary']);
    const template = JSON.parse(readFileSync(path.join(outdir, 'Shop.template.json'), 'utf8')) as { Resources: Record<string, { Type: string }> };
    const types = Object.values(template.Resources).map((r) => r.Type);
    expect(types.filter((t) => t === 'AWS::Lambda::Function')).toHaveLength(1);
    expect(types).toContain('AWS::DynamoDB::Table');
    expect(types).toContain('AWS::ECS::Service');
  }, STEP_TIMEOUT_MS);

  it('bundles the app with the installed engine as the shipped Dockerfile does, into modules plain node imports', async () => {
    const dockerfile = readFileSync(path.join(project, 'node_modules', 'tributary', 'dist', 'engine', 'app.Dockerfile'), 'utf8').replace(/\\\r?\n/g, ' ');
    const command = /^RUN (npx --no-install esbuild .*)$/m.exec(dockerfile)?.[1];
    expect(command).toBeDefined();
    await timed('image bundle', () => inProject('sh', ['-c', command!.replaceAll('${APP_MODULE}', 'src/app.ts')]));
    const loaded = await inProject(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(pathToFileURL(path.join(project, 'dist', 'app.mjs')).href)}); console.log(m.app.name, m.app.views.map((v) => v.name).join())`]);
    expect(loaded.trim()).toBe('shop customerTotals');
    expect(existsSync(path.join(project, 'dist', 'engine.mjs'))).toBe(true);
  }, STEP_TIMEOUT_MS);
});
