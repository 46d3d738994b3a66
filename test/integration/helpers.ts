import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { Kafka, logLevel } from 'kafkajs';
import { inject } from 'vitest';
import type { ProvidedStack } from './global-setup.ts';
import { ensureViewsTable } from '../../local/index.ts';

export type { ProvidedStack } from './global-setup.ts';

/** Dummy credentials: the embedded stack accepts any letters-and-digits key (DynamoDB Local rejects other characters). */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' } as const;

/** Endpoints of the shared embedded stack started by `global-setup.ts`. */
export function stack(): ProvidedStack {
  const provided = inject('stack') as ProvidedStack | undefined;
  if (!provided) {
    throw new Error('no shared stack was provided; run integration tests with `vitest --project integration` (global-setup.ts starts it)');
  }
  return provided;
}

/**
 * A name unique to this test run, safe for Kafka topics, consumer groups and DynamoDB tables
 * (letters, digits, `-`, 3..255 chars).
 *
 * @example
 * const topic = uniqueName('bookings'); // "bookings-m3k1x0-4f9a1c"
 */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /**
   * How long to keep polling before failing.
   * @default 10_000 — long enough for a batch to flow through broker, engine and DynamoDB Local on
   * a loaded 2-core CI machine, short enough that a broken test fails quickly.
   */
  timeoutMs?: number;
  /**
   * Pause between two polls.
   * @default 50 — frequent enough to keep tests fast, rare enough not to load DynamoDB Local.
   */
  intervalMs?: number;
  /**
   * What was being waited for; goes into the timeout error.
   * @default 'condition'
   */
  message?: string;
}

const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
const DEFAULT_WAIT_INTERVAL_MS = 50;

/** Thrown by {@link waitFor} when the deadline passes. */
export class WaitForTimeoutError extends Error {
  override readonly name = 'WaitForTimeoutError';
  readonly code = 'WAIT_TIMEOUT';
  readonly retriable = false;
  constructor(
    message: string,
    readonly lastValue: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Polls `condition` until it returns a truthy value (returned) or the deadline passes
 * (throws {@link WaitForTimeoutError} naming `message`, the last value and the last error).
 * A throwing condition counts as "not yet"; its last error becomes the `cause`.
 *
 * @example
 * const item = await waitFor(async () => (await ddb.send(new GetItemCommand(q))).Item,
 *   { timeoutMs: 5_000, message: 'view item for key "42"' });
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? DEFAULT_WAIT_INTERVAL_MS;
  const what = options.message ?? 'condition';
  const deadline = Date.now() + timeoutMs;
  let lastValue: unknown;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as Exclude<T, false | 0 | '' | null | undefined>;
      lastValue = value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
  const detail =
    lastError !== undefined
      ? `last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`
      : `last value: ${safeJson(lastValue)}`;
  throw new WaitForTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what} (${detail})`, lastValue, {
    cause: lastError,
  });
}

function safeJson(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return String(value);
    return text.length > 500 ? `${text.slice(0, 500)}…` : text;
  } catch {
    return String(value);
  }
}

/**
 * The standard environment variables (docs/architecture.md, "Local stack") pointing at the
 * shared stack:
 * `KAFKA_BROKERS`, `AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_LAMBDA`,
 * dummy `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
 *
 * @example
 * const child = spawn('npx', ['tsx', 'engine/main.ts'], { env: { ...process.env, ...stackEnv(), TRIBUTARY_TABLE: table } });
 */
export function stackEnv(): Record<string, string> {
  const s = stack();
  return {
    KAFKA_BROKERS: s.kafkaBrokers.join(','),
    AWS_REGION: s.region,
    AWS_ENDPOINT_URL_DYNAMODB: s.dynamodbEndpoint,
    AWS_ENDPOINT_URL_LAMBDA: s.lambdaEndpoint,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
  };
}

/**
 * A DynamoDB client for the shared stack's DynamoDB Local.
 *
 * @example
 * const ddb = dynamoClient();
 * await ddb.send(new ListTablesCommand({}));
 */
export function dynamoClient(): DynamoDBClient {
  const s = stack();
  return new DynamoDBClient({ endpoint: s.dynamodbEndpoint, region: s.region, credentials: LOCAL_CREDENTIALS });
}

/**
 * A Lambda client for the shared stack's Lambda Invoke API endpoint (or another endpoint,
 * e.g. one a test started itself with `startLambdaEndpoint`).
 *
 * @example
 * const res = await lambdaClient().send(new InvokeCommand({ FunctionName: 'notifyInstructor', Payload: '{}' }));
 */
export function lambdaClient(endpoint?: string): LambdaClient {
  // A test's own endpoint needs no shared stack (the Lambda tests also run without one).
  const s = endpoint === undefined ? stack() : (inject('stack') as ProvidedStack | undefined);
  return new LambdaClient({
    endpoint: endpoint ?? s?.lambdaEndpoint,
    region: s?.region ?? 'us-east-1',
    credentials: LOCAL_CREDENTIALS,
    // A local endpoint either answers or is broken; SDK retries would only hide failures.
    maxAttempts: 1,
  });
}

/**
 * Creates a views table with the standard layout (partition key `pk` S, sort key `sk` S,
 * PAY_PER_REQUEST) in the shared DynamoDB Local and returns once it is ACTIVE.
 *
 * @example
 * const table = await createTable(uniqueName('views'));
 */
export async function createTable(name: string, client: DynamoDBClient = dynamoClient()): Promise<string> {
  await ensureViewsTable(client, name, { timeoutMs: 15_000 });
  return name;
}

/**
 * Creates a topic on the given broker (a broker list or a kafkajs `Kafka`) and waits until
 * its metadata lists every partition. Defaults to the shared stack's broker.
 *
 * @example
 * const topic = await createTopic(stack().kafkaBrokers, uniqueName('bookings'), 3);
 */
export async function createTopic(
  kafka: string[] | Kafka = stack().kafkaBrokers,
  name: string,
  partitions = 1,
): Promise<string> {
  const client = Array.isArray(kafka)
    ? new Kafka({ clientId: 'test-admin', brokers: kafka, logLevel: logLevel.NOTHING })
    : kafka;
  const admin = client.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: name, numPartitions: partitions }], waitForLeaders: true });
    await waitFor(
      async () => {
        const metadata = await admin.fetchTopicMetadata({ topics: [name] });
        return metadata.topics[0]?.partitions.length === partitions;
      },
      { timeoutMs: 10_000, message: `topic "${name}" with ${partitions} partitions` },
    );
  } finally {
    await admin.disconnect();
  }
  return name;
}
