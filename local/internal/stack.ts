import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDynamoDbLocal, type DynamoDbLocal, type DynamoDbLocalOptions } from './dynamodb/dynamodb-local.ts';
import { LocalStackError } from './errors.ts';
import { startApacheKafka, type ApacheKafka, type ApacheKafkaOptions } from './apache-kafka/broker.ts';
import { startKafkaBroker, type KafkaBroker, type KafkaBrokerOptions } from './kafka/index.ts';
import type { LocalHandler } from './lambda/context.ts';
import { startLambdaEndpoint, type LambdaEndpoint, type LambdaEndpointOptions } from './lambda/endpoint.ts';
import { startWebSocketApi, type WebSocketApi, type WebSocketApiOptions } from './websocket/emulator.ts';
import { ENV, LIVE_FUNCTIONS, LIVE_ROUTES } from '../../sdk/contract/index.ts';

/** Ports of the stack's three servers; 0 picks a free one. */
export interface LocalStackPorts {
  /** @default 0 */
  kafka?: number;
  /** @default 0 */
  dynamodb?: number;
  /** @default 0 */
  lambda?: number;
  /** The WebSocket API emulator (live subscriptions). @default 0 */
  live?: number;
}

/** Which Kafka broker a local stack runs. */
export type LocalKafkaKind = 'embedded' | 'apache';

/** Brokers the stack does not run (a cluster of your own, LocalStack's, MSK through a tunnel). */
export interface ExternalKafka {
  readonly kind: 'external';
  readonly brokers: string[];
  /** Does nothing: the stack did not start these brokers. */
  stop(): Promise<void>;
}

/** The Kafka part of a running stack: the embedded broker, a real Apache Kafka, or brokers given to it. */
export type LocalKafka = KafkaBroker | ApacheKafka | ExternalKafka;

/** Options of {@link startLocalStack}. Development and tests only. */
export interface LocalStackOptions {
  /**
   * The broker: `'embedded'`, the Kafka-protocol broker written in TypeScript (starts in
   * milliseconds, needs nothing installed), or `'apache'`, a real single-node Apache Kafka
   * resolved from Maven Central on first use (needs Java 17+, and Maven for the first
   * resolution; see `startApacheKafka`). `{ brokers }` starts no broker and hands those
   * brokers to clients instead.
   * @default 'embedded'
   */
  kafka?: LocalKafkaKind | { readonly brokers: readonly string[] };
  /**
   * Persistent data directory: the embedded broker's logs go to `<dataDir>/kafka` (Apache Kafka's to
   * `<dataDir>/apache-kafka`), DynamoDB Local's database
   * to `<dataDir>/dynamodb`, so `npm run dev` keeps topics and tables across restarts. Unset,
   * the broker uses a temporary directory removed by `stop()` and DynamoDB Local runs in memory.
   * @default undefined (ephemeral)
   */
  dataDir?: string;
  /**
   * Fixed ports, e.g. `{ kafka: 9092, dynamodb: 8000, lambda: 3001 }` for `npm run dev`.
   * @default all 0 (random free ports, so parallel runs never collide)
   */
  ports?: LocalStackPorts;
  /**
   * Loopback host of every endpoint.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * Region handed to clients through `env.AWS_REGION` and used in Lambda ARNs.
   * @default 'us-east-1'
   */
  region?: string;
  /**
   * Directory of Lambda handler modules (`<dir>/<name>.ts` exporting `handler`).
   * @default undefined (only `functions`)
   */
  functionsDir?: string;
  /**
   * Lambda handlers registered by name.
   * @default {}
   */
  functions?: Record<string, LocalHandler>;
  /**
   * Further options of the embedded broker (`autoCreateTopics`, `defaultPartitions`, ...).
   * @default {}
   */
  embeddedKafka?: Omit<KafkaBrokerOptions, 'host' | 'port' | 'dataDir' | 'log'>;
  /**
   * Further options of Apache Kafka (`brokerConfig`, `cacheDir`, `jvmArgs`, ...).
   * @default {}
   */
  apacheKafka?: Omit<ApacheKafkaOptions, 'host' | 'port' | 'dataDir' | 'log'>;
  /**
   * Further DynamoDB Local options (`jvmArgs`, `startTimeoutMs`, `javaCommand`).
   * @default {}
   */
  dynamodb?: Omit<DynamoDbLocalOptions, 'host' | 'port' | 'dataDir' | 'log'>;
  /**
   * Further Lambda endpoint options (`timeoutMs`, `maxConcurrency`, ...).
   * @default {}
   */
  lambda?: Omit<LambdaEndpointOptions, 'host' | 'port' | 'functions' | 'functionsDir' | 'region' | 'log'>;
  /**
   * The WebSocket API emulator of live subscriptions (routes, authorizer, queue bounds); its
   * routes invoke the live functions on the stack's Lambda endpoint (register them with
   * `registerLiveHandlers` from `tributary/live`). `false` starts none.
   * @default the live routes (`LIVE_ROUTES`) and authorizer (`tributary-live-authorizer`)
   */
  live?: false | Omit<WebSocketApiOptions, 'lambdaEndpoint' | 'host' | 'port' | 'region' | 'log'>;
  /**
   * Receives the stack's lifecycle lines and its parts' lines (prefixed `kafka:`,
   * `dynamodb:`, `lambda:`).
   * @default lines to stderr prefixed `[tributary-local]`
   */
  log?: (line: string) => void;
}

/** The DynamoDB part of a running stack. */
export interface LocalDynamoDb {
  /** For `AWS_ENDPOINT_URL_DYNAMODB`. */
  readonly endpoint: string;
  readonly port: number;
  /** Milliseconds the JVM took to answer its first request. */
  readonly startupMs: number;
  stop(): Promise<void>;
}

/** A running embedded stack: broker, DynamoDB Local and the Lambda Invoke API endpoint. */
export interface LocalStack {
  /** The broker; `kafka.kind` says which one. */
  readonly kafka: LocalKafka;
  readonly dynamodb: LocalDynamoDb;
  readonly lambda: LambdaEndpoint;
  /**
   * The WebSocket API emulator: `url` for clients, `managementEndpoint` for the `@connections`
   * API (also `env.TRIBUTARY_LIVE_ENDPOINT`); undefined with `live: false`.
   */
  readonly live: WebSocketApi | undefined;
  readonly region: string;
  /** Where data lives; a temporary directory when ephemeral. */
  readonly dataDir: string;
  /** True when `dataDir` is temporary and removed by `stop()`. */
  readonly ephemeral: boolean;
  /**
   * Standard configuration for clients of the stack (engine, functions, SDK, scripts):
   * `KAFKA_BROKERS`, `AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_LAMBDA` and
   * dummy `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
   */
  readonly env: Readonly<Record<string, string>>;
  /** Stops all three parts (and removes an ephemeral data directory). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Dummy credentials: the local servers accept any, the AWS SDK insists on some. DynamoDB Local
 * only accepts access key ids made of letters and digits.
 */
const LOCAL_ACCESS_KEY_ID = 'local';
const LOCAL_SECRET_ACCESS_KEY = 'local';

const DEV_ONLY_NOTICE = 'local stack for development and tests only, NOT for production';

/**
 * Starts the embedded stack — a Kafka-protocol broker, DynamoDB Local and the Lambda Invoke API
 * endpoint — in parallel and returns their endpoints and the `env` that points standard clients
 * at them. If one part fails to start, the others are stopped and a `LocalStackError`
 * (`STACK_START_FAILED`) says which part failed and why.
 *
 * **For development and tests only — never production.** The broker is a single node with no
 * replication or security, DynamoDB Local is an emulator, and Lambda handlers run in this
 * process.
 *
 * @example
 * const stack = await startLocalStack({ functionsDir: 'functions/handlers' });
 * Object.assign(process.env, stack.env);   // engine and SDK now talk to the stack
 * // ...
 * await stack.stop();
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[tributary-local] ${line}\n`));
  const host = options.host ?? '127.0.0.1';
  const region = options.region ?? 'us-east-1';
  const ephemeral = options.dataDir === undefined;
  const dataDir = ephemeral ? mkdtempSync(path.join(tmpdir(), 'tributary-stack-')) : path.resolve(options.dataDir as string);
  const removeTemp = (): void => {
    if (ephemeral) rmSync(dataDir, { recursive: true, force: true });
  };
  if (ephemeral) process.on('exit', removeTemp);
  const started = Date.now();
  log(`starting ${DEV_ONLY_NOTICE} (data: ${ephemeral ? `temporary ${dataDir}` : dataDir})`);

  const kafkaChoice = options.kafka ?? 'embedded';
  const kafkaKind = typeof kafkaChoice === 'object' && kafkaChoice !== null ? 'external' : kafkaChoice;
  if (kafkaKind === 'external' && (typeof kafkaChoice !== 'object' || !Array.isArray(kafkaChoice.brokers) || kafkaChoice.brokers.length === 0)) {
    removeTemp();
    process.off('exit', removeTemp);
    throw new LocalStackError('INVALID_OPTION', `local stack: kafka.brokers must be a non-empty list of host:port, got ${JSON.stringify(kafkaChoice)}`, {
      context: { component: 'kafka' },
    });
  }
  if (kafkaKind !== 'embedded' && kafkaKind !== 'apache' && kafkaKind !== 'external') {
    removeTemp();
    process.off('exit', removeTemp);
    throw new LocalStackError('INVALID_OPTION', `local stack: kafka must be 'embedded' or 'apache', got ${JSON.stringify(kafkaKind)}`, {
      context: { component: 'kafka' },
    });
  }
  const startKafka = async (): Promise<LocalKafka> =>
    typeof kafkaChoice === 'object'
      ? { kind: 'external', brokers: [...kafkaChoice.brokers], stop: async () => {} }
      : kafkaKind === 'apache'
      ? startApacheKafka({
          ...options.apacheKafka,
          host,
          port: options.ports?.kafka ?? 0,
          // Apache Kafka's storage format is its own; it never shares a folder with the embedded broker's.
          dataDir: path.join(dataDir, 'apache-kafka'),
          log: (line) => log(`kafka: ${line}`),
        })
      : startKafkaBroker({
          ...options.embeddedKafka,
          host,
          port: options.ports?.kafka ?? 0,
          dataDir: path.join(dataDir, 'kafka'),
          log: (line) => log(`kafka: ${line}`),
        });

  const parts = await Promise.allSettled([
    startKafka(),
    startDynamoDbLocal({
      ...options.dynamodb,
      host,
      port: options.ports?.dynamodb ?? 0,
      ...(ephemeral ? {} : { dataDir: path.join(dataDir, 'dynamodb') }),
      log,
    }),
    startLambdaEndpoint({
      ...options.lambda,
      host,
      port: options.ports?.lambda ?? 0,
      region,
      ...(options.functions ? { functions: options.functions } : {}),
      ...(options.functionsDir ? { functionsDir: options.functionsDir } : {}),
      log,
    }),
  ] as const);
  const [kafkaResult, dynamoResult, lambdaResult] = parts;

  if (kafkaResult.status === 'rejected' || dynamoResult.status === 'rejected' || lambdaResult.status === 'rejected') {
    const names = ['kafka', 'dynamodb', 'lambda'] as const;
    const failures = parts.flatMap((part, i) => (part.status === 'rejected' ? [{ component: names[i]!, error: part.reason as unknown }] : []));
    await Promise.allSettled(parts.map((part) => (part.status === 'fulfilled' ? part.value.stop() : undefined)));
    if (ephemeral) {
      await rm(dataDir, { recursive: true, force: true });
      process.off('exit', removeTemp);
    }
    const detail = failures
      .map(({ component, error }) => `${component}: ${error instanceof Error ? error.message : String(error)}`)
      .join('\n');
    throw new LocalStackError('STACK_START_FAILED', `local stack failed to start; the parts that did start were stopped.\n${detail}`, {
      context: { component: failures[0]!.component, dataDir, failed: failures.map((f) => f.component) },
      cause: failures.length === 1 ? failures[0]!.error : new AggregateError(failures.map((f) => f.error)),
    });
  }

  const kafka = kafkaResult.value;
  const dynamo: DynamoDbLocal = dynamoResult.value;
  const lambda = lambdaResult.value;
  let live: WebSocketApi | undefined;
  if (options.live !== false) {
    try {
      live = await startWebSocketApi({
        routes: LIVE_ROUTES,
        authorizer: LIVE_FUNCTIONS.authorizer,
        ...options.live,
        lambdaEndpoint: lambda.endpoint,
        host,
        port: options.ports?.live ?? 0,
        region,
        log,
      });
    } catch (error) {
      await Promise.allSettled([kafka.stop(), dynamo.stop(), lambda.stop()]);
      if (ephemeral) {
        await rm(dataDir, { recursive: true, force: true });
        process.off('exit', removeTemp);
      }
      throw new LocalStackError('STACK_START_FAILED', `local stack failed to start; the parts that did start were stopped.\nlive: ${(error as Error).message}`, {
        context: { component: 'stack', dataDir, failed: ['live'] },
        cause: error,
      });
    }
  }
  const env: Record<string, string> = {
    KAFKA_BROKERS: kafka.brokers.join(','),
    AWS_REGION: region,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_ENDPOINT_URL_LAMBDA: lambda.endpoint,
    AWS_ACCESS_KEY_ID: LOCAL_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: LOCAL_SECRET_ACCESS_KEY,
    ...(live !== undefined ? { [ENV.liveEndpoint]: live.managementEndpoint } : {}),
  };
  log(
    `ready in ${Date.now() - started} ms (DynamoDB Local JVM: ${dynamo.startupMs} ms): ` +
      `kafka (${kafka.kind}${kafka.kind === 'apache' ? ` ${kafka.version}` : ''}) ${kafka.brokers.join(',')}, dynamodb ${dynamo.endpoint}, lambda ${lambda.endpoint}${live !== undefined ? `, live ${live.url}` : ''} — ${DEV_ONLY_NOTICE}`,
  );

  let stopping: Promise<void> | undefined;
  return {
    kafka,
    dynamodb: { endpoint: dynamo.endpoint, port: dynamo.port, startupMs: dynamo.startupMs, stop: () => dynamo.stop() },
    lambda,
    live,
    region,
    dataDir,
    ephemeral,
    env: Object.freeze(env),
    stop(): Promise<void> {
      stopping ??= (async () => {
        // The WebSocket API first: its $disconnect routes still reach the Lambda endpoint.
        const closed = await Promise.allSettled([live?.stop()]);
        const results = [...closed, ...(await Promise.allSettled([kafka.stop(), dynamo.stop(), lambda.stop()]))];
        if (ephemeral) {
          await rm(dataDir, { recursive: true, force: true });
          process.off('exit', removeTemp);
        }
        const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
        if (errors.length > 0) {
          throw new LocalStackError(
            'STOP_FAILED',
            `local stack: ${errors.length} part(s) failed to stop: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')}`,
            { context: { component: 'stack' }, cause: errors.length === 1 ? errors[0] : new AggregateError(errors) },
          );
        }
        log('stopped');
      })();
      return stopping;
    },
  };
}
