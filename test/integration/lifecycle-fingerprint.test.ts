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
import { fileURLToPath, pathToFileURL } from 'node:url';
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

/** Bundle variants: as the engine image bundles an app (Dockerfile), with keepNames (`__name` wrappers) and with whitespace minified. */
const BUNDLES: Record<string, BuildOptions> = {
  'an esbuild bundle as the engine image builds it': {},
  'an esbuild bundle with keepNames (__name wrappers)': { keepNames: true },
  'an esbuild bundle with whitespace minified': { minifyWhitespace: true },
};

/** Builds every bundle variant of the printer, then runs them all in one process outside the repository. */
async function bundled(): Promise<Record<string, Record<string, string>>> {
  const files = await Promise.all(
    Object.entries(BUNDLES).map(async ([name, options], i) => {
      const outfile = path.join(outDir, `variant-${i}.mjs`);
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
      return [name, outfile] as const;
    }),
  );
  // Each bundle prints one line; imported one after the other, the lines come in this order.
  const script = files.map(([, file]) => `await import(${JSON.stringify(pathToFileURL(file).href)});`).join(' ');
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: outDir, timeout: 60_000 });
  const lines = stdout.trim().split('\n');
  return Object.fromEntries(files.map(([name], i) => [name, JSON.parse(lines[i]!) as Record<string, string>]));
}

/** Each loader's fingerprints, computed at once in child processes (they take seconds on a loaded machine). */
const LOADERS: Record<string, () => Promise<Record<string, Record<string, string>>>> = {
  // As engine/main.ts and `npm run engine` load an app.
  'tsx (ESM loader)': async () => ({ 'tsx (ESM loader)': await printed(process.execPath, ['--import', 'tsx', PRINT]) }),
  // As the CLI loads an app on Node 24.
  "tsx's CommonJS require hook": async () => ({
    "tsx's CommonJS require hook": await printed(process.execPath, [
      '-e',
      `require('tsx/cjs/api').require(${JSON.stringify(PRINT)}, ${JSON.stringify(path.join(REPO_ROOT, 'index.cjs'))});`,
    ]),
  }),
  bundles: bundled,
};
const LOADER_NAMES = ['tsx (ESM loader)', "tsx's CommonJS require hook", ...Object.keys(BUNDLES)];

describe('the fingerprint of one views file through each loader', () => {
  const here = Object.fromEntries(views.map((v) => [v.name, viewFingerprint(v)]));
  let results: Record<string, Record<string, string>>;
  beforeAll(async () => {
    results = Object.assign({}, ...(await Promise.all(Object.values(LOADERS).map((load) => load()))));
  }, 180_000);

  it('the loaders print the functions differently (else this test would prove nothing)', () => {
    // vitest's transform rewrites imports as __vite_ssr_import_N__ namespaces.
    expect(String(views[0]!.reduce)).toMatch(/__vite_ssr_import_\d+__/);
  });

  it.each(LOADER_NAMES)('%s gives the fingerprints vitest gives', (name) => {
    expect(results[name]).toEqual(here);
  });

  it('differs from the whitespace-collapsed text, so fingerprints recorded that way are recognised apart', () => {
    for (const view of views) expect(legacyViewFingerprint(view)).not.toBe(viewFingerprint(view));
  });
});
