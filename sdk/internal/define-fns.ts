import type {
  App,
  AppOptions,
  Decoder,
  Trigger,
  TriggerOptions,
  View,
  ViewOptions,
} from './define.ts';
import { MAX_STATE_BYTES } from './contract.ts';
import { DefinitionError } from './errors.ts';
import { parseJsonExact, parseJsonStrict } from './exact-json.ts';

/** Items are capped at 400 KB by DynamoDB; state gets the bulk, bookkeeping the rest. */
export const DEFAULT_MAX_STATE_BYTES = 100_000;
/** Large enough to amortize an invocation, small enough to stay far below the 6 MB payload cap. */
export const DEFAULT_TRIGGER_BATCH_SIZE = 100;
/**
 * No wait: the engine's consumer batch already gathers a batch's changes, and each wait is
 * latency every change pays. Raise it to gather changes of several partitions into fewer,
 * fuller invocations.
 */
export const DEFAULT_TRIGGER_MAX_BATCH_WAIT_MS = 0;
/** Parallel invocations per trigger; Lambda's default account concurrency is far above this. */
export const DEFAULT_TRIGGER_CONCURRENCY = 8;
/**
 * Every change: a missed transition is a silent wrong answer (a refund not sent), while the
 * price of `'every'` is invocations (and, for a key with many events in a batch, delivery
 * time), which show; a user who wants fewer opts into `'coalesced'`.
 */
export const DEFAULT_TRIGGER_CHANGES = 'every';
/** Five attempts with capped exponential backoff ride out a throttle or a cold start. */
export const DEFAULT_RETRY = { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 5_000 } as const;

const VIEW_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const APP_NAME = /^[A-Za-z][A-Za-z0-9-]{0,39}$/;
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The default decoder (`decode: 'json'`): UTF-8 JSON, as `JSON.parse`, except that an integer a
 * double cannot hold exactly (e.g. 9007199254740993) throws instead of being rounded.
 */
export const jsonDecoder: Decoder<any> = (value) => parseJsonStrict(utf8.decode(value));

/**
 * `decode: 'json-bigint'`: UTF-8 JSON whose integers past ±(2^53−1) decode to `bigint`, exactly;
 * a non-integer a double cannot hold without losing digits throws.
 */
export const jsonBigintDecoder: Decoder<any> = (value) => parseJsonExact(utf8.decode(value));

const JSON_DECODERS: Readonly<Record<string, Decoder<any>>> = { json: jsonDecoder, 'json-bigint': jsonBigintDecoder };

function requireStandardSchema(schema: unknown, name: string, context: Record<string, unknown>): void {
  const standard = (schema as { '~standard'?: { version?: unknown; validate?: unknown } } | null)?.['~standard'];
  if (standard === undefined || standard === null || standard.version !== 1 || typeof standard.validate !== 'function') {
    throw new DefinitionError(
      `view "${name}": schema must implement Standard Schema v1 (a "~standard" property with version 1 and validate()), received ${preview(schema)}; pass a zod, valibot or arktype schema`,
      context,
    );
  }
}

function requireFunction(value: unknown, what: string, context: Record<string, unknown>): void {
  if (typeof value !== 'function') {
    throw new DefinitionError(
      `${what} must be a function, received ${preview(value)}; pass a function`,
      context,
    );
  }
}

function requirePositiveInt(value: unknown, what: string, context: Record<string, unknown>): void {
  if (!Number.isInteger(value) || (value as number) <= 0) {
    throw new DefinitionError(`${what} must be a positive integer, received ${preview(value)}`, context);
  }
}

/** Short, safe rendering of a received value for error messages. */
export function preview(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return String(value);
    return text.length > 80 ? `${text.slice(0, 80)}…` : text;
  } catch {
    return String(value);
  }
}

/**
 * Defines a view: events of `source` folded by `key` into state with `reduce`.
 *
 * @example
 * const attendance = defineView({
 *   name: 'classAttendance',
 *   source: 'bookings',
 *   key: (e: BookingEvent) => e.classId,
 *   initial: () => ({ booked: 0 }),
 *   reduce: (s, e) => ({ booked: s.booked + (e.type === 'booked' ? 1 : -1) }),
 * });
 */
export function defineView<E, S>(options: ViewOptions<E, S>): View<E, S> {
  const name = options?.name;
  if (typeof name !== 'string' || !VIEW_NAME.test(name)) {
    throw new DefinitionError(
      `view name must be 1-64 letters, digits, "_" or "-", received ${preview(name)}`,
      { view: String(name) },
    );
  }
  const context = { view: name };
  if (typeof options.source !== 'string' || !TOPIC_NAME.test(options.source)) {
    throw new DefinitionError(
      `view "${name}": source must be a Kafka topic name (letters, digits, ".", "_", "-"), received ${preview(options.source)}`,
      context,
    );
  }
  requireFunction(options.key, `view "${name}": key`, context);
  requireFunction(options.initial, `view "${name}": initial`, context);
  requireFunction(options.reduce, `view "${name}": reduce`, context);
  const decode = typeof options.decode === 'string' ? JSON_DECODERS[options.decode] : options.decode ?? jsonDecoder;
  if (decode === undefined) {
    throw new DefinitionError(
      `view "${name}": decode must be a function, 'json' or 'json-bigint', received ${preview(options.decode)}`,
      context,
    );
  }
  requireFunction(decode, `view "${name}": decode`, context);
  if (options.schema !== undefined) requireStandardSchema(options.schema, name, context);
  if (options.filter !== undefined) requireFunction(options.filter, `view "${name}": filter`, context);
  const maxStateBytes = options.maxStateBytes ?? DEFAULT_MAX_STATE_BYTES;
  requirePositiveInt(maxStateBytes, `view "${name}": maxStateBytes`, context);
  if (maxStateBytes > MAX_STATE_BYTES) {
    throw new DefinitionError(
      `view "${name}": maxStateBytes ${maxStateBytes} leaves no room under DynamoDB's 400 KB item cap; use at most ${MAX_STATE_BYTES}`,
      context,
    );
  }
  const onPoison = options.onPoison ?? 'dead-letter';
  if (onPoison !== 'dead-letter' && onPoison !== 'stop') {
    throw new DefinitionError(
      `view "${name}": onPoison must be "dead-letter" or "stop", received ${preview(onPoison)}`,
      context,
    );
  }
  return Object.freeze({
    kind: 'view',
    name,
    source: options.source,
    decode: decode as Decoder<E>,
    schema: options.schema,
    filter: options.filter ?? (() => true),
    key: options.key,
    initial: options.initial,
    reduce: options.reduce,
    maxStateBytes,
    onPoison,
  });
}

/**
 * Subscribes a Lambda function to a view's changes.
 *
 * @example
 * const nearlyFull = defineTrigger({
 *   view: classAttendance,
 *   function: 'notifyInstructor',
 *   when: ({ before, after }) => (before?.booked ?? 0) < 0.9 * after.capacity && after.booked >= 0.9 * after.capacity,
 * });
 */
export function defineTrigger<S>(options: TriggerOptions<S>): Trigger<S> {
  const view = options?.view;
  if (!view || view.kind !== 'view') {
    throw new DefinitionError(`trigger view must be a view from defineView(), received ${preview(view)}`);
  }
  const fn = options.function;
  if (typeof fn !== 'string' || !/^[A-Za-z0-9_:.-]{1,140}$/.test(fn)) {
    throw new DefinitionError(
      `trigger on view "${view.name}": function must be a Lambda function name, received ${preview(fn)}`,
      { view: view.name },
    );
  }
  const name = options.name ?? `${view.name}-${fn}`;
  const context = { view: view.name, trigger: name };
  if (options.when !== undefined) requireFunction(options.when, `trigger "${name}": when`, context);
  const batchSize = options.batchSize ?? DEFAULT_TRIGGER_BATCH_SIZE;
  requirePositiveInt(batchSize, `trigger "${name}": batchSize`, context);
  const maxBatchWaitMs = options.maxBatchWaitMs ?? DEFAULT_TRIGGER_MAX_BATCH_WAIT_MS;
  if (!Number.isInteger(maxBatchWaitMs) || maxBatchWaitMs < 0) {
    throw new DefinitionError(
      `trigger "${name}": maxBatchWaitMs must be a non-negative integer, received ${preview(maxBatchWaitMs)}`,
      context,
    );
  }
  const concurrency = options.concurrency ?? DEFAULT_TRIGGER_CONCURRENCY;
  requirePositiveInt(concurrency, `trigger "${name}": concurrency`, context);
  const changes = options.changes ?? DEFAULT_TRIGGER_CHANGES;
  if (changes !== 'every' && changes !== 'coalesced') {
    throw new DefinitionError(
      `trigger "${name}": changes must be 'every' (one change per event) or 'coalesced' (one change per item and batch), received ${preview(changes)}`,
      context,
    );
  }
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  requirePositiveInt(retry.maxAttempts, `trigger "${name}": retry.maxAttempts`, context);
  requirePositiveInt(retry.initialBackoffMs, `trigger "${name}": retry.initialBackoffMs`, context);
  requirePositiveInt(retry.maxBackoffMs, `trigger "${name}": retry.maxBackoffMs`, context);
  if (retry.maxBackoffMs < retry.initialBackoffMs) {
    throw new DefinitionError(
      `trigger "${name}": retry.maxBackoffMs (${retry.maxBackoffMs}) is below retry.initialBackoffMs (${retry.initialBackoffMs}); raise maxBackoffMs`,
      context,
    );
  }
  return Object.freeze({
    kind: 'trigger',
    name,
    view,
    function: fn,
    when: options.when ?? (() => true),
    batchSize,
    maxBatchWaitMs,
    retry,
    concurrency,
    changes,
  });
}

/**
 * Defines the app: the one module the engine loads, the CDK app deploys and `npm run dev` runs.
 *
 * @example
 * export const app = defineApp({ name: 'gym', views: [classAttendance], triggers: [nearlyFull] });
 */
export function defineApp(options: AppOptions): App {
  const name = options?.name;
  if (typeof name !== 'string' || !APP_NAME.test(name)) {
    throw new DefinitionError(
      `app name must start with a letter and hold up to 40 letters, digits or "-", received ${preview(name)}`,
    );
  }
  if (!Array.isArray(options.views) || options.views.length === 0) {
    throw new DefinitionError(`app "${name}": views must be a non-empty array of defineView() results`);
  }
  const views = [...options.views];
  const seen = new Set<string>();
  for (const view of views) {
    if (!view || view.kind !== 'view') {
      throw new DefinitionError(`app "${name}": views holds ${preview(view)}, not a defineView() result`);
    }
    if (seen.has(view.name)) {
      throw new DefinitionError(`app "${name}": two views are named "${view.name}"; view names must be unique`);
    }
    seen.add(view.name);
  }
  const triggers = [...(options.triggers ?? [])];
  const triggerNames = new Set<string>();
  for (const trigger of triggers) {
    if (!trigger || trigger.kind !== 'trigger') {
      throw new DefinitionError(`app "${name}": triggers holds ${preview(trigger)}, not a defineTrigger() result`);
    }
    if (!views.includes(trigger.view)) {
      throw new DefinitionError(
        `app "${name}": trigger "${trigger.name}" names view "${trigger.view.name}", which is not in the app's views; add it to views`,
        { trigger: trigger.name, view: trigger.view.name },
      );
    }
    if (triggerNames.has(trigger.name)) {
      throw new DefinitionError(
        `app "${name}": two triggers are named "${trigger.name}"; give one a distinct name`,
        { trigger: trigger.name },
      );
    }
    triggerNames.add(trigger.name);
  }
  const deadLetterTopic = options.deadLetterTopic ?? `${name}.dead-letter`;
  if (!TOPIC_NAME.test(deadLetterTopic)) {
    throw new DefinitionError(`app "${name}": deadLetterTopic is not a valid topic name: ${preview(deadLetterTopic)}`);
  }
  const sourceTopics = [...new Set(views.map((v) => v.source))];
  if (sourceTopics.includes(deadLetterTopic)) {
    throw new DefinitionError(
      `app "${name}": deadLetterTopic "${deadLetterTopic}" is also a view source; poison would loop. Choose another deadLetterTopic`,
    );
  }
  return Object.freeze({
    kind: 'app',
    name,
    views,
    triggers,
    deadLetterTopic,
    sourceTopics,
    functions: [...new Set(triggers.map((t) => t.function))],
  });
}
