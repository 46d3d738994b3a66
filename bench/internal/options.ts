/**
 * Benchmark scenarios and their knobs: CLI flags (`npm run bench -- --events 50000`) override
 * environment variables (`BENCH_EVENTS=50000`), which override the scenario's defaults.
 */

/** Which contender runs the events. */
export type Contender = 'engine' | 'naive';

/**
 * - `throughput`: the headline comparison, engine vs naive on the same events (~2-3 minutes);
 * - `keys`: a memory run with one distinct key per event, engine only, to show RSS bounded by
 *   the state cache rather than by the number of keys;
 * - `triggers`: the engine with a trigger on the view, delivering changes to a function on the
 *   local Lambda endpoint, against the naive pattern (one `UpdateItem` and one invocation per
 *   event): invocations per change, changes delivered/s, produce->function latency; the
 *   engine runs the trigger's default (`changes: 'every'`), then once more with
 *   `changes: 'coalesced'` for its invocations beside the default's;
 * - `windows`: the engine alone, one pass per view shape over the same events: unwindowed, a
 *   tumbling window and hopping windows of 2, 4 and 8 windows per event (events/s, writes/event);
 * - `joins`: the engine alone over the same events: a plain view (keyed like the Kafka key), the
 *   same view re-keyed by member, and the plain view with a lookup of a members table (events/s,
 *   DynamoDB item reads and writes per event);
 * - `rebuild`: the engine alone: live folding of the events, then a view added and built from
 *   the same history (records/s of each), with produce->view latency probes of the live view
 *   with no build running and while the build runs;
 * - `cardinality`: the same number of events over 50, 500, 5,000 and 50,000 keys, folded by the
 *   engine, the naive pattern and the batched naive handler (one `UpdateItem ADD` per key and
 *   batch): writes/event, cost and events/s per key count; then one batch re-delivered to the
 *   batched handler and the engine killed mid-run, both checked against the produced events;
 * - `streams`: on Apache Kafka, the engine against a Kafka Streams app doing the same
 *   aggregation (exactly-once v2, RocksDB), on the same events: events/s, CPU per million
 *   events, produce->result latency, restart time after kill -9 with local state wiped.
 */
export type Scenario = 'throughput' | 'keys' | 'triggers' | 'windows' | 'joins' | 'rebuild' | 'cardinality' | 'streams' | 'live';

/** Resolved options of one benchmark run. */
export interface BenchOptions {
  readonly scenario: Scenario;
  readonly contenders: readonly Contender[];
  /** Events produced and consumed in the throughput phase. */
  readonly events: number;
  /** Distinct classes (view keys). */
  readonly classes: number;
  /** Partitions of the bench topic. */
  readonly partitions: number;
  readonly seed: number;
  /** Latency probes per contender. */
  readonly probes: number;
  /** Pause between two probes. */
  readonly probeIntervalMs: number;
  /**
   * Before the measured probes, this long of the same background load and probes, reported on
   * rows of their own: each latency phase starts a fresh process, so its first seconds pay a cold
   * state cache (the engine reads a key at its first touch), a cold JIT and new connections.
   */
  readonly warmupMs: number;
  /**
   * Background load (events/s) while probing: "moderate load". Undefined = auto: a fifth of the
   * slower contender's measured throughput (capped at 500/s), so neither falls behind and the
   * probes time the pipeline, not a backlog.
   */
  readonly backgroundRate: number | undefined;
  /** Give up on a phase after this long. */
  readonly phaseTimeoutMs: number;
  /** State cache limit handed to the engine (entries), when its options take one. */
  readonly cacheMaxEntries: number | undefined;
  /** The engine's `maxBytesPerPartition` (bytes fetched per partition and poll); undefined = its default. */
  readonly maxBytesPerPartition: number | undefined;
  /** Print the stack's and the workers' logs. */
  readonly verbose: boolean;
}

/**
 * What most scenarios share; each scenario below states only where it differs (its events and
 * classes, and any other field it sets to something else).
 */
const BASE_DEFAULTS = {
  partitions: 4,
  seed: 1,
  probes: 0,
  probeIntervalMs: 100,
  warmupMs: 0,
  backgroundRate: 0,
  phaseTimeoutMs: 600_000,
  cacheMaxEntries: undefined,
  maxBytesPerPartition: undefined,
} as const satisfies Partial<BenchOptions>;

const SCENARIO_DEFAULTS: Record<Scenario, Omit<BenchOptions, 'scenario' | 'verbose'>> = {
  throughput: {
    ...BASE_DEFAULTS,
    contenders: ['engine', 'naive'],
    // 50k events over 500 classes: the engine fetches ~5k events per batch, so each key repeats
    // ~10 times per batch. 50k keeps the naive side (one UpdateItem per event, ~300/s against
    // DynamoDB Local on a loaded 2-core machine) near three minutes; raise --events on a bigger box.
    events: 50_000,
    classes: 500,
    probes: 100,
    warmupMs: 10_000,
    backgroundRate: undefined,
  },
  keys: {
    ...BASE_DEFAULTS,
    contenders: ['engine'],
    // One distinct key per event: a cache without a bound would hold a million states.
    events: 1_000_000,
    classes: 1_000_000,
    // DynamoDB Local takes ~500 new items/s on a 2-core machine: a million keys take over half an hour.
    phaseTimeoutMs: 7_200_000,
  },
  triggers: {
    ...BASE_DEFAULTS,
    // The naive side pays one UpdateItem and one synchronous Lambda invocation per event; 10k
    // events keep its phase to a couple of minutes on a loaded 2-core machine.
    contenders: ['engine', 'naive'],
    events: 10_000,
    classes: 500,
    probes: 50,
    warmupMs: 10_000,
    backgroundRate: undefined,
  },
  live: {
    ...BASE_DEFAULTS,
    // Every subscriber watches every class: each change fans out to all of them.
    contenders: ['engine'],
    events: 5_000,
    classes: 50,
  },
  joins: {
    ...BASE_DEFAULTS,
    // Three engine passes over the same events.
    contenders: ['engine'],
    events: 30_000,
    classes: 200,
  },
  rebuild: {
    ...BASE_DEFAULTS,
    // Live folding, then a build of an added view over the same 20k records, with probes beside it.
    contenders: ['engine'],
    events: 20_000,
    classes: 200,
    probes: 40,
  },
  cardinality: {
    ...BASE_DEFAULTS,
    // Three contenders at four key counts over the same 20k events, plus the retry phase: the
    // naive side (~500 UpdateItems/s against DynamoDB Local here) sets the pace, ~6 minutes.
    contenders: ['engine', 'naive'],
    events: 20_000,
    classes: 500,
  },
  streams: {
    ...BASE_DEFAULTS,
    // 100k events of history before the crash; `--events 1000000` for the long restart run.
    contenders: ['engine'],
    events: 100_000,
    classes: 500,
    probes: 50,
    backgroundRate: 200,
    phaseTimeoutMs: 1_800_000,
  },
  windows: {
    ...BASE_DEFAULTS,
    // Five engine passes over the same events; 30k keeps the run to a few minutes.
    contenders: ['engine'],
    events: 30_000,
    classes: 200,
  },
};

const FLAGS = {
  events: 'BENCH_EVENTS',
  classes: 'BENCH_CLASSES',
  partitions: 'BENCH_PARTITIONS',
  seed: 'BENCH_SEED',
  probes: 'BENCH_PROBES',
  'probe-interval-ms': 'BENCH_PROBE_INTERVAL_MS',
  'warmup-ms': 'BENCH_WARMUP_MS',
  'background-rate': 'BENCH_BACKGROUND_RATE',
  'phase-timeout-ms': 'BENCH_PHASE_TIMEOUT_MS',
  'cache-max-entries': 'BENCH_CACHE_MAX_ENTRIES',
  'max-bytes-per-partition': 'BENCH_MAX_BYTES_PER_PARTITION',
} as const;

const USAGE = `usage: npm run bench -- [--scenario throughput|keys|triggers|windows|joins|rebuild|cardinality|streams|live] [--contenders engine,naive]
  [--events N] [--classes N] [--partitions N] [--seed N] [--probes N] [--probe-interval-ms N]
  [--warmup-ms N] [--background-rate N] [--phase-timeout-ms N] [--cache-max-entries N]
  [--max-bytes-per-partition N] [--verbose]
  (each flag also reads BENCH_<FLAG> from the environment, e.g. BENCH_EVENTS=50000)`;

/** Thrown for bad flags; the message carries the usage line. */
export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

/**
 * Parses CLI flags and `BENCH_*` environment variables into options.
 *
 * @example
 * const options = parseBenchOptions(process.argv.slice(2), process.env);
 */
export function parseBenchOptions(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): BenchOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new BenchUsageError(`unexpected argument ${JSON.stringify(arg)}\n${USAGE}`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (name === 'verbose' || name === 'help') {
      flags.set(name, 'true');
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new BenchUsageError(`--${name} needs a value\n${USAGE}`);
    flags.set(name, value);
  }
  if (flags.has('help')) throw new BenchUsageError(USAGE);
  const scenario = (flags.get('scenario') ?? env.BENCH_SCENARIO ?? 'throughput') as Scenario;
  if (!(scenario in SCENARIO_DEFAULTS)) throw new BenchUsageError(`unknown scenario ${JSON.stringify(scenario)}\n${USAGE}`);
  const base = SCENARIO_DEFAULTS[scenario];
  const numbers: Record<string, number | undefined> = {};
  for (const [flag, envName] of Object.entries(FLAGS)) {
    const raw = flags.get(flag) ?? env[envName];
    flags.delete(flag);
    if (raw === undefined) continue;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) {
      throw new BenchUsageError(`--${flag} must be a non-negative integer, received ${JSON.stringify(raw)}\n${USAGE}`);
    }
    numbers[flag] = value;
  }
  const contendersRaw = flags.get('contenders') ?? env.BENCH_CONTENDERS;
  const contenders = contendersRaw ? contendersRaw.split(',').map((c) => c.trim()) : [...base.contenders];
  for (const c of contenders) {
    if (c !== 'engine' && c !== 'naive') throw new BenchUsageError(`unknown contender ${JSON.stringify(c)}\n${USAGE}`);
  }
  for (const name of flags.keys()) {
    if (!['scenario', 'contenders', 'verbose'].includes(name)) throw new BenchUsageError(`unknown flag --${name}\n${USAGE}`);
  }
  const options: BenchOptions = {
    scenario,
    contenders: contenders as Contender[],
    events: numbers.events ?? base.events,
    // A keys run has one key per event unless told otherwise.
    classes: numbers.classes ?? (scenario === 'keys' ? (numbers.events ?? base.events) : base.classes),
    partitions: numbers.partitions ?? base.partitions,
    seed: numbers.seed ?? base.seed,
    probes: numbers.probes ?? base.probes,
    probeIntervalMs: numbers['probe-interval-ms'] ?? base.probeIntervalMs,
    warmupMs: numbers['warmup-ms'] ?? base.warmupMs,
    backgroundRate: numbers['background-rate'] ?? base.backgroundRate,
    phaseTimeoutMs: numbers['phase-timeout-ms'] ?? base.phaseTimeoutMs,
    cacheMaxEntries: numbers['cache-max-entries'] ?? base.cacheMaxEntries,
    maxBytesPerPartition: numbers['max-bytes-per-partition'] ?? base.maxBytesPerPartition,
    verbose: flags.has('verbose') || env.BENCH_VERBOSE === '1',
  };
  if (options.events < 1 || options.classes < 1 || options.partitions < 1) {
    throw new BenchUsageError(`--events, --classes and --partitions must be at least 1\n${USAGE}`);
  }
  return options;
}
