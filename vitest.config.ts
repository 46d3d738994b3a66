import { defineConfig } from 'vitest/config';

// Three projects, one per kind of test (see README.md "Tests"):
// - unit: no network, pure logic and the in-memory test driver;
// - integration: the real embedded stack (broker, DynamoDB Local, Lambda endpoint),
//   started once by the global setup and shared through provided endpoints;
// - cdk: assertions on synthesized CloudFormation templates.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
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
