import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The package's public entries by name, resolved to their sources (as tsconfig.json's `paths`
 * do for tsc, tsx and esbuild), so tests of the example app run against the code being edited,
 * not against a stale `npm run build`. Exact matches: `tributary/sdk`, never `tributary/sdk/x`.
 */
const source = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const PUBLIC_ENTRIES = [
  { find: /^tributary$/, replacement: source('./sdk/index.ts') },
  { find: /^tributary\/sdk$/, replacement: source('./sdk/index.ts') },
  { find: /^tributary\/engine$/, replacement: source('./engine/index.ts') },
  { find: /^tributary\/cdk$/, replacement: source('./cdk/index.ts') },
  { find: /^tributary\/client$/, replacement: source('./client/index.ts') },
  { find: /^tributary\/local$/, replacement: source('./local/index.ts') },
  { find: /^tributary\/testing$/, replacement: source('./testing/index.ts') },
  { find: /^tributary\/live$/, replacement: source('./live/index.ts') },
];

// Three projects, one per kind of test (see README.md "Tests"):
// - unit: no network, pure logic and the in-memory test driver;
// - integration: the real embedded stack (broker, DynamoDB Local, Lambda endpoint),
//   started once by the global setup and shared through provided endpoints;
// - cdk: assertions on synthesized CloudFormation templates.
export default defineConfig({
  resolve: { alias: PUBLIC_ENTRIES },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          // Integration files share one stack; running them in parallel on two cores
          // only adds contention, so files run one after another.
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'cdk',
          include: ['test/cdk/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
        },
      },
    ],
  },
});
