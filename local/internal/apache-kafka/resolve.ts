/**
 * Resolves Apache Kafka's broker classpath from Maven Central into a cache outside the
 * repository, with Maven itself (`mvn dependency:copy-dependencies` on the pinned `pom.xml`
 * beside this file). The first resolution downloads about 45 MB; later ones find the cache.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalStackError } from '../errors.ts';
import { defaultJavaCommand, findExecutable, OutputTail } from '../jvm.ts';

/** The pinned Maven project that lists the broker's artifacts. */
export const APACHE_KAFKA_POM = fileURLToPath(new URL('./pom.xml', import.meta.url));

/** Options of {@link resolveApacheKafka}. */
export interface ResolveApacheKafkaOptions {
  /**
   * Where resolved classpaths are kept, one folder per version of `pom.xml`.
   * @default `$TRIBUTARY_CACHE_DIR/apache-kafka`, else `$XDG_CACHE_HOME/tributary/apache-kafka`, else `~/.cache/tributary/apache-kafka`
   */
  cacheDir?: string;
  /**
   * Maven executable, only needed when the cache is empty.
   * @default 'mvn' from PATH
   */
  mavenCommand?: string;
  /**
   * Receives progress lines (what is being resolved, where, and how long it took).
   * @default no logging
   */
  log?: (line: string) => void;
}

/** A resolved broker classpath. */
export interface ResolvedApacheKafka {
  /** Kafka version from `pom.xml`, e.g. `4.1.1`. */
  readonly version: string;
  /** Folder of the broker's jars; the classpath is `<libDir>/*`. */
  readonly libDir: string;
  /** True when this call ran Maven (first use of this `pom.xml`), false when the cache had it. */
  readonly downloaded: boolean;
  /** Milliseconds spent resolving (0 from the cache). */
  readonly resolveMs: number;
}

const MAVEN_HINT = 'install Apache Maven (e.g. `apt-get install -y maven`) so the broker can be resolved from Maven Central, or use the embedded broker (`kafka: "embedded"`)';
/** Marks a cache folder whose copy finished; a folder without it is a crashed copy and is redone. */
const COMPLETE_MARKER = '.complete';

/**
 * The local stack's cache folder for `part` (`apache-kafka`, `dynamodb-local`):
 * `$TRIBUTARY_CACHE_DIR/<part>`, else `$XDG_CACHE_HOME/tributary/<part>`, else `~/.cache/tributary/<part>`.
 */
export function localCacheDir(part: string): string {
  const explicit = process.env.TRIBUTARY_CACHE_DIR?.trim();
  if (explicit) return path.join(path.resolve(explicit), part);
  const xdg = process.env.XDG_CACHE_HOME?.trim();
  return path.join(xdg ? path.resolve(xdg) : path.join(homedir(), '.cache'), 'tributary', part);
}

/** The default cache root of resolved Apache Kafka classpaths. */
export function defaultCacheDir(): string {
  return localCacheDir('apache-kafka');
}

/** The Kafka version pinned in `pom.xml`. */
export function pinnedKafkaVersion(pom: string = readFileSync(APACHE_KAFKA_POM, 'utf8')): string {
  const match = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom);
  if (!match?.[1]) throw new LocalStackError('KAFKA_RESOLVE_FAILED', `no <kafka.version> in ${APACHE_KAFKA_POM}`, { context: { component: 'kafka' } });
  return match[1].trim();
}

/**
 * Returns the broker's classpath folder, resolving it with Maven on first use. Safe to call
 * from several processes at once: each copies into its own temporary folder and the first
 * rename wins.
 *
 * @example
 * const { libDir, version } = await resolveApacheKafka({ log: console.log });
 * // java -cp `${libDir}/*` kafka.Kafka server.properties
 */
export async function resolveApacheKafka(options: ResolveApacheKafkaOptions = {}): Promise<ResolvedApacheKafka> {
  const log = options.log ?? (() => {});
  const { version, root, target } = cacheLocation(options.cacheDir);
  const libDir = path.join(target, 'libs');
  if (existsSync(path.join(target, COMPLETE_MARKER))) return { version, libDir, downloaded: false, resolveMs: 0 };

  const mavenCommand = options.mavenCommand ?? 'mvn';
  const maven = findExecutable(mavenCommand);
  if (maven === undefined) {
    throw new LocalStackError(
      'MAVEN_NOT_FOUND',
      `Apache Kafka ${version} is not in the cache at ${target} and Maven ("${mavenCommand}") was not found to resolve it; ${MAVEN_HINT}`,
      { context: { component: 'kafka', cacheDir: root, mavenCommand } },
    );
  }

  const started = Date.now();
  log(`resolving Apache Kafka ${version} from Maven Central into ${target} (first use only: about 45 MB, typically 10-60 s)`);
  mkdirSync(root, { recursive: true });
  const staging = path.join(root, `.staging-${process.pid}-${Date.now().toString(36)}`);
  try {
    await runMaven(maven, ['-B', '-q', '-f', APACHE_KAFKA_POM, 'dependency:copy-dependencies', `-DoutputDirectory=${path.join(staging, 'libs')}`, '-DincludeScope=runtime'], log);
    const jars = readdirSync(path.join(staging, 'libs')).filter((name) => name.endsWith('.jar'));
    if (!jars.some((name) => name.startsWith(`kafka_2.13-${version}`))) {
      throw new LocalStackError('KAFKA_RESOLVE_FAILED', `Maven finished but kafka_2.13-${version}.jar is not among the ${jars.length} jars copied to ${staging}`, {
        context: { component: 'kafka', cacheDir: root },
      });
    }
    writeFileSync(path.join(staging, COMPLETE_MARKER), `${jars.length} jars, resolved ${new Date().toISOString()}\n`);
    try {
      renameSync(staging, target);
    } catch (error) {
      // Another process finished first (a target only ever appears complete); its copy is as good as ours.
      if (!existsSync(path.join(target, COMPLETE_MARKER))) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const resolveMs = Date.now() - started;
  log(`resolved Apache Kafka ${version} in ${(resolveMs / 1000).toFixed(1)} s (cache: ${target})`);
  return { version, libDir, downloaded: true, resolveMs };
}

/** The cache folder of this `pom.xml`: keyed by version and content, so editing the pom re-resolves. */
function cacheLocation(cacheDir: string | undefined): { version: string; root: string; target: string } {
  const pom = readFileSync(APACHE_KAFKA_POM, 'utf8');
  const version = pinnedKafkaVersion(pom);
  const digest = createHash('sha256').update(pom).digest('hex').slice(0, 12);
  const root = path.resolve(cacheDir ?? defaultCacheDir());
  return { version, root, target: path.join(root, `${version}-${digest}`) };
}

/** A first download of ~45 MB takes seconds to a minute; a Maven still busy after this is stuck. */
const MAVEN_TIMEOUT_MS = 10 * 60_000;

function runMaven(maven: string, args: readonly string[], log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(maven, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.dirname(APACHE_KAFKA_POM) });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new LocalStackError('KAFKA_RESOLVE_FAILED', `Maven did not finish resolving the Apache Kafka broker within ${MAVEN_TIMEOUT_MS / 60_000} minutes; check that Maven Central is reachable (or a mirror in ~/.m2/settings.xml)`, {
          retriable: true,
          context: { component: 'kafka' },
        }),
      );
    }, MAVEN_TIMEOUT_MS);
    child.once('exit', () => clearTimeout(timer));
    const output = new OutputTail();
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk, (line) => log(`mvn: ${line}`)));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk, (line) => log(`mvn: ${line}`)));
    child.once('error', (cause) =>
      reject(new LocalStackError('MAVEN_NOT_FOUND', `could not run Maven (${maven}): ${cause.message}; ${MAVEN_HINT}`, { context: { component: 'kafka' }, cause })),
    );
    child.once('exit', (code) => {
      if (code === 0) return resolve();
      reject(
        new LocalStackError(
          'KAFKA_RESOLVE_FAILED',
          `Maven could not resolve the Apache Kafka broker (exit ${String(code)}); check that Maven Central is reachable ` +
            `(or a mirror in ~/.m2/settings.xml). Output:\n${output.text() || '(none)'}`,
          { retriable: true, context: { component: 'kafka' } },
        ),
      );
    });
  });
}

/**
 * Whether {@link resolveApacheKafka} and `startApacheKafka` can work here without installing
 * anything: Java is on PATH (or JAVA_HOME), and the broker is in the cache or Maven can fetch it.
 * `missing` names what is not there.
 */
export function apacheKafkaPrerequisites(options: ResolveApacheKafkaOptions & { javaCommand?: string } = {}): { ok: boolean; missing: string[] } {
  const missing: string[] = [];
  const java = options.javaCommand ?? defaultJavaCommand();
  if (findExecutable(java) === undefined) missing.push(`Java (${java})`);
  const cached = existsSync(path.join(cacheLocation(options.cacheDir).target, COMPLETE_MARKER));
  if (!cached && findExecutable(options.mavenCommand ?? 'mvn') === undefined) missing.push(`Maven (${options.mavenCommand ?? 'mvn'})`);
  return { ok: missing.length === 0, missing };
}
