/**
 * A real single-node Apache Kafka (KRaft combined mode: broker and controller in one JVM) on
 * loopback, for the integration tests and `npm run dev -- --kafka apache`. Development and
 * tests only: one node, no replication, no security.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { LocalStackError } from '../errors.ts';
import { assertJava, defaultJavaCommand, javaStartFailure, spawnJvm, waitUntilReady, type JvmProcess } from '../jvm.ts';
import { findFreePort, isValidPort } from '../ports.ts';
import { resolveApacheKafka, type ResolveApacheKafkaOptions } from './resolve.ts';

/** Options of {@link startApacheKafka}. */
export interface ApacheKafkaOptions extends ResolveApacheKafkaOptions {
  /**
   * Loopback address the broker and its controller listen on and advertise.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * Client port; 0 picks a free one. (The controller gets its own free port.)
   * @default 0
   */
  port?: number;
  /**
   * Folder for the broker's logs and metadata; formatted on first use and kept, so topics,
   * records and committed offsets survive a restart on the same folder.
   * @default undefined — a temporary folder removed by `stop()`
   */
  dataDir?: string;
  /**
   * Java executable.
   * @default `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH
   */
  javaCommand?: string;
  /**
   * JVM arguments placed before the classpath.
   * @default DEFAULT_APACHE_KAFKA_JVM_ARGS
   */
  jvmArgs?: readonly string[];
  /**
   * Further `server.properties` entries, over the ones this function sets (say
   * `{ 'auto.create.topics.enable': false }`). Listener, node and storage settings are always ours.
   * @default {}
   */
  brokerConfig?: Readonly<Record<string, string | number | boolean>>;
  /**
   * How long to wait for the broker to answer a client before failing (resolution not included).
   * @default 120_000
   */
  startTimeoutMs?: number;
}

/** A running Apache Kafka broker. */
export interface ApacheKafka {
  readonly kind: 'apache';
  /** Kafka version, e.g. `4.1.1`. */
  readonly version: string;
  readonly host: string;
  /** Client port. */
  readonly port: number;
  /** Bootstrap list for clients, e.g. `['127.0.0.1:40123']`. */
  readonly brokers: string[];
  readonly dataDir: string;
  /** Milliseconds from spawn until a client got cluster metadata and a group coordinator. */
  readonly startupMs: number;
  /** Controlled shutdown (SIGTERM), SIGKILL after a grace period; removes a temporary data folder. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A small heap (the test broker holds little) and the serial collector (fewest GC threads on
 * a 2-core machine shared with DynamoDB Local and the tests).
 */
export const DEFAULT_APACHE_KAFKA_JVM_ARGS: readonly string[] = ['-Xms256m', '-Xmx1g', '-XX:+UseSerialGC', '-Djava.awt.headless=true'];

/**
 * Settings that differ from Apache Kafka's defaults, and why. Everything else (auto-created
 * topics, `message.max.bytes`, `num.partitions`, retention) is the default a user's cluster starts from.
 */
const TEST_BROKER_CONFIG: Readonly<Record<string, string | number>> = {
  // One node: internal topics cannot have three replicas.
  'offsets.topic.replication.factor': 1,
  'transaction.state.log.replication.factor': 1,
  'transaction.state.log.min.isr': 1,
  'share.coordinator.state.topic.replication.factor': 1,
  'share.coordinator.state.topic.min.isr': 1,
  // The default 3 s wait for more members before the first rebalance only slows every test group.
  'group.initial.rebalance.delay.ms': 0,
  // Tests use short sessions to make failover fast; Kafka's default floor is 6 s.
  'group.min.session.timeout.ms': 1_000,
};

/** A cold JVM formatting storage and electing itself on a loaded 2-core machine takes 5-20 s. */
const DEFAULT_START_TIMEOUT_MS = 120_000;
/** Controlled shutdown of a single node takes a second or two; after this we SIGKILL. */
const STOP_GRACE_MS = 15_000;
/** Formatting a new single-node storage folder takes a second or two; a minute means it is stuck. */
const FORMAT_TIMEOUT_MS = 60_000;
const READY_POLL_INTERVAL_MS = 200;
const MAX_PORT_ATTEMPTS = 3;
const NODE_ID = 1;

/**
 * Resolves (first use: from Maven Central) and starts a single-node Apache Kafka in KRaft
 * combined mode on loopback, and resolves once a real client got its metadata and a group
 * coordinator. **Development and tests only.**
 *
 * @example
 * const kafka = await startApacheKafka({ log: console.log });
 * const client = new Kafka({ brokers: kafka.brokers });
 * // ...
 * await kafka.stop();
 */
export async function startApacheKafka(options: ApacheKafkaOptions = {}): Promise<ApacheKafka> {
  const host = options.host ?? '127.0.0.1';
  const requestedPort = options.port ?? 0;
  if (!isValidPort(requestedPort)) {
    throw new LocalStackError('INVALID_OPTION', `Apache Kafka: port must be an integer 0..65535 (0 = random), got ${JSON.stringify(requestedPort)}`, {
      context: { component: 'kafka' },
    });
  }
  const log = options.log ?? (() => {});
  const java = options.javaCommand ?? defaultJavaCommand();
  assertJava(java, 'Apache Kafka', { component: 'kafka' });
  const resolved = await resolveApacheKafka(options);
  const ephemeral = options.dataDir === undefined;
  const dataDir = ephemeral ? mkdtempSync(path.join(tmpdir(), 'tributary-apache-kafka-')) : path.resolve(options.dataDir as string);
  mkdirSync(dataDir, { recursive: true });
  const removeData = (): void => {
    if (ephemeral) rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    for (let attempt = 1; ; attempt++) {
      const port = requestedPort === 0 ? await findFreePort(host) : requestedPort;
      const controllerPort = await findFreePort(host);
      try {
        const running = await startOnce({
          java,
          libDir: resolved.libDir,
          version: resolved.version,
          host,
          port,
          controllerPort,
          dataDir,
          jvmArgs: options.jvmArgs ?? DEFAULT_APACHE_KAFKA_JVM_ARGS,
          brokerConfig: options.brokerConfig ?? {},
          startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
          log,
        });
        let stopping: Promise<void> | undefined;
        return {
          ...running.info,
          stop(): Promise<void> {
            stopping ??= running.jvm.stop(STOP_GRACE_MS).finally(() => {
              removeData();
              log(`apache kafka ${resolved.version} stopped`);
            });
            return stopping;
          },
        };
      } catch (error) {
        const portTaken = error instanceof LocalStackError && error.context.portInUse === true;
        if (portTaken && requestedPort === 0 && attempt < MAX_PORT_ATTEMPTS) {
          log(`port ${port} or ${controllerPort} was taken before the broker bound it; retrying with other ports`);
          continue;
        }
        throw error;
      }
    }
  } catch (error) {
    removeData();
    throw error;
  }
}

interface StartOnceParams {
  java: string;
  libDir: string;
  version: string;
  host: string;
  port: number;
  controllerPort: number;
  dataDir: string;
  jvmArgs: readonly string[];
  brokerConfig: Readonly<Record<string, string | number | boolean>>;
  startTimeoutMs: number;
  log: (line: string) => void;
}

async function startOnce(p: StartOnceParams): Promise<{ info: Omit<ApacheKafka, 'stop'>; jvm: JvmProcess }> {
  const started = Date.now();
  const logDir = path.join(p.dataDir, 'logs');
  const configDir = path.join(p.dataDir, 'config');
  mkdirSync(configDir, { recursive: true });
  const serverProperties = path.join(configDir, 'server.properties');
  writeFileSync(serverProperties, renderProperties(serverConfig(p, logDir)));
  const log4j = path.join(configDir, 'log4j2.properties');
  writeFileSync(log4j, LOG4J2_PROPERTIES);
  const classpath = `${p.libDir}${path.sep}*`;
  const jvmArgs = [...p.jvmArgs, `-Dlog4j2.configurationFile=${log4j}`, '-cp', classpath];
  const context = { component: 'kafka' as const, port: p.port, dataDir: p.dataDir };

  if (!existsSync(path.join(logDir, 'meta.properties'))) {
    await format(p, jvmArgs, serverProperties, context);
  }

  const jvm = spawnJvm({ name: 'apache-kafka', java: p.java, args: [...jvmArgs, 'kafka.Kafka', serverProperties], cwd: p.dataDir, onLine: (line) => p.log(line) });
  const brokers = [`${p.host}:${p.port}`];
  await waitUntilReady(jvm, {
    who: 'Apache Kafka',
    code: 'KAFKA_START_FAILED',
    endpoint: brokers[0]!,
    startedMs: started,
    timeoutMs: p.startTimeoutMs,
    pollMs: READY_POLL_INTERVAL_MS,
    stopGraceMs: STOP_GRACE_MS,
    context,
    ready: () => answersClient(brokers),
  });
  const startupMs = Date.now() - started;
  p.log(`apache kafka ${p.version} ready at ${brokers[0]} in ${startupMs} ms (data in ${p.dataDir}; development and tests only)`);
  return { info: { kind: 'apache', version: p.version, host: p.host, port: p.port, brokers, dataDir: p.dataDir, startupMs }, jvm };
}

function serverConfig(p: StartOnceParams, logDir: string): Record<string, string | number | boolean> {
  return {
    ...TEST_BROKER_CONFIG,
    ...p.brokerConfig,
    'process.roles': 'broker,controller',
    'node.id': NODE_ID,
    'controller.quorum.voters': `${NODE_ID}@${p.host}:${p.controllerPort}`,
    listeners: `PLAINTEXT://${p.host}:${p.port},CONTROLLER://${p.host}:${p.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${p.host}:${p.port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': logDir,
  };
}

function renderProperties(config: Record<string, string | number | boolean>): string {
  const lines = Object.entries(config).map(([key, value]) => `${key}=${String(value).replace(/\\/g, '\\\\')}`);
  return `# Generated by tributary's local stack on each start; edits are overwritten.\n${lines.join('\n')}\n`;
}

/** Formats the storage folder for a new single-node cluster (kafka-storage.sh format). */
async function format(p: StartOnceParams, jvmArgs: readonly string[], serverProperties: string, context: Record<string, unknown>): Promise<void> {
  const clusterId = newClusterId();
  const tool = spawnJvm({
    name: 'apache-kafka-format',
    java: p.java,
    // `--cluster-id=` form: a base64url id may start with '-', which would read as an option.
    args: [...jvmArgs, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, `--config=${serverProperties}`, '--ignore-formatted'],
    cwd: p.dataDir,
    onLine: (line) => p.log(`format: ${line}`),
    keepAlive: true,
  });
  // After the output is read to the end, so a failure carries the tool's message.
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), FORMAT_TIMEOUT_MS);
  });
  const code = await Promise.race([tool.closed, timedOut]);
  clearTimeout(timer);
  if (code === 'timeout') {
    await tool.stop(STOP_GRACE_MS);
    throw new LocalStackError('KAFKA_START_FAILED', `formatting Apache Kafka storage in ${p.dataDir} did not finish within ${FORMAT_TIMEOUT_MS} ms. Output:\n${tool.output.text() || '(none)'}`, {
      retriable: true,
      context,
    });
  }
  if (code !== 0) {
    throw (
      javaStartFailure('Apache Kafka', code, tool.output.text(), context) ??
      new LocalStackError('KAFKA_START_FAILED', `formatting Apache Kafka storage in ${p.dataDir} failed (exit ${String(code)}). Output:\n${tool.output.text() || '(none)'}`, {
        context,
      })
    );
  }
}

/**
 * A random cluster id as Kafka makes them (16 bytes, base64url), never starting with '-', as
 * Kafka's own `Uuid.randomUuid` ensures, since tools would read such an id as an option.
 */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/**
 * One readiness probe through a real client: cluster metadata, then a group coordinator
 * (which creates `__consumer_offsets`, so the first test's group does not pay for it).
 */
async function answersClient(brokers: string[]): Promise<boolean> {
  const kafka = new Kafka({ brokers, clientId: 'tributary-local-ready', logLevel: logLevel.NOTHING, connectionTimeout: 1_000, retry: { retries: 0 } });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0 || cluster.controller === null) return false;
    await admin.describeGroups(['tributary-local-ready']);
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Warnings and errors to stdout (which we read), nothing to files. */
const LOG4J2_PROPERTIES = `status = error
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %p %m (%c{1})%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
`;
