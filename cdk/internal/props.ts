import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { App } from '../../sdk/index.ts';
import { DeploymentError } from './errors.ts';
import { resolveLiveProps, type ResolvedLiveProps, type TributaryLiveProps } from './live.ts';

/** Log levels of the engine (`TRIBUTARY_LOG_LEVEL`). */
export type EngineLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** How the engine authenticates to Kafka; the value of the engine's `KAFKA_AUTH`. */
export type KafkaAuth = 'none' | 'scram-sha-512' | 'msk-iam';

/**
 * Where the engine's Kafka is and how it logs in. Either an existing MSK cluster with IAM auth
 * (`mskClusterArn`), or external brokers, usually with SASL/SCRAM over TLS (`scramSecret`).
 */
export interface TributaryKafkaProps {
  /**
   * Bootstrap brokers, `host:port` each. For MSK with IAM auth, the IAM listener
   * (port 9098; `aws kafka get-bootstrap-brokers --cluster-arn ...` prints them).
   */
  readonly brokers: readonly string[];
  /**
   * ARN of an existing MSK cluster (`arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>`).
   * The engine then authenticates with IAM and its role gets `kafka-cluster:*` actions scoped to
   * this cluster, the app's topics and its consumer group.
   * @default - not MSK: external brokers
   */
  readonly mskClusterArn?: string;
  /**
   * Secrets Manager secret holding `{"username": "...", "password": "..."}` for SASL/SCRAM-SHA-512.
   * ECS injects both fields as `KAFKA_SASL_USERNAME` / `KAFKA_SASL_PASSWORD` secrets, never plain env vars.
   * @default - no SCRAM credentials
   */
  readonly scramSecret?: secretsmanager.ISecret;
  /**
   * Authentication mechanism.
   * @default - `msk-iam` with `mskClusterArn`, `scram-sha-512` with `scramSecret`, else `none`
   */
  readonly auth?: KafkaAuth;
  /**
   * Whether the engine connects with TLS.
   * @default - true unless `auth` is `none`
   */
  readonly tls?: boolean;
  /**
   * Security group of the brokers. When set, the construct allows the engine's security group in,
   * on the ports of `brokers`.
   * @default - no rule is added; open the brokers to `TributaryApp.engineSecurityGroup` yourself
   */
  readonly securityGroup?: ec2.ISecurityGroup;
}

/** Props of {@link TributaryApp}. */
export interface TributaryAppProps {
  /** The app to deploy: the `defineApp()` result (e.g. `app` from `functions/app.ts`). */
  readonly app: App;
  /** Kafka connection of the engine. */
  readonly kafka: TributaryKafkaProps;
  /**
   * Partitions of the app's source topics (the largest count if they differ). A consumer group
   * assigns each partition to one task, so tasks beyond the partition count sit idle: this caps
   * the engine's task count.
   */
  readonly partitionCount: number;
  /**
   * Fewest engine tasks.
   * @default 1
   */
  readonly minTasks?: number;
  /**
   * Most engine tasks; autoscaling on consumer lag stays within `minTasks..maxTasks`.
   * @default - `partitionCount`
   */
  readonly maxTasks?: number;
  /**
   * Consumer lag per task (records) that autoscaling tracks: more lag adds tasks, less removes them.
   * @default 10000
   */
  readonly targetLagPerTask?: number;
  /**
   * Consumer lag (records, highest task) that raises the lag alarm when held for 5 minutes.
   * @default 100000
   */
  readonly lagAlarmThreshold?: number;
  /**
   * Consumer group of the engine (`TRIBUTARY_GROUP_ID`); also scopes the MSK IAM group permissions.
   * @default - `app.name` (one consumer group per app, the engine's own default)
   */
  readonly consumerGroup?: string;
  /**
   * VPC of the engine tasks.
   * @default - a new VPC with 2 AZs, public and private subnets and one NAT gateway
   */
  readonly vpc?: ec2.IVpc;
  /**
   * Subnets of the engine tasks.
   * @default - the VPC's private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * Security groups of the engine tasks.
   * @default - one new security group allowing all egress and no ingress
   */
  readonly securityGroups?: readonly ec2.ISecurityGroup[];
  /**
   * Engine task CPU units (Fargate combinations apply).
   * @default 512
   */
  readonly cpu?: number;
  /**
   * Engine task memory in MiB.
   * @default 1024
   */
  readonly memoryLimitMiB?: number;
  /**
   * Time the engine gets after SIGTERM to commit what is durable and leave the group
   * before ECS kills it (Fargate allows at most 120 s).
   * @default Duration.seconds(60)
   */
  readonly stopTimeout?: Duration;
  /**
   * Engine image, for an image built elsewhere (e.g. `ecs.ContainerImage.fromDockerImageAsset`
   * of a `DockerImageAsset` of your own). Then `engineDockerfile` is not used.
   * @default - built from `engineDockerfile` with `projectRoot` as the build context
   */
  readonly engineImage?: ecs.ContainerImage;
  /**
   * Project root: the Docker build context of the engine image (its package.json and lockfile
   * are installed there), the base of `appModule`, `handlersDir` and `engineDockerfile`, and the
   * project root of the functions' bundling.
   * @default - the current directory (where `cdk synth` runs, next to cdk.json)
   */
  readonly projectRoot?: string;
  /**
   * @deprecated use `projectRoot`, which means the same.
   * @default - see `projectRoot`
   */
  readonly repoRoot?: string;
  /**
   * Dockerfile of the engine image, relative to `projectRoot`. The default one, shipped in the
   * package, runs `npm ci` on the project and bundles the installed engine with `appModule`.
   * @default - the package's `dist/engine/app.Dockerfile` (under `node_modules/tributary/`)
   */
  readonly engineDockerfile?: string;
  /**
   * Module exporting `app`, relative to `projectRoot`; bundled into the engine image
   * (Docker build arg `APP_MODULE`). Must be the module `app` comes from.
   * @default 'functions/app.ts'
   */
  readonly appModule?: string;
  /**
   * Directory of the Lambda handlers, relative to `projectRoot`: one function per `<name>.ts`
   * exporting `handler`; `<name>` is the logical name triggers use.
   * @default 'functions/handlers'
   */
  readonly handlersDir?: string;
  /**
   * Memory of each function in MB.
   * @default 256
   */
  readonly functionMemorySize?: number;
  /**
   * Timeout of each function.
   * @default Duration.seconds(30)
   */
  readonly functionTimeout?: Duration;
  /**
   * Retention of the engine's and the functions' log groups.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the views table when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly tableRemovalPolicy?: RemovalPolicy;
  /**
   * Topic notified when an alarm fires or recovers.
   * @default - alarms have no actions (visible in the CloudWatch console)
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Engine log level (`TRIBUTARY_LOG_LEVEL`).
   * @default 'info'
   */
  readonly logLevel?: EngineLogLevel;
  /**
   * Live subscriptions: an API Gateway WebSocket API for the app's live views
   * (`defineView({ live })`), with its authorizer. Required when the app has a live view,
   * refused when it has none.
   * @default - no WebSocket API (the app must have no live view)
   */
  readonly live?: TributaryLiveProps;
}

/** One task is enough for a quiet app; autoscaling adds more on lag. */
export const DEFAULT_MIN_TASKS = 1;
/** A few seconds of catch-up per task at typical fold rates; scale out well before lag hurts. */
export const DEFAULT_TARGET_LAG_PER_TASK = 10_000;
/** Ten times the per-task target: autoscaling could not keep up, a human should look. */
export const DEFAULT_LAG_ALARM_THRESHOLD = 100_000;
/** 0.5 vCPU: the engine is I/O bound (Kafka fetches, DynamoDB writes, Lambda calls). */
export const DEFAULT_CPU = 512;
/** Room for the bounded state cache and in-flight batches at 0.5 vCPU. */
export const DEFAULT_MEMORY_MIB = 1024;
/** Enough to finish an in-flight batch, commit and leave the group; Fargate caps it at 120 s. */
export const DEFAULT_STOP_TIMEOUT = Duration.seconds(60);
/** Fargate's hard limit for stopTimeout. */
export const MAX_STOP_TIMEOUT_SECONDS = 120;
/** Handlers read a few items and call out; 256 MB keeps cold starts short. */
export const DEFAULT_FUNCTION_MEMORY_MB = 256;
/** Well under the engine's retry budget, long enough for a slow downstream call. */
export const DEFAULT_FUNCTION_TIMEOUT = Duration.seconds(30);
/** A month of logs covers most incident look-backs without unbounded cost. */
export const DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_MONTH;
/** The module `npm run dev` and the engine load by default (`TRIBUTARY_APP_MODULE`, docs/architecture.md). */
export const DEFAULT_APP_MODULE = 'functions/app.ts';
/** Handler files by logical function name (docs/architecture.md, "Definitions"). */
export const DEFAULT_HANDLERS_DIR = 'functions/handlers';
/** Port the engine serves `/health` on (`TRIBUTARY_HEALTH_PORT`). */
export const ENGINE_HEALTH_PORT = 8080;

/** The root of this package's sources (or of its `dist/`): `cdk/internal/` is two levels below it. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The engine Dockerfile the package ships for apps outside this repository (`engine/app.Dockerfile`). */
export const SHIPPED_ENGINE_DOCKERFILE = path.join(REPO_ROOT, 'engine', 'app.Dockerfile');

/** Props after validation and defaults; what the construct builds from. */
export interface ResolvedProps {
  readonly app: App;
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly mskClusterArn: string | undefined;
    readonly scramSecret: secretsmanager.ISecret | undefined;
    readonly auth: KafkaAuth;
    readonly tls: boolean;
    readonly securityGroup: ec2.ISecurityGroup | undefined;
    /** Ports of literal `brokers`, for the broker security group rule. */
    readonly ports: readonly number[];
  };
  readonly partitionCount: number;
  readonly minTasks: number;
  readonly maxTasks: number;
  readonly targetLagPerTask: number;
  readonly lagAlarmThreshold: number;
  /** The app's dead-letter topic: the engine writes poison records and undeliverable changes there. */
  readonly deadLetterTopic: string;
  readonly consumerGroup: string;
  readonly vpc: ec2.IVpc | undefined;
  readonly vpcSubnets: ec2.SubnetSelection | undefined;
  readonly securityGroups: readonly ec2.ISecurityGroup[] | undefined;
  readonly cpu: number;
  readonly memoryLimitMiB: number;
  readonly stopTimeout: Duration;
  readonly engineImage: ecs.ContainerImage | undefined;
  /** Dockerfile of the engine image, relative to `repoRoot`; undefined with `engineImage`. */
  readonly engineDockerfile: string | undefined;
  /** The project root (`projectRoot`, or its old name `repoRoot`). */
  readonly repoRoot: string;
  readonly appModule: string;
  readonly handlersDir: string;
  readonly functionMemorySize: number;
  readonly functionTimeout: Duration;
  readonly logRetention: logs.RetentionDays;
  readonly tableRemovalPolicy: RemovalPolicy;
  readonly alarmTopic: sns.ITopic | undefined;
  readonly logLevel: EngineLogLevel;
  readonly live: ResolvedLiveProps | undefined;
}

const MSK_CLUSTER_ARN = /^arn:aws[a-z-]*:kafka:[a-z0-9-]+:\d{12}:cluster\/[^/]+\/[^/]+$/;
const BROKER = /^[A-Za-z0-9.-]+:(\d{1,5})$/;
const KAFKA_AUTHS: readonly KafkaAuth[] = ['none', 'scram-sha-512', 'msk-iam'];
const LOG_LEVELS: readonly EngineLogLevel[] = ['debug', 'info', 'warn', 'error'];

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function invalid(prop: string, message: string): DeploymentError {
  return new DeploymentError('INVALID_PROPS', `TributaryApp: ${message}`, { prop });
}

function integerAtLeast(prop: string, value: unknown, min: number, hint: string): number {
  if (!Number.isInteger(value) || (value as number) < min) {
    throw invalid(prop, `${prop} must be an integer >= ${min}, received ${show(value)}; ${hint}`);
  }
  return value as number;
}

/**
 * Validates `TributaryApp` props across fields and fills the defaults. Pure: no construct is
 * created, so every wrong prop fails before synth builds anything.
 */
export function resolveProps(props: TributaryAppProps): ResolvedProps {
  const app = props?.app;
  if (!app || app.kind !== 'app') {
    throw invalid('app', `app must be a defineApp() result, received ${show(app)}; pass the \`app\` export of functions/app.ts`);
  }
  const kafka = resolveKafka(props.kafka);

  const partitionCount = integerAtLeast('partitionCount', props.partitionCount, 1, 'pass the partition count of the source topics');
  const minTasks = integerAtLeast('minTasks', props.minTasks ?? DEFAULT_MIN_TASKS, 1, 'the engine needs at least one task');
  const maxTasks = integerAtLeast('maxTasks', props.maxTasks ?? partitionCount, 1, 'the engine needs at least one task');
  if (maxTasks < minTasks) {
    throw invalid('maxTasks', `maxTasks (${maxTasks}) is below minTasks (${minTasks}); raise maxTasks or lower minTasks`);
  }
  if (maxTasks > partitionCount) {
    throw invalid(
      'maxTasks',
      `maxTasks (${maxTasks}) exceeds partitionCount (${partitionCount}); tasks beyond one per partition sit idle in the consumer group. Use at most ${partitionCount} or add partitions`,
    );
  }
  const targetLagPerTask = integerAtLeast('targetLagPerTask', props.targetLagPerTask ?? DEFAULT_TARGET_LAG_PER_TASK, 1, 'use a record count');
  const lagAlarmThreshold = integerAtLeast('lagAlarmThreshold', props.lagAlarmThreshold ?? DEFAULT_LAG_ALARM_THRESHOLD, 1, 'use a record count');

  // The engine dead-letters to the app's own topic (it reads it from the bundled app), so the
  // deployment derives it from the app rather than offering a second, possibly diverging, setting.
  const deadLetterTopic = app.deadLetterTopic;
  const consumerGroup = props.consumerGroup ?? app.name;
  if (typeof consumerGroup !== 'string' || consumerGroup.length === 0) {
    throw invalid('consumerGroup', `consumerGroup must be a non-empty string, received ${show(consumerGroup)}`);
  }

  const cpu = integerAtLeast('cpu', props.cpu ?? DEFAULT_CPU, 256, 'Fargate takes 256, 512, 1024, 2048, 4096, 8192 or 16384');
  const memoryLimitMiB = integerAtLeast('memoryLimitMiB', props.memoryLimitMiB ?? DEFAULT_MEMORY_MIB, 512, 'Fargate needs at least 512 MiB');
  const stopTimeout = props.stopTimeout ?? DEFAULT_STOP_TIMEOUT;
  const stopSeconds = stopTimeout.toSeconds();
  if (stopSeconds < 2 || stopSeconds > MAX_STOP_TIMEOUT_SECONDS) {
    throw invalid('stopTimeout', `stopTimeout must be 2..${MAX_STOP_TIMEOUT_SECONDS} seconds (the Fargate limit), received ${stopSeconds} s`);
  }

  if (props.projectRoot !== undefined && props.repoRoot !== undefined && path.resolve(props.projectRoot) !== path.resolve(props.repoRoot)) {
    throw invalid('projectRoot', `projectRoot ${show(props.projectRoot)} and its old name repoRoot ${show(props.repoRoot)} disagree; pass projectRoot only`);
  }
  const repoRoot = path.resolve(props.projectRoot ?? props.repoRoot ?? process.cwd());
  const appModule = props.appModule ?? DEFAULT_APP_MODULE;
  const handlersDir = props.handlersDir ?? DEFAULT_HANDLERS_DIR;
  for (const [prop, value] of [['appModule', appModule], ['handlersDir', handlersDir]] as const) {
    if (typeof value !== 'string' || value.length === 0 || path.isAbsolute(value) || value.split(/[\\/]/).includes('..')) {
      throw invalid(prop, `${prop} must be a path inside projectRoot (${repoRoot}), relative to it, received ${show(value)}; run \`cdk synth\` from the project holding the app, or set projectRoot`);
    }
  }
  let engineDockerfile: string | undefined;
  if (props.engineImage === undefined) {
    engineDockerfile = props.engineDockerfile ?? path.relative(repoRoot, SHIPPED_ENGINE_DOCKERFILE);
    if (path.isAbsolute(engineDockerfile) || engineDockerfile.split(/[\\/]/).includes('..')) {
      throw invalid(
        props.engineDockerfile === undefined ? 'projectRoot' : 'engineDockerfile',
        props.engineDockerfile === undefined
          ? `the engine Dockerfile the package ships (${SHIPPED_ENGINE_DOCKERFILE}) is outside projectRoot ${repoRoot}, so it cannot be the build context's; install tributary in the project (npm install tributary), or pass engineDockerfile or engineImage`
          : `engineDockerfile must be a path inside projectRoot (${repoRoot}), relative to it, received ${show(engineDockerfile)}`,
      );
    }
  }

  const functionMemorySize = integerAtLeast('functionMemorySize', props.functionMemorySize ?? DEFAULT_FUNCTION_MEMORY_MB, 128, 'Lambda takes 128..10240 MB');
  const functionTimeout = props.functionTimeout ?? DEFAULT_FUNCTION_TIMEOUT;
  if (functionTimeout.toSeconds() < 1 || functionTimeout.toSeconds() > 900) {
    throw invalid('functionTimeout', `functionTimeout must be 1..900 seconds, received ${functionTimeout.toSeconds()} s`);
  }
  if (props.securityGroups !== undefined && props.securityGroups.length === 0) {
    throw invalid('securityGroups', 'securityGroups is empty; omit it to get a new security group, or pass at least one');
  }

  const logLevel = props.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw invalid('logLevel', `logLevel must be one of ${LOG_LEVELS.join(', ')}, received ${show(logLevel)}`);
  }

  return {
    app,
    kafka,
    partitionCount,
    minTasks,
    maxTasks,
    targetLagPerTask,
    lagAlarmThreshold,
    deadLetterTopic,
    consumerGroup,
    vpc: props.vpc,
    vpcSubnets: props.vpcSubnets,
    securityGroups: props.securityGroups,
    cpu,
    memoryLimitMiB,
    stopTimeout,
    engineImage: props.engineImage,
    engineDockerfile,
    repoRoot,
    appModule,
    handlersDir,
    functionMemorySize,
    functionTimeout,
    logRetention: props.logRetention ?? DEFAULT_LOG_RETENTION,
    tableRemovalPolicy: props.tableRemovalPolicy ?? RemovalPolicy.RETAIN,
    alarmTopic: props.alarmTopic,
    logLevel,
    live: resolveLiveProps(props.live, app.live?.views ?? [], app.name),
  };
}

function resolveKafka(kafka: TributaryKafkaProps | undefined): ResolvedProps['kafka'] {
  if (!kafka || typeof kafka !== 'object') {
    throw invalid('kafka', `kafka is required, received ${show(kafka)}; pass { brokers, mskClusterArn } for MSK or { brokers, scramSecret } for external brokers`);
  }
  const { mskClusterArn, scramSecret } = kafka;
  const brokers = kafka.brokers;
  if (!Array.isArray(brokers) || brokers.length === 0) {
    throw invalid('kafka.brokers', `kafka.brokers must list at least one "host:port", received ${show(brokers)}`);
  }
  const ports = new Set<number>();
  for (const broker of brokers) {
    if (Token.isUnresolved(broker)) continue;
    const match = typeof broker === 'string' ? BROKER.exec(broker) : null;
    if (!match || Number(match[1]) < 1 || Number(match[1]) > 65535) {
      throw invalid('kafka.brokers', `kafka.brokers holds ${show(broker)}, not "host:port"; write e.g. "b-1.mycluster.kafka.us-east-1.amazonaws.com:9098"`);
    }
    ports.add(Number(match[1]));
  }
  if (mskClusterArn !== undefined && !Token.isUnresolved(mskClusterArn) && !MSK_CLUSTER_ARN.test(mskClusterArn)) {
    throw invalid('kafka.mskClusterArn', `kafka.mskClusterArn is not an MSK cluster ARN, received ${show(mskClusterArn)}; expected arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>`);
  }
  if (mskClusterArn !== undefined && scramSecret !== undefined) {
    throw invalid(
      'kafka',
      'kafka has both mskClusterArn (MSK with IAM auth) and scramSecret (external brokers with SASL/SCRAM); pick one: drop scramSecret for MSK IAM, or drop mskClusterArn for external brokers',
    );
  }
  const auth: KafkaAuth = kafka.auth ?? (mskClusterArn !== undefined ? 'msk-iam' : scramSecret !== undefined ? 'scram-sha-512' : 'none');
  if (!KAFKA_AUTHS.includes(auth)) {
    throw invalid('kafka.auth', `kafka.auth must be one of ${KAFKA_AUTHS.join(', ')}, received ${show(auth)}`);
  }
  if (auth === 'scram-sha-512' && scramSecret === undefined) {
    throw invalid('kafka.scramSecret', 'kafka.auth is "scram-sha-512" but kafka.scramSecret is missing; pass the Secrets Manager secret holding {"username","password"}');
  }
  if (auth === 'msk-iam' && mskClusterArn === undefined) {
    throw invalid('kafka.mskClusterArn', 'kafka.auth is "msk-iam" but kafka.mskClusterArn is missing; pass the MSK cluster ARN so the engine role can be scoped to it');
  }
  if (auth !== 'scram-sha-512' && scramSecret !== undefined) {
    throw invalid('kafka.scramSecret', `kafka.scramSecret is set but kafka.auth is "${auth}"; drop scramSecret or set auth to "scram-sha-512"`);
  }
  if (auth !== 'msk-iam' && mskClusterArn !== undefined) {
    throw invalid('kafka.auth', `kafka.mskClusterArn is set but kafka.auth is "${auth}"; Tributary connects to MSK with IAM auth, so drop auth or set it to "msk-iam"`);
  }
  const tls = kafka.tls ?? auth !== 'none';
  if (typeof tls !== 'boolean') {
    throw invalid('kafka.tls', `kafka.tls must be a boolean, received ${show(tls)}`);
  }
  if (auth !== 'none' && !tls) {
    throw invalid('kafka.tls', `kafka.tls is false with auth "${auth}"; credentials must travel over TLS (MSK requires it), so set tls: true`);
  }
  return { brokers: [...brokers], mskClusterArn, scramSecret, auth, tls, securityGroup: kafka.securityGroup, ports: [...ports] };
}
