/**
 * `tributary dev`: runs the user's app on the embedded local stack. It creates the views table
 * and the app's source and dead-letter topics, serves the user's handlers on the local Lambda
 * endpoint, runs the engine in this process, runs the seed module, prints a live summary, and
 * restarts the engine (and reloads the handlers) when a file of the app changes. Under each
 * summary line it shows a few of each view's newest items (`summary.ts`). Engine and
 * stack logs go to `.tributary/logs/`, apart from the summary. For development only.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Kafka, logLevel as kafkaLogLevel, type Admin, type Producer } from 'kafkajs';
import { DEFAULT_FORCE_AFTER_MS, onShutdownSignal, startEngine, type Engine, type EngineStats } from '../../engine/index.ts';
import { createLiveHandlers, registerLiveHandlers, signLiveToken } from '../../live/index.ts';
import { ensureViewsTable, startLocalStack, type LocalHandler, type LocalKafkaKind, type LocalStack, type Seed, type SeedContext, type SeedEvent } from '../../local/index.ts';
import { DOCUMENT_CLIENT_OPTIONS, ENV, LIVE_FUNCTIONS } from '../../sdk/contract/index.ts';
import { createViewReader, type App } from '../../sdk/index.ts';
import { startDevDashboard, type DevDashboard } from './dashboard.ts';
import { CliError } from './errors.ts';
import { readViewsSummary, RecentKeys } from './summary.ts';
import { createModuleLoader, DATA_DIR_NAME, firstLine, handlerFiles, loadApp, defaultTableName } from './project.ts';

/** The ports every Kafka and DynamoDB Local tutorial uses, so the printed env rarely changes. */
const DEFAULT_KAFKA_PORT = 9092;
const DEFAULT_DYNAMODB_PORT = 8000;
/** SAM CLI's local Lambda port. */
const DEFAULT_LAMBDA_PORT = 3001;
/** The live subscriptions' WebSocket API (and its `@connections` management API), next to the Lambda endpoint. */
const DEFAULT_LIVE_PORT = 3002;
/** A dev token lasts a week: long enough to keep a browser tab open across restarts of the stack. */
const DEV_TOKEN_TTL_S = 7 * 24 * 60 * 60;
/** The dashboard's port (`--dashboard`), beside the live API's. */
const DEFAULT_DASHBOARD_PORT = 3003;
/** How often the live summary is printed (only when something changed). */
const SUMMARY_INTERVAL_MS = 3_000;
/** Width of the views part of the summary: the terminal's, kept between 80 and 120 columns. */
function summaryWidth(): number {
  const columns = process.stdout.isTTY ? process.stdout.columns : undefined;
  return Math.min(120, Math.max(80, columns ?? 100));
}
/** Editors write a file in several steps; one restart per burst of changes. */
const RESTART_DEBOUNCE_MS = 300;
/** Fields of an engine warning shown on screen with its message; the log file has them all. */
const SHOWN_LOG_FIELDS = ['code', 'view', 'trigger', 'function', 'key', 'topic', 'partition', 'offset', 'reason', 'error'] as const;
/** Folders never watched for app changes. */
const IGNORED_DIRS = new Set(['node_modules', DATA_DIR_NAME, '.git', 'dist', 'cdk.out', 'coverage']);

/** Options of {@link runDev}, from `tributary dev`'s command line. */
export interface DevOptions {
  /** The project folder: `.tributary/` goes here. */
  readonly cwd: string;
  /** Absolute path of the app module. */
  readonly appFile: string;
  /** Absolute path of the handler folder; undefined = no functions served. */
  readonly handlersDir: string | undefined;
  /** Absolute path of the seed module; undefined = no seed. */
  readonly seedFile: string | undefined;
  readonly kafka: LocalKafkaKind;
  /** Partitions of the topics created (existing topics are left as they are). */
  readonly partitions: number;
  /** Passed to the seed. */
  readonly rate: number;
  /** Passed to the seed. */
  readonly events: number | undefined;
  /** Where the summary and messages go. */
  readonly print: (line: string) => void;
  /** Folder of a built dashboard to serve (`--dashboard`); undefined = none. */
  readonly dashboardDir?: string;
}

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CliError('USAGE', `${name}=${JSON.stringify(raw)} is not a port; use an integer 0..65535 (0 = random) or unset it`);
  }
  return port;
}

/** One loaded version of the user's code: the app and its handlers, from one module loader. */
interface Generation {
  readonly app: App;
  readonly handlers: Map<string, LocalHandler>;
  readonly load: (file: string) => Promise<Record<string, unknown>>;
}

async function loadGeneration(options: DevOptions): Promise<Generation> {
  const load = createModuleLoader();
  const app = await loadApp(options.appFile, load);
  const handlers = new Map<string, LocalHandler>();
  const files = options.handlersDir === undefined ? new Map<string, string>() : handlerFiles(options.handlersDir);
  for (const [name, file] of files) {
    let loaded: Record<string, unknown>;
    try {
      loaded = await load(file);
    } catch (error) {
      throw new CliError('MODULE_LOAD_FAILED', `cannot load handler ${file}: ${firstLine(error)}; fix the error and save`, { cause: error });
    }
    if (typeof loaded.handler !== 'function') {
      throw new CliError('MODULE_LOAD_FAILED', `${file} does not export \`handler\` (it exports ${JSON.stringify(Object.keys(loaded))}); export the Lambda entry point as \`handler\``);
    }
    handlers.set(name, loaded.handler as LocalHandler);
  }
  // The live views' fan-out is Tributary's own function, registered with the live handlers.
  const missing = app.functions.filter((name) => !handlers.has(name) && name !== LIVE_FUNCTIONS.fanout);
  if (missing.length > 0) {
    const where = options.handlersDir === undefined ? 'no handler folder (pass --handlers ./handlers)' : `${options.handlersDir} has no ${missing.map((m) => `${m}.ts`).join(', ')}`;
    throw new CliError('NOT_FOUND', `app "${app.name}" has triggers calling ${missing.join(', ')}, but ${where}; create each exporting \`handler\`, or fix the trigger's function`);
  }
  return { app, handlers, load };
}

/** Counters summed over engine restarts, so the summary keeps counting. */
type Totals = Pick<EngineStats, 'recordsConsumed' | 'eventsApplied' | 'writes' | 'changesDelivered' | 'triggerInvocations' | 'deadLetters'>;
const ZERO: Totals = { recordsConsumed: 0, eventsApplied: 0, writes: 0, changesDelivered: 0, triggerInvocations: 0, deadLetters: 0 };

function add(a: Totals, b: Totals): Totals {
  return {
    recordsConsumed: a.recordsConsumed + b.recordsConsumed,
    eventsApplied: a.eventsApplied + b.eventsApplied,
    writes: a.writes + b.writes,
    changesDelivered: a.changesDelivered + b.changesDelivered,
    triggerInvocations: a.triggerInvocations + b.triggerInvocations,
    deadLetters: a.deadLetters + b.deadLetters,
  };
}

/**
 * The summary line: events read, how often they changed a view (an event feeding two views
 * counts twice, so that figure is named per view), items written, changes delivered, dead
 * letters, and the lag of each view's source topic.
 */
export function summaryLine(app: App, totals: Totals, lag: Readonly<Record<string, number>>, produced: number | undefined): string {
  const lagByTopic = new Map<string, number>();
  for (const [topicPartition, records] of Object.entries(lag)) {
    const topic = topicPartition.slice(0, topicPartition.lastIndexOf('/'));
    lagByTopic.set(topic, (lagByTopic.get(topic) ?? 0) + records);
  }
  const views = app.views.length;
  return [
    `events in ${totals.recordsConsumed}${produced === undefined ? '' : ` (seeded ${produced})`}`,
    `view updates ${totals.eventsApplied} over ${views} view${views === 1 ? '' : 's'}`,
    `items written ${totals.writes}`,
    `changes delivered ${totals.changesDelivered} in ${totals.triggerInvocations} invocation${totals.triggerInvocations === 1 ? '' : 's'}`,
    `dead letters ${totals.deadLetters}`,
    `lag ${app.views.map((v) => `${v.name} ${lagByTopic.get(v.source) ?? 0}`).join(', ') || 'none'}`,
  ].join(' · ');
}

/** Folders of the app to watch: the app module's folder and the handler folder, with their subfolders. */
function watchedDirs(options: DevOptions): string[] {
  const roots = [path.dirname(options.appFile), ...(options.handlersDir ? [options.handlersDir] : [])];
  const dirs = new Set<string>();
  const walk = (dir: string, depth: number): void => {
    if (dirs.has(dir) || depth > 6) return;
    dirs.add(dir);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory() && !IGNORED_DIRS.has(entry.name) && !entry.name.startsWith('.')) walk(path.join(dir, entry.name), depth + 1);
    }
  };
  for (const root of roots) if (existsSync(root) && statSync(root).isDirectory()) walk(root, 0);
  return [...dirs];
}

/** The running dev session. */
export interface DevSession {
  readonly stack: LocalStack;
  /** Stops the seed, the engine and the stack; idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `tributary dev`; resolves once the engine runs the app (the summary and restarts go on
 * in the background until {@link DevSession.stop}).
 */
export async function runDev(options: DevOptions): Promise<DevSession> {
  const { print } = options;
  // Views fence events by broker offsets, so each broker gets its own data: state folded from
  // one broker's offsets must never meet the other broker's records.
  const dataRoot = path.join(options.cwd, DATA_DIR_NAME);
  const dataDir = options.kafka === 'apache' ? path.join(dataRoot, 'apache') : dataRoot;
  const logDir = path.join(dataRoot, 'logs');
  mkdirSync(logDir, { recursive: true });
  const engineLog = path.join(logDir, 'engine.log');
  const localLog = path.join(logDir, 'local.log');

  // Load first: a broken app fails in a second, before any JVM starts.
  let generation = await loadGeneration(options);

  const stack = await startLocalStack({
    kafka: options.kafka,
    dataDir,
    ports: {
      kafka: portFromEnv('TRIBUTARY_KAFKA_PORT', DEFAULT_KAFKA_PORT),
      dynamodb: portFromEnv('TRIBUTARY_DYNAMODB_PORT', DEFAULT_DYNAMODB_PORT),
      lambda: portFromEnv('TRIBUTARY_LAMBDA_PORT', DEFAULT_LAMBDA_PORT),
      live: portFromEnv('TRIBUTARY_LIVE_PORT', DEFAULT_LIVE_PORT),
    },
    log: (line) => appendFileSync(localLog, `${new Date().toISOString()} ${line}\n`),
  });

  // Live subscriptions: the local authorizer checks tokens signed with this secret (one per run
  // unless the environment sets it), and the printed URL carries one.
  const liveSecret = process.env[ENV.liveHmacSecret] ?? randomBytes(32).toString('base64url');
  const liveToken = await signLiveToken({ secret: liveSecret, claims: { sub: 'dev', role: 'dev' }, expiresInS: DEV_TOKEN_TTL_S });

  const kafka = new Kafka({ clientId: 'tributary-dev', brokers: stack.kafka.brokers, logLevel: kafkaLogLevel.NOTHING });
  let admin: Admin | undefined;
  let producer: Producer | undefined;
  let engine: Engine | undefined;
  let totals: Totals = ZERO;
  let produced: number | undefined;
  const seedAbort = new AbortController();
  const recent = new RecentKeys(() => generation.app);
  let dynamodb: DynamoDBClient | undefined;
  let seedDone: Promise<void> = Promise.resolve();
  const watchers: FSWatcher[] = [];
  let summaryTimer: NodeJS.Timeout | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let restarting: Promise<void> = Promise.resolve();
  let stopped = false;
  let dashboard: DevDashboard | undefined;

  /** Table, topics, handlers and environment for a generation of the app. */
  const prepare = async (next: Generation): Promise<void> => {
    const tableName = defaultTableName(next.app);
    const env: Record<string, string> = {
      ...stack.env,
      [ENV.table]: tableName,
      [ENV.app]: next.app.name,
      [ENV.deadLetterTopic]: next.app.deadLetterTopic,
    };
    // Handlers run inside this process (the local Lambda endpoint): they read the same standard
    // configuration the engine gets.
    Object.assign(process.env, env);
    writeFileSync(path.join(dataRoot, 'env'), `${Object.entries(env).map(([k, v]) => `export ${k}=${v}`).join('\n')}\n`);
    await ensureViewsTable(new DynamoDBClient({}), tableName);
    admin ??= kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [...next.app.sourceTopics, next.app.deadLetterTopic].map((topic) => ({ topic, numPartitions: options.partitions })),
      waitForLeaders: true,
    });
    for (const [name, handler] of next.handlers) stack.lambda.register(name, dashboard?.wrap(name, handler) ?? handler);
    // The live WebSocket API's routes and the live views' fan-out run on the same endpoint.
    if (stack.live !== undefined) registerLiveHandlers(stack.lambda, createLiveHandlers(next.app, { auth: { hmacSecret: liveSecret } }));
  };

  const startGeneration = (next: Generation): Engine => {
    const started = startEngine({
      app: next.app,
      tableName: defaultTableName(next.app),
      kafka: { clientId: 'tributary-dev-engine', brokers: stack.kafka.brokers, logLevel: kafkaLogLevel.NOTHING },
      healthPort: 0,
      logLevel: 'info',
      // Every log and metric line goes to the log file; warnings and errors also to the screen,
      // in a line of their own.
      logSink: (line) => {
        appendFileSync(engineLog, `${line}\n`);
        if (line.includes('"msg":"view build progress"')) {
          // A view new to the table, or with a bumped version, is built from history first.
          const b = JSON.parse(line) as { view: string; version: number; done: number; total: number; rate: number; etaSeconds?: number };
          // A view on a topic with no history (a fresh start) has nothing to build: no line for it.
          if (b.total === 0) return;
          print(`[dev] building ${b.view} v${b.version}: ${b.done}/${b.total} records, ${b.rate}/s, ETA ${b.etaSeconds ?? '?'} s`);
          return;
        }
        if (!line.includes('"level":"warn"') && !line.includes('"level":"error"')) return;
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          const details = SHOWN_LOG_FIELDS.filter((field) => entry[field] !== undefined).map((field) => `${field} ${typeof entry[field] === 'string' ? entry[field] : JSON.stringify(entry[field])}`);
          print(`[engine] ${String(entry.level)}: ${String(entry.msg ?? line)}${details.length > 0 ? ` (${details.join(', ')})` : ''}`);
        } catch {
          print(`[engine] ${line}`);
        }
      },
    });
    started.done.catch((error: unknown) => {
      if (!stopped) print(`[dev] the engine stopped: ${firstLine(error)}. Fix it and save a file of the app to restart (details in ${path.relative(options.cwd, engineLog)})`);
    });
    return started;
  };

  const stopEngine = async (): Promise<void> => {
    if (!engine) return;
    const last = engine.stats();
    await engine.stop().catch(() => undefined);
    totals = add(totals, last);
    engine = undefined;
  };

  const restart = async (reason: string): Promise<void> => {
    let next: Generation;
    try {
      next = await loadGeneration(options);
    } catch (error) {
      print(`[dev] ${reason}; not restarted: ${firstLine(error)}`);
      return;
    }
    print(`[dev] ${reason}: restarting the engine with app "${next.app.name}"`);
    await stopEngine();
    generation = next;
    await prepare(next);
    engine = startGeneration(next);
    await engine.ready.catch(() => undefined);
  };

  try {
    if (options.dashboardDir !== undefined) {
      dashboard = await startDevDashboard({
        dir: options.dashboardDir,
        port: portFromEnv('TRIBUTARY_DASHBOARD_PORT', DEFAULT_DASHBOARD_PORT),
        app: () => generation.app,
        stats: () => engine?.stats(),
        live: () => (stack.live === undefined ? undefined : { url: stack.live.url, token: liveToken }),
        brokers: stack.kafka.brokers,
        print,
      });
    }
    await prepare(generation);
    dashboard?.followDeadLetters();
    engine = startGeneration(generation);
    await engine.ready;
  } catch (error) {
    await engine?.stop().catch(() => undefined);
    await dashboard?.stop().catch(() => undefined);
    await admin?.disconnect().catch(() => undefined);
    await stack.stop().catch(() => undefined);
    throw error;
  }

  const relative = (file: string) => path.relative(options.cwd, file) || file;
  print([
    '',
    'Tributary dev — the embedded local stack, for DEVELOPMENT ONLY, not for production.',
    '',
    `  App                 ${generation.app.name} (${relative(options.appFile)}): views ${generation.app.views.map((v) => v.name).join(', ')}`,
    `  Kafka broker        ${stack.kafka.brokers.join(',')}  (${stack.kafka.kind === 'apache' ? `Apache Kafka ${stack.kafka.version}` : 'embedded; --kafka apache for Apache Kafka'}); topics ${[...generation.app.sourceTopics, generation.app.deadLetterTopic].join(', ')}`,
    `  DynamoDB Local      ${stack.dynamodb.endpoint}  (table ${defaultTableName(generation.app)})`,
    `  Lambda Invoke API   ${stack.lambda.endpoint}  (${generation.handlers.size > 0 ? [...generation.handlers.keys()].join(', ') : 'no handlers'})`,
    ...(stack.live !== undefined
      ? [
          `  Live subscriptions  ${stack.live.url}/?token=${liveToken}  (live views: ${generation.app.live?.views.join(', ') ?? 'none; set live on a view'})`,
        ]
      : []),
    `  Data                ${stack.dataDir}  (delete it to start empty)`,
    `  Logs                ${relative(logDir)}/engine.log, local.log`,
    ...(dashboard !== undefined ? [`  Dashboard           ${dashboard.url}  (open it in a browser)`] : []),
    '',
    `Point tools at it: \`source ${relative(path.join(dataRoot, 'env'))}\`; \`tributary views get <view> <key>\` reads a view, \`views latest <view> <key>\` a windowed one.`,
    'Saving a file of the app restarts the engine. Ctrl-C stops everything.',
    '',
  ].join('\n'));

  if (options.seedFile !== undefined) {
    const seedFile = options.seedFile;
    let seed: Seed;
    try {
      const loaded = await generation.load(seedFile);
      seed = (loaded.seed ?? loaded.default) as Seed;
      if (typeof seed !== 'function') throw new Error(`it exports ${JSON.stringify(Object.keys(loaded))}, no \`seed\` function`);
    } catch (error) {
      await stopEngine();
      await admin?.disconnect().catch(() => undefined);
      await stack.stop().catch(() => undefined);
      throw new CliError('MODULE_LOAD_FAILED', `cannot load the seed module ${seedFile}: ${firstLine(error)}; export \`async function seed(context)\``, { cause: error });
    }
    producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const seedProducer = producer;
    produced = 0;
    const context: SeedContext = {
      rate: options.rate,
      events: options.events,
      dataDir: stack.dataDir,
      signal: seedAbort.signal,
      log: (line) => print(`[seed] ${line}`),
      async produce(topic: string, events: readonly SeedEvent[]) {
        if (seedAbort.signal.aborted || events.length === 0) return;
        await seedProducer.send({
          topic,
          acks: -1,
          messages: events.map((e) => ({
            key: e.key ?? null,
            value: typeof e.value === 'string' || Buffer.isBuffer(e.value) ? e.value : JSON.stringify(e.value),
          })),
        });
        for (const e of events) {
          const value = Buffer.isBuffer(e.value) ? e.value : Buffer.from(typeof e.value === 'string' ? e.value : JSON.stringify(e.value));
          recent.note(topic, value, e.key === undefined || e.key === null ? null : Buffer.from(e.key));
        }
        produced = (produced ?? 0) + events.length;
      },
      async recordsIn(topic: string) {
        const offsets = await admin!.fetchTopicOffsets(topic);
        return offsets.reduce((sum, p) => sum + Number(p.high), 0);
      },
    };
    seedDone = Promise.resolve()
      .then(() => seed(context))
      .catch((error: unknown) => {
        if (!seedAbort.signal.aborted) print(`[seed] stopped: ${firstLine(error)}`);
      });
  }

  let lastLine = '';
  let summarizing = false;
  summaryTimer = setInterval(() => {
    if (summarizing) return;
    const stats = engine?.stats();
    const line = summaryLine(generation.app, stats ? add(totals, stats) : totals, stats?.lag ?? {}, produced);
    if (line === lastLine) return;
    lastLine = line;
    // The views' newest items under the counts, printed together so they never interleave.
    summarizing = true;
    const app = generation.app;
    const partitions = (topic: string): number[] => {
      const known = Object.keys(stats?.lag ?? {}).filter((tp) => tp.slice(0, tp.lastIndexOf('/')) === topic).map((tp) => Number(tp.slice(tp.lastIndexOf('/') + 1)));
      return known.length > 0 ? known : Array.from({ length: options.partitions }, (_, i) => i);
    };
    // Created after prepare() set the stack's environment, which the client reads.
    dynamodb ??= new DynamoDBClient({});
    const table = defaultTableName(app);
    const reads = { reader: createViewReader({ dynamodb, tableName: table }), client: DynamoDBDocumentClient.from(dynamodb, DOCUMENT_CLIENT_OPTIONS), table, partitions, recent };
    readViewsSummary(app, reads, summaryWidth())
      .then(
        (lines) => {
          if (!stopped) print([`[dev] ${line}`, ...lines].join('\n'));
        },
        (error: unknown) => print(`[dev] ${line}\n  (cannot read the views: ${firstLine(error)})`),
      )
      .finally(() => {
        summarizing = false;
      });
  }, SUMMARY_INTERVAL_MS);

  const onChange = (dir: string) => (_event: string, file: string | Buffer | null) => {
    const name = file === null ? '' : String(file);
    if (name !== '' && !/\.(m?ts|m?js|json)$/.test(name)) return;
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      if (stopped) return;
      restarting = restarting.then(() => restart(`${relative(path.join(dir, name))} changed`));
    }, RESTART_DEBOUNCE_MS);
  };
  for (const dir of watchedDirs(options)) watchers.push(watch(dir, onChange(dir)));

  let stopping: Promise<void> | undefined;
  return {
    stack,
    stop() {
      stopping ??= (async () => {
        stopped = true;
        for (const watcher of watchers) watcher.close();
        clearInterval(summaryTimer);
        clearTimeout(restartTimer);
        seedAbort.abort();
        await seedDone;
        await restarting;
        await producer?.disconnect().catch(() => undefined);
        await stopEngine();
        await dashboard?.stop().catch(() => undefined);
        await admin?.disconnect().catch(() => undefined);
        dynamodb?.destroy();
        await stack.stop();
      })();
      return stopping;
    },
  };
}

/** Runs `tributary dev` until Ctrl-C or SIGTERM: the engine drains, then the stack stops. */
export async function runDevUntilStopped(options: DevOptions): Promise<void> {
  const session = await runDev(options);
  await new Promise<void>((resolve, reject) => {
    onShutdownSignal({
      onStop: (signal) => {
        options.print(`[dev] ${signal}: stopping… (Ctrl-C again, ${DEFAULT_FORCE_AFTER_MS / 1000} s or more from now, exits without waiting)`);
        session.stop().then(resolve, reject);
      },
      onForce: (signal) => {
        options.print(`[dev] ${signal} again: exiting without waiting`);
        process.exit(1);
      },
    });
  });
}
