/**
 * `npm run dev`: starts the embedded local stack (Kafka-protocol broker, DynamoDB Local, Lambda
 * Invoke API serving `functions/handlers`) with its data in `.tributary/` so topics, records
 * and tables survive a restart, prints where everything is, then runs the gym example app on
 * it: the engine folds a generated stream of bookings into the views, a live summary shows
 * them change, and the trigger functions print what they do. Stops cleanly on Ctrl-C or
 * SIGTERM. For development only, never production.
 *
 * Options: `--rate N` events per second (default 20), `--events N` stop producing after N
 * events, `--stack-only` the stack without the app, `--kafka apache` a real Apache Kafka
 * (resolved from Maven Central on first use) instead of the embedded broker.
 *
 * Ports (env, 0 = random): TRIBUTARY_KAFKA_PORT (default 9092), TRIBUTARY_DYNAMODB_PORT
 * (default 8000), TRIBUTARY_LAMBDA_PORT (default 3001).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Kafka, logLevel as kafkaLogLevel } from 'kafkajs';
import { DEFAULT_FORCE_AFTER_MS, onShutdownSignal } from '../engine/index.ts';
import { ensureViewsTable, startLocalStack, type LocalKafkaKind, type LocalStack } from '../local/index.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Gitignored; delete it to start from empty topics and tables. */
const DATA_DIR = path.join(REPO_ROOT, '.tributary');
const FUNCTIONS_DIR = path.join(REPO_ROOT, 'functions', 'handlers');
/** The ports every Kafka and DynamoDB Local tutorial uses, so the printed env rarely changes. */
const DEFAULT_KAFKA_PORT = 9092;
const DEFAULT_DYNAMODB_PORT = 8000;
/** SAM CLI's local Lambda port. */
const DEFAULT_LAMBDA_PORT = 3001;

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`${name}=${JSON.stringify(raw)} is not a port; use an integer 0..65535 (0 = random) or unset it`);
  }
  return port;
}

/** Starts the dev stack; the lead's example-app wiring goes on top of this. */
export async function startDevStack(kafka: LocalKafkaKind = 'embedded'): Promise<LocalStack> {
  // Views fence events by broker offsets, so each broker gets its own tables: state folded
  // from one broker's offsets must never meet the other broker's records.
  const dataDir = kafka === 'apache' ? path.join(DATA_DIR, 'apache') : DATA_DIR;
  mkdirSync(dataDir, { recursive: true });
  return startLocalStack({
    kafka,
    dataDir,
    ports: {
      kafka: portFromEnv('TRIBUTARY_KAFKA_PORT', DEFAULT_KAFKA_PORT),
      dynamodb: portFromEnv('TRIBUTARY_DYNAMODB_PORT', DEFAULT_DYNAMODB_PORT),
      lambda: portFromEnv('TRIBUTARY_LAMBDA_PORT', DEFAULT_LAMBDA_PORT),
    },
    ...(existsSync(FUNCTIONS_DIR) ? { functionsDir: FUNCTIONS_DIR } : {}),
    log: (line) => console.log(`[local] ${line}`),
  });
}

function printBanner(stack: LocalStack): void {
  const envFile = path.join(DATA_DIR, 'env');
  const exports = Object.entries(stack.env).map(([key, value]) => `export ${key}=${value}`);
  writeFileSync(envFile, `${exports.join('\n')}\n`);
  console.log(
    [
      '',
      'Tributary local stack is running — for DEVELOPMENT ONLY, not for production.',
      '',
      `  Kafka broker        ${stack.kafka.brokers.join(',')}  (${stack.kafka.kind === 'apache' ? `Apache Kafka ${stack.kafka.version}` : 'embedded; --kafka apache for Apache Kafka'})`,
      `  DynamoDB Local      ${stack.dynamodb.endpoint}`,
      `  Lambda Invoke API   ${stack.lambda.endpoint}  (functions/handlers/<name>.ts)`,
      `  Data                ${stack.dataDir}  (delete it to start empty)`,
      '',
      `Point tools at it (also written to ${path.relative(process.cwd(), envFile) || envFile}, so \`source\` it):`,
      ...exports.map((line) => `  ${line}`),
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
}

/** Options of `npm run dev`, from its command line (`npm run dev -- --rate 50`). */
interface DevOptions {
  /** Events produced per second. */
  readonly rate: number;
  /** Stop producing after this many events (the app keeps running); undefined = until Ctrl-C. */
  readonly events: number | undefined;
  /** Start the stack alone, without the example app. */
  readonly stackOnly: boolean;
  /** Which broker the stack runs. */
  readonly kafka: LocalKafkaKind;
}

/** Slow enough to read the output, fast enough to see classes fill up within a minute. */
const DEFAULT_RATE = 20;
/** How often the live view summary is printed. */
const SUMMARY_INTERVAL_MS = 3_000;
const TABLE_NAME = 'gym-views';
/** Partitions of the bookings topic: more than one, so per-partition offsets and lag show. */
const BOOKINGS_PARTITIONS = 3;

function parseArgs(argv: readonly string[]): DevOptions {
  let rate = DEFAULT_RATE;
  let events: number | undefined;
  let stackOnly = false;
  let kafka: LocalKafkaKind = 'embedded';
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = (): number => {
      const raw = argv[i + 1];
      const n = Number(raw);
      if (raw === undefined || !Number.isFinite(n) || n <= 0) {
        throw new Error(`${arg} needs a positive number, received ${JSON.stringify(raw)}; e.g. ${arg} 50`);
      }
      i += 1;
      return n;
    };
    if (arg === '--rate') rate = value();
    else if (arg === '--events') events = Math.floor(value());
    else if (arg === '--stack-only') stackOnly = true;
    else if (arg === '--kafka') {
      const kind = argv[i + 1];
      if (kind !== 'apache' && kind !== 'embedded') {
        throw new Error(`--kafka needs apache or embedded, received ${JSON.stringify(kind)}; e.g. --kafka apache`);
      }
      kafka = kind;
      i += 1;
    } else throw new Error(`unknown option ${JSON.stringify(arg)}; use --rate N, --events N, --stack-only or --kafka apache|embedded`);
  }
  return { rate, events, stackOnly, kafka };
}

/** The running example app: engine, event generator and live summary on top of the stack. */
interface DevApp {
  stop(): Promise<void>;
}

async function startExampleApp(stack: LocalStack, options: DevOptions): Promise<DevApp> {
  // Handlers run inside this process (the local Lambda endpoint), so they read the same
  // standard configuration the engine gets: endpoints, region, table.
  Object.assign(process.env, stack.env, { TRIBUTARY_TABLE: TABLE_NAME });
  const [{ app, classAttendance, memberBookings, dailyClassBookings, memberVisits, BOOKINGS_TOPIC, toMessage }, { createBookingGenerator }, { startEngine }, sdk] =
    await Promise.all([
      import('../functions/app.ts'),
      import('../functions/generator.ts'),
      import('../engine/index.ts'),
      import('../sdk/index.ts'),
    ]);

  await ensureViewsTable(new DynamoDBClient({}), TABLE_NAME);
  const kafka = new Kafka({ clientId: 'tributary-dev', brokers: stack.kafka.brokers, logLevel: kafkaLogLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: BOOKINGS_TOPIC, numPartitions: BOOKINGS_PARTITIONS }], waitForLeaders: true });
  await admin.disconnect();

  const engine = startEngine({
    app,
    tableName: TABLE_NAME,
    kafka: { clientId: 'tributary-dev-engine', brokers: stack.kafka.brokers, logLevel: kafkaLogLevel.NOTHING },
    healthPort: 0,
    // Warnings and errors only: the summary below shows progress in plain words.
    logLevel: 'warn',
  });
  // A view new to the table, or with a bumped version, is built from history before the engine runs.
  const building = setInterval(() => {
    for (const b of Object.values(engine.stats().builds)) {
      console.log(`[dev] building ${b.view} v${b.version}: ${b.done}/${b.total} records, ${b.rate}/s, ETA ${b.etaSeconds ?? '?'} s`);
    }
  }, 3_000);
  await engine.ready.finally(() => clearInterval(building));
  console.log(`[dev] engine running app "${app.name}" (health on :${engine.healthPort}); producing ${options.rate} events/s to "${BOOKINGS_TOPIC}"`);

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  // Each run continues the stream where the stored data left off would need state; a time seed
  // gives a fresh, still realistic stream per run instead.
  // Event time starts now: windows are kept for their retention from their end, by the wall clock.
  const generator = createBookingGenerator({ seed: Date.now() % 2_147_483_647, classes: 12, members: 150, startAt: new Date().toISOString() });
  const reader = sdk.createViewReader({ tableName: TABLE_NAME });
  const recentClasses = new Set<string>();
  const recentMembers = new Set<string>();
  let produced = 0;
  let producing = Promise.resolve();
  const perTick = Math.max(1, Math.round(options.rate / 4));
  const producerTimer = setInterval(() => {
    if (options.events !== undefined && produced >= options.events) return;
    const n = options.events === undefined ? perTick : Math.min(perTick, options.events - produced);
    const events = generator.take(n);
    produced += n;
    for (const e of events) {
      recentClasses.add(e.classId);
      recentMembers.add(e.memberId);
    }
    producing = producing
      .then(() => producer.send({ topic: BOOKINGS_TOPIC, acks: -1, messages: events.map(toMessage) }))
      .then(() => undefined)
      .catch((error: unknown) => console.error(`[dev] produce failed: ${(error as Error).message}`));
  }, 250);

  const summarize = async (): Promise<void> => {
    const stats = engine.stats();
    console.log(
      `[dev] produced ${produced} · applied ${stats.eventsApplied} · DynamoDB writes ${stats.writes} · ` +
        `changes delivered ${stats.changesDelivered} in ${stats.triggerInvocations} invocations · dead letters ${stats.deadLetters}`,
    );
    const classes = [...recentClasses].slice(-4);
    const members = [...recentMembers].slice(-2);
    recentClasses.clear();
    recentMembers.clear();
    const [classItems, memberItems, days, visits] = await Promise.all([
      reader.getMany(classAttendance, classes),
      reader.getMany(memberBookings, members),
      // Windowed views: a key's newest window, shown with its bounds.
      Promise.all(classes.slice(-1).map((c) => reader.latestWindow(dailyClassBookings, c))),
      Promise.all(members.slice(-1).map((m) => reader.latestWindow(memberVisits, m))),
    ]);
    for (const item of classItems) {
      if (!item) continue;
      const s = item.state;
      console.log(`        classAttendance[${item.key}] ${s.booked}/${s.capacity} booked, ${s.waitlist.length} waiting (v${item.version})`);
    }
    for (const item of memberItems) {
      if (!item) continue;
      const s = item.state;
      console.log(`        memberBookings[${item.key}] ${s.upcoming.length} upcoming, ${s.bookedCount} booked / ${s.cancelledCount} cancelled (v${item.version})`);
    }
    const span = (w: { start: number; end: number }) => `${new Date(w.start).toISOString().slice(0, 16)}Z..${new Date(w.end).toISOString().slice(0, 16)}Z`;
    for (const day of days) {
      if (day) console.log(`        dailyClassBookings[${day.key} @ ${span(day.window)}] ${day.state.booked} booked / ${day.state.cancelled} cancelled so far; final report once the day closes (v${day.version})`);
    }
    for (const visit of visits) {
      if (visit) console.log(`        memberVisits[${visit.key} @ ${span(visit.window)}] ${visit.state.actions} actions in ${visit.state.classes.length} classes (v${visit.version})`);
    }
  };
  let summarizing = false;
  const summaryTimer = setInterval(() => {
    if (summarizing) return;
    summarizing = true;
    summarize()
      .catch((error: unknown) => console.error(`[dev] reading views failed: ${(error as Error).message}`))
      .finally(() => {
        summarizing = false;
      });
  }, SUMMARY_INTERVAL_MS);

  return {
    async stop() {
      clearInterval(producerTimer);
      clearInterval(summaryTimer);
      await producing;
      await producer.disconnect();
      await engine.stop();
    },
  };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const stack = await startDevStack(options.kafka);
  printBanner(stack);
  let devApp: DevApp | undefined;

  onShutdownSignal({
    onStop: (signal) => {
      console.log(`[local] ${signal}: stopping… (Ctrl-C again, ${DEFAULT_FORCE_AFTER_MS / 1000} s or more from now, exits without waiting)`);
      (devApp ? devApp.stop() : Promise.resolve())
        .then(() => stack.stop())
        .then(
          () => process.exit(0),
          (error: unknown) => {
            console.error(`[local] stop failed: ${error instanceof Error ? error.message : String(error)}`);
            process.exit(1);
          },
        );
    },
    onForce: (signal) => {
      console.log(`[local] ${signal} again: exiting without waiting`);
      process.exit(1);
    },
  });

  if (!options.stackOnly) {
    try {
      devApp = await startExampleApp(stack, options);
    } catch (error) {
      await stack.stop().catch(() => undefined);
      throw error;
    }
  }
}

main().catch((error: unknown) => {
  console.error(`[local] ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
