/**
 * A view's fingerprint does not depend on the tool that compiled its code: the views of
 * test/unit/fixtures/fingerprint-views.ts loaded through vitest's transform (this process), through tsx as
 * `engine/main.ts` and `tributary dev` load apps (its ESM loader and its CommonJS require hook),
 * and through an esbuild bundle as the engine image is built, have one fingerprint each; while a
 * real change of a reducer still gives another (test/unit/engine-fingerprint.test.ts). No stack:
 * child processes only, which is why it is not a unit test.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build, type BuildOptions } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { legacyViewFingerprint, viewFingerprint } from '../../engine/internal/lifecycle.ts';
import { views } from '../unit/fixtures/fingerprint-views.ts';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PRINT = path.join(REPO_ROOT, 'test', 'unit', 'fixtures', 'fingerprint-print.ts');
/** The engine image's banner (Dockerfile): a `require` for the CommonJS dependencies of an ESM bundle. */
const BANNER = "import { createRequire as __tributaryCreateRequire } from 'node:module'; const require = __tributaryCreateRequire(import.meta.url);";

const outDir = mkdtempSync(path.join(tmpdir(), 'tributary-fingerprint-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

async function printed(command: string, args: string[]): Promise<Record<string, string>> {
  const { stdout } = await run(command, args, { cwd: REPO_ROOT, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, string>;
}

/** Bundles the printer as the engine image bundles an app (Dockerfile), then runs the bundle outside the repository. */
async function bundled(name: string, options: BuildOptions): Promise<Record<string, string>> {
  const outfile = path.join(outDir, `${name}.mjs`);
  await build({
    entryPoints: [PRINT],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    banner: { js: BANNER },
    outfile,
    logLevel: 'silent',
    absWorkingDir: REPO_ROOT,
    ...options,
  });
  const { stdout } = await run(process.execPath, [outfile], { cwd: outDir, timeout: 60_000 });
  return JSON.parse(stdout.trim()) as Record<string, string>;
}

/** Each loader's fingerprints, computed at once in child processes (they take seconds on a loaded machine). */
const LOADERS: Record<string, () => Promise<Record<string, string>>> = {
  // As engine/main.ts and `npm run engine` load an app.
  'tsx (ESM loader)': () => printed(process.execPath, ['--import', 'tsx', PRINT]),
  // As the CLI loads an app on Node 24.
  "tsx's CommonJS require hook": () =>
    printed(process.execPath, ['-e', `require('tsx/cjs/api').require(${JSON.stringify(PRINT)}, ${JSON.stringify(path.join(REPO_ROOT, 'index.cjs'))});`]),
  'an esbuild bundle as the engine image builds it': () => bundled('plain', {}),
  'an esbuild bundle with keepNames (__name wrappers)': () => bundled('keep-names', { keepNames: true }),
  'an esbuild bundle with whitespace minified': () => bundled('minify-whitespace', { minifyWhitespace: true }),
};

describe('the fingerprint of one views file through each loader', () => {
  const here = Object.fromEntries(views.map((v) => [v.name, viewFingerprint(v)]));
  let results: Record<string, Record<string, string>>;
  beforeAll(async () => {
    const entries = await Promise.all(Object.entries(LOADERS).map(async ([name, load]) => [name, await load()] as const));
    results = Object.fromEntries(entries);
  }, 180_000);

  it('the loaders print the functions differently (else this test would prove nothing)', () => {
    // vitest's transform rewrites imports as __vite_ssr_import_N__ namespaces.
    expect(String(views[0]!.reduce)).toMatch(/__vite_ssr_import_\d+__/);
  });

  it.each(Object.keys(LOADERS))('%s gives the fingerprints vitest gives', (name) => {
    expect(results[name]).toEqual(here);
  });

  it('differs from the whitespace-collapsed text, so fingerprints recorded that way are recognised apart', () => {
    for (const view of views) expect(legacyViewFingerprint(view)).not.toBe(viewFingerprint(view));
  });
});
