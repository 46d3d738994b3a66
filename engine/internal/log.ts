/** Structured JSON logs and CloudWatch EMF metric lines. */
import { METRICS_NAMESPACE } from '../../sdk/contract/index.ts';

/** Log levels, least to most severe. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger: one JSON object per line with `level`, `msg`, `time` and fields. */
export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Writes a line as is (EMF). */
  raw(line: string): void;
  enabled(level: LogLevel): boolean;
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const out: Record<string, unknown> = { type: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    if (value.cause !== undefined) out.cause = value.cause;
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/**
 * Creates a JSON-lines logger.
 *
 * @example
 * const log = createLogger('info', (line) => process.stdout.write(line + '\n'), { app: 'gym' });
 * log.info('batch applied', { topic: 'bookings', partition: 0, lag: 12 });
 */
export function createLogger(
  level: LogLevel,
  sink: (line: string) => void,
  base: Record<string, unknown> = {},
): Logger {
  const min = RANK[level];
  const log = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    let line: string;
    try {
      line = JSON.stringify({ level: lvl, time: new Date().toISOString(), msg, ...base, ...fields }, replacer);
    } catch {
      line = JSON.stringify({ level: lvl, time: new Date().toISOString(), msg, ...base, fieldsError: 'unserializable' });
    }
    sink(line);
  };
  return {
    log,
    debug: (msg, fields) => log('debug', msg, fields),
    info: (msg, fields) => log('info', msg, fields),
    warn: (msg, fields) => log('warn', msg, fields),
    error: (msg, fields) => log('error', msg, fields),
    raw: sink,
    enabled: (lvl) => RANK[lvl] >= min,
  };
}

/**
 * Metric values of one EMF line. The CDK alarms and autoscaling read these names
 * (docs/architecture.md, "Metrics, logs and health").
 */
export interface EngineMetrics {
  readonly ConsumerLag: number;
  readonly DeadLetters: number;
  readonly EventsApplied: number;
  readonly TriggerInvocations: number;
  readonly TriggerErrors: number;
}

/**
 * One CloudWatch Embedded Metric Format line: namespace `Tributary`, dimension `App`.
 *
 * @example
 * log.raw(emfLine('gym', { ConsumerLag: 12, DeadLetters: 0, EventsApplied: 500, TriggerInvocations: 3, TriggerErrors: 0 }));
 */
export function emfLine(app: string, metrics: EngineMetrics, timestampMs: number = Date.now()): string {
  return JSON.stringify({
    _aws: {
      Timestamp: timestampMs,
      CloudWatchMetrics: [
        {
          Namespace: METRICS_NAMESPACE,
          Dimensions: [['App']],
          Metrics: Object.keys(metrics).map((name) => ({ Name: name, Unit: 'Count' })),
        },
      ],
    },
    App: app,
    ...metrics,
  });
}

/**
 * One EMF line of per-view counts: namespace `Tributary`, dimensions `App` and `View` (e.g.
 * `LateEvents` of a windowed view).
 *
 * @example
 * log.raw(emfViewLine('gym', 'bookingsPerDay', { LateEvents: 3 }));
 */
export function emfViewLine(app: string, view: string, metrics: Readonly<Record<string, number>>, timestampMs: number = Date.now()): string {
  return JSON.stringify({
    _aws: {
      Timestamp: timestampMs,
      CloudWatchMetrics: [
        {
          Namespace: METRICS_NAMESPACE,
          Dimensions: [['App', 'View']],
          Metrics: Object.keys(metrics).map((name) => ({ Name: name, Unit: 'Count' })),
        },
      ],
    },
    App: app,
    View: view,
    ...metrics,
  });
}
