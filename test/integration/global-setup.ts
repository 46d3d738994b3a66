import type { TestProject } from 'vitest/node';
import { startLocalStack } from '../../local/index.ts';

/**
 * Endpoints of the one embedded stack shared by every integration test file.
 * Tests read it with `inject('stack')` (or through the helpers in `helpers.ts`).
 */
export interface ProvidedStack {
  /** Broker list of the embedded Kafka-protocol broker, e.g. `['127.0.0.1:40123']`. */
  readonly kafkaBrokers: string[];
  /** DynamoDB Local endpoint, e.g. `http://127.0.0.1:40124`. */
  readonly dynamodbEndpoint: string;
  /** Lambda Invoke API endpoint of the embedded stack, e.g. `http://127.0.0.1:40125`. */
  readonly lambdaEndpoint: string;
  /** AWS region the stack's clients should use. */
  readonly region: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: ProvidedStack;
  }
}

/**
 * Starts ONE embedded stack (in-memory DynamoDB Local, a broker in a temporary directory and
 * the Lambda endpoint serving `functions/handlers`) for the whole integration run, and stops
 * it when the run ends.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const stack = await startLocalStack({
    functionsDir: new URL('../../functions/handlers', import.meta.url).pathname,
    // Keep the test output quiet; failures still throw with their own message.
    log: process.env.TRIBUTARY_STACK_LOG === '1' ? (line) => console.log(`[stack] ${line}`) : () => {},
  });
  if (process.env.TRIBUTARY_STACK_LOG === '1') {
    console.log(`[stack] started in ${Date.now() - started} ms`);
  }
  project.provide('stack', {
    kafkaBrokers: [...stack.kafka.brokers],
    dynamodbEndpoint: stack.dynamodb.endpoint,
    lambdaEndpoint: stack.lambda.endpoint,
    region: stack.region,
  });
  return async () => {
    await stack.stop();
  };
}
