/**
 * The Kafka Streams contender's process: bench/kafka-streams/ (a pom.xml and one Java source)
 * built on first use into a cache outside the repository, like the Apache Kafka broker's jars
 * (local/internal/apache-kafka/resolve.ts): `mvn dependency:copy-dependencies` copies the
 * runtime classpath (kafka-streams, kafka-clients, rocksdbjni, ...), `javac` compiles the app
 * against it. The cache folder is keyed by the pom's and the source's contents, so an edit
 * rebuilds. Later runs start `java` at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const APP_DIR = fileURLToPath(new URL('../kafka-streams/', import.meta.url));
const POM = path.join(APP_DIR, 'pom.xml');
const SOURCE = path.join(APP_DIR, 'src/main/java/dev/tributary/bench/ClassCountsStreams.java');
const MAIN_CLASS = 'dev.tributary.bench.ClassCountsStreams';
const COMPLETE_MARKER = '.complete';
/** The JVM of the contender: a bounded heap (RocksDB keeps its blocks off-heap), the broker's collector. */
export const KAFKA_STREAMS_JVM_ARGS: readonly string[] = [
  '-Xms128m',
  '-Xmx512m',
  '-XX:+UseSerialGC',
  '-Djava.awt.headless=true',
  // Kafka's INFO logging is chatty; warnings and errors still reach the bench's log.
  '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
];

/** `$TRIBUTARY_CACHE_DIR/kafka-streams-bench`, else under `$XDG_CACHE_HOME/tributary`, else `~/.cache/tributary`. */
function cacheRoot(): string {
  const explicit = process.env.TRIBUTARY_CACHE_DIR?.trim();
  if (explicit) return path.join(path.resolve(explicit), 'kafka-streams-bench');
  const xdg = process.env.XDG_CACHE_HOME?.trim();
  return path.join(xdg ? path.resolve(xdg) : path.join(homedir(), '.cache'), 'tributary', 'kafka-streams-bench');
}

function run(command: string, args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4_000)));
    child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4_000)));
    child.once('error', (cause) => reject(new Error(`bench: could not run ${command} (${cause.message}); the Kafka Streams contender needs Maven and a JDK (javac) on PATH`)));
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`bench: ${command} ${args.join(' ')} exited with ${String(code)} in ${cwd}; output:\n${output || '(none)'}`)),
    );
  });
}

/** The built app: its classpath for `java -cp`. */
export interface KafkaStreamsBuild {
  readonly classpath: string;
  /** True when this call ran Maven and javac, false when the cache had them. */
  readonly built: boolean;
}

/**
 * Returns the Kafka Streams app's classpath, building it on first use.
 *
 * @example
 * const { classpath } = await buildKafkaStreamsApp(console.log);
 */
export async function buildKafkaStreamsApp(log: (line: string) => void): Promise<KafkaStreamsBuild> {
  const digest = createHash('sha256').update(readFileSync(POM)).update(readFileSync(SOURCE)).digest('hex').slice(0, 12);
  const root = cacheRoot();
  const target = path.join(root, digest);
  const classpath = `${path.join(target, 'classes')}${path.delimiter}${path.join(target, 'libs', '*')}`;
  if (existsSync(path.join(target, COMPLETE_MARKER))) return { classpath, built: false };
  const started = Date.now();
  log(`building the Kafka Streams contender (first use only) into ${target}`);
  mkdirSync(root, { recursive: true });
  const staging = path.join(root, `.staging-${process.pid}-${Date.now().toString(36)}`);
  try {
    await run('mvn', ['-B', '-q', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${path.join(staging, 'libs')}`, '-DincludeScope=runtime'], APP_DIR);
    const jars = readdirSync(path.join(staging, 'libs'));
    if (!jars.some((j) => j.startsWith('kafka-streams-'))) throw new Error(`bench: Maven finished but no kafka-streams jar is among ${jars.join(', ')}`);
    await run('javac', ['--release', '17', '-d', path.join(staging, 'classes'), '-cp', path.join(staging, 'libs', '*'), SOURCE], APP_DIR);
    writeFileSync(path.join(staging, COMPLETE_MARKER), `${jars.length} jars, built ${new Date().toISOString()}\n`);
    try {
      renameSync(staging, target);
    } catch (error) {
      if (!existsSync(path.join(target, COMPLETE_MARKER))) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  log(`built the Kafka Streams contender in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { classpath, built: true };
}

/** How the app is pointed at its topics. */
export interface KafkaStreamsConfig {
  readonly bootstrapServers: string;
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly applicationId: string;
  readonly stateDir: string;
  readonly sessionTimeoutMs?: number;
}

/** A running Kafka Streams JVM. */
export interface KafkaStreamsProcess {
  readonly pid: number;
  /** Resolves the first time the instance reports RUNNING (after any restore from the changelog). */
  readonly running: Promise<void>;
  /** User + system CPU seconds of the JVM so far (all its threads). */
  cpuSeconds(): number;
  /** SIGKILL, like a crashed host: no commit, no close. */
  kill(): Promise<void>;
  /** SIGTERM: the app's shutdown hook closes the streams. */
  stop(): Promise<void>;
}

/**
 * User + system CPU seconds of process `pid` from /proc (Linux; clock ticks of 1/100 s, the
 * kernel's USER_HZ), or undefined elsewhere.
 */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) in parentheses: state is the 3rd field, utime the 14th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * Starts the app in its own JVM.
 *
 * @example
 * const app = startKafkaStreams(classpath, { bootstrapServers, inputTopic, outputTopic, applicationId, stateDir }, log);
 * await app.running;
 */
export function startKafkaStreams(classpath: string, config: KafkaStreamsConfig, log: (line: string) => void): KafkaStreamsProcess {
  const child: ChildProcess = spawn('java', [...KAFKA_STREAMS_JVM_ARGS, '-cp', classpath, MAIN_CLASS], {
    env: {
      ...process.env,
      BOOTSTRAP_SERVERS: config.bootstrapServers,
      INPUT_TOPIC: config.inputTopic,
      OUTPUT_TOPIC: config.outputTopic,
      APPLICATION_ID: config.applicationId,
      STATE_DIR: config.stateDir,
      ...(config.sessionTimeoutMs !== undefined ? { SESSION_TIMEOUT_MS: String(config.sessionTimeoutMs) } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let lastCpu = 0;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = new Promise<void>((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      if (buffered.includes('RUNNING')) resolve();
      buffered = buffered.slice(-16);
    });
    void exited.then(() => reject(new Error(`Kafka Streams contender exited (code ${String(child.exitCode)}, signal ${String(child.signalCode)}) before it was RUNNING`)));
  });
  running.catch(() => {});
  child.stderr!.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (/\b(WARN|ERROR)\b|Exception|failed/.test(line)) log(`kafka-streams: ${line.slice(0, 300)}`);
  });
  return {
    pid: child.pid!,
    running,
    cpuSeconds: () => {
      const now = processCpuSeconds(child.pid!);
      if (now !== undefined) lastCpu = now;
      return lastCpu;
    },
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
