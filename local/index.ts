/**
 * The embedded local stack — a Kafka-protocol broker, DynamoDB Local and a Lambda Invoke API
 * endpoint — that `npm run dev`, the integration tests and the benchmark run against.
 * **For development and tests only, never production.**
 */

// The whole stack
export { startLocalStack } from './internal/stack.ts';
export type { LocalStack, LocalStackOptions, LocalStackPorts, LocalDynamoDb, LocalKafka, LocalKafkaKind, ExternalKafka } from './internal/stack.ts';

// Kafka-protocol broker
export { startKafkaBroker } from './internal/kafka/index.ts';
export type { KafkaBroker, KafkaBrokerOptions } from './internal/kafka/index.ts';

// Apache Kafka (a real single-node broker, resolved from Maven Central)
export { startApacheKafka, DEFAULT_APACHE_KAFKA_JVM_ARGS } from './internal/apache-kafka/broker.ts';
export type { ApacheKafka, ApacheKafkaOptions } from './internal/apache-kafka/broker.ts';
export { resolveApacheKafka, apacheKafkaPrerequisites, defaultCacheDir as defaultApacheKafkaCacheDir, APACHE_KAFKA_POM } from './internal/apache-kafka/resolve.ts';
export type { ResolveApacheKafkaOptions, ResolvedApacheKafka } from './internal/apache-kafka/resolve.ts';

// DynamoDB Local
export { startDynamoDbLocal, DEFAULT_DYNAMODB_JVM_ARGS } from './internal/dynamodb/dynamodb-local.ts';
export type { DynamoDbLocal, DynamoDbLocalOptions } from './internal/dynamodb/dynamodb-local.ts';

// Lambda Invoke API endpoint
export {
  startLambdaEndpoint,
  DEFAULT_LAMBDA_TIMEOUT_MS,
  DEFAULT_MAX_CONCURRENCY,
  MAX_SYNC_REQUEST_BYTES,
  MAX_ASYNC_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
} from './internal/lambda/endpoint.ts';
export type { LambdaEndpoint, LambdaEndpointOptions, LocalFunctionOptions } from './internal/lambda/endpoint.ts';
export type { LambdaContext, LocalHandler, LambdaCallback } from './internal/lambda/context.ts';

// WebSocket API emulator (live subscriptions)
export { startWebSocketApi, MAX_FRAME_BYTES, DEFAULT_MAX_QUEUED_MESSAGES, DEFAULT_MAX_QUEUED_BYTES } from './internal/websocket/emulator.ts';
export type { WebSocketApi, WebSocketApiOptions, WebSocketApiStats } from './internal/websocket/emulator.ts';

// Errors
export { LocalStackError } from './internal/errors.ts';
export type { LocalStackErrorCode, LocalStackErrorContext } from './internal/errors.ts';

// Views table (as the CDK app deploys it)
export { DEFAULT_TABLE_ACTIVE_TIMEOUT_MS, ensureViewsTable, viewsTableInput } from './internal/tables.ts';
export type { EnsureViewsTableOptions } from './internal/tables.ts';

// Seed modules of `tributary dev --seed` (example events while the app runs)
export type { Seed, SeedContext, SeedEvent } from './internal/seed.ts';
