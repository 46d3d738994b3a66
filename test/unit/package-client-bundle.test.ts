/**
 * What `tributary/client` costs a browser page: esbuild bundles the client entry for the
 * browser, and the bundle must hold no AWS SDK, no Node built-in and nothing of the SDK beyond
 * its errors module, and stay small.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** A bound with headroom over the measured size, low enough to catch a heavy import. */
const MAX_BUNDLE_BYTES = 24 * 1024;

describe('the tributary/client entry in a browser bundle', () => {
  it('bundles without the AWS SDK or any Node built-in, and stays small', async () => {
    const result = await build({
      entryPoints: [path.join(REPO_ROOT, 'client', 'index.ts')],
      bundle: true,
      write: false,
      metafile: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      logLevel: 'silent',
      absWorkingDir: REPO_ROOT,
    });
    const inputs = Object.keys(result.metafile.inputs);
    // Anything from node_modules (the AWS SDK above all) or another module of Tributary, past
    // the SDK's errors module, is a leak; a Node built-in would have failed the browser build.
    expect(inputs.filter((input) => !/^client\//.test(input) && input !== 'sdk/internal/errors.ts')).toEqual([]);
    expect(inputs).toContain('client/internal/live-client.ts');
    const bytes = result.outputFiles[0]!.contents.byteLength;
    console.log(`tributary/client browser bundle: ${(bytes / 1024).toFixed(1)} KiB minified`);
    expect(bytes).toBeLessThan(MAX_BUNDLE_BYTES);
  });
});
