import type { TestProject } from 'vitest/node';
import { defaultApacheKafkaCacheDir, startLocalStack, type LocalStackOptions } from '../../local/index.ts';
import { chooseTestKafka, type TestKafkaChoice } from './fixtures/test-kafka.ts';

/**
 * Endpoints of the one stack shared by every integration test file.
 * Tests read it with `inject('stack')` (or through the helpers in `helpers.ts`).
 */
export interface ProvidedStack {
  /** Broker list, e.g. `['127.0.0.1:40123']`. */
  readonly kafkaBrokers: string[];
  /** Which broker the suite runs against: `apache`, `embedded` or `external` (`KAFKA_BROKERS`). */
  readonly kafkaKind: TestKafkaChoice['kind'];
  /** Apache Kafka's version when `kafkaKind` is `apache`. */
  readonly kafkaVersion?: string;
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
 * Starts ONE stack (in-memory DynamoDB Local, the Lambda endpoint serving `functions/handlers`
 * and the broker {@link chooseTestKafka} picks) for the whole integration run, and stops it
 * when the run ends. Prints one line saying which broker the suite runs against.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const verbose = process.env.TRIBUTARY_STACK_LOG === '1';
  const choice = chooseTestKafka(process.env);
  const kafka: LocalStackOptions['kafka'] = choice.kind === 'external' ? { brokers: choice.brokers } : choice.kind;
  const stack = await startLocalStack({
    kafka,
    functionsDir: new URL('../../functions/handlers', import.meta.url).pathname,
    // Keep the test output quiet, except for the first resolution of Apache Kafka, which can take a while.
    log: verbose ? (line) => console.log(`[stack] ${line}`) : (line) => (/resolv/.test(line) ? console.log(`[stack] ${line}`) : undefined),
  });
  const version = stack.kafka.kind === 'apache' ? stack.kafka.version : undefined;
  console.log(
    `[integration] Kafka: ${stack.kafka.kind}${version ? ` ${version}` : ''} at ${stack.kafka.brokers.join(',')} (${choice.reason}); ` +
      `Node ${process.version}; stack up in ${Date.now() - started} ms` +
      (stack.kafka.kind === 'apache' ? `; broker cache ${defaultApacheKafkaCacheDir()}` : ''),
  );
  project.provide('stack', {
    kafkaBrokers: [...stack.kafka.brokers],
    kafkaKind: stack.kafka.kind,
    ...(version ? { kafkaVersion: version } : {}),
    dynamodbEndpoint: stack.dynamodb.endpoint,
    lambdaEndpoint: stack.lambda.endpoint,
    region: stack.region,
  });
  return async () => {
    await stack.stop();
  };
}
