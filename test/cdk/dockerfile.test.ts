/**
 * The engine image recipe: every path the Dockerfile COPYs exists and survives .dockerignore,
 * the engine entry point exists, CMD runs what the build stage produces, and the build stage's
 * esbuild command really bundles the app into a module plain `node` can import.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IgnoreStrategy } from 'aws-cdk-lib';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers.ts';

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  /** Index of the build stage (FROM) the instruction belongs to. */
  readonly stage: number;
}

/** Parses a Dockerfile into instructions: joins `\` continuations, drops comments and blank lines. */
function parseDockerfile(text: string): Instruction[] {
  const logical = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  let stage = -1;
  return logical.map((line) => {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === 'FROM') stage += 1;
    return { keyword: keyword.toUpperCase(), args: args.trim(), stage };
  });
}

const instructions = parseDockerfile(fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
const stages = instructions.filter((i) => i.keyword === 'FROM').map((i) => i.args);
const lastStage = stages.length - 1;
const dockerignore = fs.readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const ignore = IgnoreStrategy.docker(REPO_ROOT, dockerignore);
const buildRun = instructions.find((i) => i.keyword === 'RUN' && i.args.includes('esbuild'));
const appModuleDefault = /^APP_MODULE=(\S+)$/.exec(instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('APP_MODULE'))?.args ?? '')?.[1];

/** Sources of a COPY (all words but the destination and flags). */
function copySources(args: string): string[] {
  const words = args.split(/\s+/).filter((w) => !w.startsWith('--'));
  return words.slice(0, -1);
}

describe('Dockerfile', () => {
  it('builds on node:22 and runs on node:22-slim', () => {
    expect(stages).toHaveLength(2);
    expect(stages[0]).toMatch(/^node:22 AS build$/i);
    expect(stages[1]).toBe('node:22-slim');
  });

  it('COPYs only paths that exist in the repo and that .dockerignore keeps in the context', () => {
    const copies = instructions.filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      for (const source of copySources(copy.args)) {
        const absolute = path.join(REPO_ROOT, source);
        expect(fs.existsSync(absolute), `COPY ${source}: missing in the repo`).toBe(true);
        if (source !== '.') expect(ignore.ignores(absolute), `COPY ${source}: excluded by .dockerignore`).toBe(false);
      }
    }
  });

  it('keeps the engine, SDK, app and lockfile in the build context, and node_modules/cdk.out out', () => {
    for (const kept of ['package.json', 'package-lock.json', 'engine/main.ts', 'sdk/index.ts', appModuleDefault ?? 'functions/app.ts']) {
      expect(ignore.ignores(path.join(REPO_ROOT, kept)), kept).toBe(false);
    }
    for (const dropped of ['node_modules/kafkajs/package.json', 'cdk.out/manifest.json', '.git/HEAD']) {
      expect(ignore.ignores(path.join(REPO_ROOT, dropped)), dropped).toBe(true);
    }
  });

  it('bundles an engine entry point and an app module that exist', () => {
    expect(buildRun, 'a RUN with esbuild in the build stage').toBeDefined();
    expect(buildRun!.stage).toBe(0);
    expect(buildRun!.args).toContain('engine=engine/main.ts');
    expect(fs.existsSync(path.join(REPO_ROOT, 'engine/main.ts')), 'engine/main.ts (the engine entry point)').toBe(true);
    expect(appModuleDefault).toBe('functions/app.ts');
    expect(fs.existsSync(path.join(REPO_ROOT, appModuleDefault!)), `${appModuleDefault} (the app module)`).toBe(true);
  });

  it('runs as a non-root user the file the build stage writes', () => {
    const runtime = instructions.filter((i) => i.stage === lastStage);
    const user = runtime.filter((i) => i.keyword === 'USER').at(-1);
    expect(user?.args).toBeDefined();
    expect(['root', '0']).not.toContain(user!.args.split(':')[0]);
    const cmd = runtime.find((i) => i.keyword === 'CMD');
    expect(JSON.parse(cmd!.args)).toEqual(['node', 'dist/engine.mjs']);
    // esbuild writes <outdir>/<entry name><out-extension>; the runtime copies the build's dist to ./dist.
    expect(buildRun!.args).toContain('--outdir=dist');
    expect(buildRun!.args).toContain('--out-extension:.js=.mjs');
    expect(runtime.some((i) => i.keyword === 'COPY' && /--from=build\b.*\/dist\s+\.\/dist$/.test(i.args))).toBe(true);
    const env = runtime.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
    expect(env).toContain('TRIBUTARY_APP_MODULE=/app/dist/app.mjs');
    // The engine binds its health endpoint to loopback unless told otherwise; in the image, every interface.
    expect(env).toContain('TRIBUTARY_HEALTH_HOST=0.0.0.0');
  });
});

describe('the build stage bundle', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-image-'));
  afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

  it('bundles the app into an ES module that plain node imports, with no TypeScript or node_modules', () => {
    // The Dockerfile's own esbuild command, run on the repo with the output redirected to a temp dir.
    const command = buildRun!.args
      .replace(/^test -f .*?&&\s*/, '')
      .replace(/\$\{APP_MODULE\}/g, appModuleDefault!)
      .replace('--outdir=dist', `--outdir=${outdir}`)
      .replace(/^npx esbuild/, path.join(REPO_ROOT, 'node_modules/.bin/esbuild'));
    execFileSync('sh', ['-c', command], { cwd: REPO_ROOT, stdio: 'pipe' });
    expect(fs.existsSync(path.join(outdir, 'engine.mjs'))).toBe(true);
    // Import from a directory without node_modules, as in the runtime image.
    const probe = `const m = await import(${JSON.stringify(path.join(outdir, 'app.mjs'))}); console.log(JSON.stringify({ kind: m.app?.kind, name: m.app?.name }));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: outdir, encoding: 'utf8' });
    expect(JSON.parse(output.trim())).toEqual({ kind: 'app', name: expect.any(String) });
  }, 60_000);
});
