/**
 * The Lambda side of triggers: the event the engine's dispatcher sends, the response it
 * understands, and `onViewChange` / `onEachViewChange`, which turn a typed handler into a
 * Lambda handler.
 */
import type { Change, Trigger } from './define.ts';
import { preview } from './define-fns.ts';
import { SdkError } from './errors.ts';
import { decodeState } from './exact-json.ts';
import { defaultHighWaterMarkStore, type HighWaterMark } from './high-water-mark.ts';

/**
 * The payload of one trigger invocation: a batch of changes of one view, at most one
 * change per item (view, key, window), in no particular order across items.
 */
export interface ViewChangeEvent<S = unknown> {
  /** Trigger name (`defineTrigger({ name })`). */
  readonly trigger: string;
  /** View name. */
  readonly view: string;
  readonly changes: readonly Change<S>[];
}

/** One change a handler could not process, named by its `idempotencyKey`. */
export interface BatchItemFailure {
  readonly itemIdentifier: string;
}

/**
 * What a trigger function may return. Changes listed in `batchItemFailures` are retried
 * (with backoff, then dead-lettered); all others count as delivered. Returning nothing
 * means every change was processed; throwing means none was.
 */
export interface ViewChangeResponse {
  readonly batchItemFailures: readonly BatchItemFailure[];
}

/** The parts of the AWS Lambda context the wrappers use; the local endpoint passes a compatible one. */
export interface LambdaContextLike {
  readonly functionName?: string;
  readonly awsRequestId?: string;
  getRemainingTimeInMillis?(): number;
}

/** What a trigger handler receives besides the changes. */
export interface ViewChangeContext {
  /** Trigger name from the event. */
  readonly trigger: string;
  /** View name from the event. */
  readonly view: string;
  /** The Lambda context, when invoked by a Lambda runtime. */
  readonly lambda: LambdaContextLike | undefined;
}

/** A Lambda handler produced by {@link onViewChange} or {@link onEachViewChange}. */
export type ViewChangeLambdaHandler = (event: unknown, context?: LambdaContextLike) => Promise<ViewChangeResponse>;

/** Handler of a whole batch: throw to have the whole batch retried, or report failed changes. */
export type ViewChangeBatchHandler<S> = (
  changes: readonly Change<S>[],
  context: ViewChangeContext,
) => Promise<void | ViewChangeResponse> | void | ViewChangeResponse;

/** Handler of one change: throw to have this change (and only it) retried. */
export type ViewChangeItemHandler<S> = (change: Change<S>, context: ViewChangeContext) => Promise<void> | void;

/** Options of {@link onViewChange}; {@link onEachViewChange} takes them too. */
export interface OnViewChangeOptions {
  /**
   * Refuse a change older than the newest one the handler accepted for its key, so the handler
   * never sees a key's versions go backwards, not even from an engine task that was paused past
   * its session timeout with an invocation already on the wire. `true` keeps the marks in the
   * views table named by `TRIBUTARY_TABLE` (under `pk = "_idempotency"`, which functions may
   * write); pass {@link createHighWaterMark} to inject a client or table. Costs one conditional
   * PutItem per change, before the handler runs; a refused change counts as processed and is
   * reported to `onStale`. A redelivery of the same version is accepted (use `once()` for its
   * side effects).
   * @default false
   */
  readonly highWaterMark?: boolean | HighWaterMark;
  /**
   * Called for each change refused by the high-water mark.
   * @default none
   */
  readonly onStale?: (change: Change<unknown>, context: ViewChangeContext) => void;
}

/** Options of {@link onEachViewChange}. */
export interface OnEachViewChangeOptions extends OnViewChangeOptions {
  /**
   * Changes processed at once. Changes in one event belong to distinct items, so they are
   * independent; changes of one item (should an event hold several) still run one after another.
   * @default 8
   */
  readonly concurrency?: number;
  /**
   * Where a failed change is reported.
   * @default console.error with the trigger, key, version and error message
   */
  readonly onError?: (error: unknown, change: Change<unknown>, context: ViewChangeContext) => void;
}

/** Enough parallelism to hide the latency of a side effect's network call, low enough to spare the callee. */
export const DEFAULT_ON_EACH_CONCURRENCY = 8;

const NO_FAILURES: ViewChangeResponse = Object.freeze({ batchItemFailures: Object.freeze([]) });

/**
 * Wraps a batch handler of a trigger's changes as a Lambda handler. The handler receives the
 * changes typed by the trigger's view state. Return nothing when all went well, throw to have
 * the whole batch retried, or return `{ batchItemFailures }` to retry only some changes.
 *
 * @example
 * import { onViewChange } from '../../sdk/index.ts';
 * import { classNearlyFull } from '../triggers.ts';
 *
 * export const handler = onViewChange(classNearlyFull, async (changes) => {
 *   for (const { key, after } of changes) console.log(`class ${key}: ${after.booked}/${after.capacity}`);
 * });
 */
export function onViewChange<S>(
  trigger: Trigger<S>,
  handler: ViewChangeBatchHandler<S>,
  options: OnViewChangeOptions = {},
): ViewChangeLambdaHandler {
  requireTrigger(trigger, 'onViewChange');
  if (typeof handler !== 'function') {
    throw new SdkError('INVALID_ARGUMENT', `onViewChange(trigger "${trigger.name}"): handler must be a function`, {
      context: { trigger: trigger.name },
    });
  }
  const highWaterMark = highWaterMarkOf(options, trigger, 'onViewChange');
  return async (event, lambda) => {
    const parsed = parseEvent<S>(trigger, event);
    const context: ViewChangeContext = { trigger: parsed.trigger, view: parsed.view, lambda };
    let changes = parsed.changes;
    if (highWaterMark !== undefined) {
      const store = highWaterMark();
      const accepted = await Promise.all(changes.map((change) => store.accept(trigger.name, change)));
      for (const [i, change] of changes.entries()) if (!accepted[i]) options.onStale?.(change as Change<unknown>, context);
      changes = changes.filter((_, i) => accepted[i]);
      if (changes.length === 0) return NO_FAILURES;
    }
    const response = await handler(changes, context);
    if (response === undefined || response === null) return NO_FAILURES;
    if (!Array.isArray((response as ViewChangeResponse).batchItemFailures)) {
      throw new SdkError(
        'HANDLER_FAILED',
        `trigger "${trigger.name}": handler returned ${preview(response)}; return nothing or { batchItemFailures: [{ itemIdentifier: change.idempotencyKey }] }`,
        { context: { trigger: trigger.name, view: trigger.view.name } },
      );
    }
    return response as ViewChangeResponse;
  };
}

/**
 * Wraps a handler of ONE change as a Lambda handler: each change of the event is processed on
 * its own, and a change whose handler throws is reported in `batchItemFailures`, so only that
 * change is retried (then dead-lettered) while the others count as delivered.
 *
 * @example
 * export const handler = onEachViewChange(classNearlyFull, async (change) => {
 *   await once(`notifyInstructor:${change.idempotencyKey}`, () => sendEmail(change.after));
 * });
 */
export function onEachViewChange<S>(
  trigger: Trigger<S>,
  handler: ViewChangeItemHandler<S>,
  options: OnEachViewChangeOptions = {},
): ViewChangeLambdaHandler {
  requireTrigger(trigger, 'onEachViewChange');
  if (typeof handler !== 'function') {
    throw new SdkError('INVALID_ARGUMENT', `onEachViewChange(trigger "${trigger.name}"): handler must be a function`, {
      context: { trigger: trigger.name },
    });
  }
  const concurrency = options.concurrency ?? DEFAULT_ON_EACH_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency <= 0) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `onEachViewChange(trigger "${trigger.name}"): concurrency must be a positive integer, received ${preview(concurrency)}`,
      { context: { trigger: trigger.name } },
    );
  }
  const onError = options.onError ?? logChangeError;
  const highWaterMark = highWaterMarkOf(options, trigger, 'onEachViewChange');
  return async (event, lambda) => {
    const parsed = parseEvent<S>(trigger, event);
    const context: ViewChangeContext = { trigger: parsed.trigger, view: parsed.view, lambda };
    // Group by item so that, should an event ever hold two changes of one item, they run in
    // order and a failure of the first also fails (without running) the later one.
    const groups = new Map<string, Change<S>[]>();
    for (const change of parsed.changes) {
      const id = `${change.key}\u0000${change.window?.start ?? ''}`;
      const group = groups.get(id);
      if (group) group.push(change);
      else groups.set(id, [change]);
    }
    const failures: BatchItemFailure[] = [];
    const queue = [...groups.values()];
    const worker = async (): Promise<void> => {
      for (let group = queue.shift(); group; group = queue.shift()) {
        for (let i = 0; i < group.length; i++) {
          const change = group[i]!;
          try {
            if (highWaterMark !== undefined && !(await highWaterMark().accept(trigger.name, change))) {
              options.onStale?.(change as Change<unknown>, context);
              continue;
            }
            await handler(change, context);
          } catch (error) {
            onError(error, change as Change<unknown>, context);
            for (const failed of group.slice(i)) failures.push({ itemIdentifier: failed.idempotencyKey });
            break;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
    return failures.length === 0 ? NO_FAILURES : { batchItemFailures: failures };
  };
}

function logChangeError(error: unknown, change: Change<unknown>, context: ViewChangeContext): void {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  console.error(
    `[${context.lambda?.functionName ?? context.trigger}] change ${change.view}/${change.key} v${change.version} failed, will be retried: ${message}`,
  );
}

/** The wrapper's high-water mark (resolved on first use, so `true` reads `TRIBUTARY_TABLE` only when invoked), or undefined when off. */
function highWaterMarkOf(options: OnViewChangeOptions, trigger: Trigger<any>, fn: string): (() => HighWaterMark) | undefined {
  const { highWaterMark, onStale } = options;
  if (onStale !== undefined && typeof onStale !== 'function') {
    throw new SdkError('INVALID_ARGUMENT', `${fn}(trigger "${trigger.name}"): onStale must be a function, received ${preview(onStale)}`, {
      context: { trigger: trigger.name },
    });
  }
  if (highWaterMark === undefined || highWaterMark === false) return undefined;
  if (highWaterMark === true) return defaultHighWaterMarkStore;
  if (typeof (highWaterMark as Partial<HighWaterMark> | null)?.accept !== 'function') {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `${fn}(trigger "${trigger.name}"): highWaterMark must be true, false or a createHighWaterMark() result, received ${preview(highWaterMark)}`,
      { context: { trigger: trigger.name } },
    );
  }
  return () => highWaterMark;
}

function requireTrigger(trigger: Trigger<any> | undefined, fn: string): void {
  if (!trigger || trigger.kind !== 'trigger') {
    throw new SdkError('INVALID_ARGUMENT', `${fn}: first argument must be a defineTrigger() result, received ${preview(trigger)}`);
  }
}

function parseEvent<S>(trigger: Trigger<S>, event: unknown): ViewChangeEvent<S> {
  const candidate = event as Partial<ViewChangeEvent<S>> | null | undefined;
  if (!candidate || typeof candidate !== 'object' || !Array.isArray(candidate.changes)) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `trigger "${trigger.name}": the function received ${preview(event)}, not a view change event { trigger, view, changes }; invoke it through the Tributary engine`,
      { context: { trigger: trigger.name, view: trigger.view.name } },
    );
  }
  if (candidate.view !== trigger.view.name) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `trigger "${trigger.name}" handles view "${trigger.view.name}" but received changes of view ${preview(candidate.view)}; subscribe this function with a trigger on "${trigger.view.name}" or wrap it with the right trigger`,
      { context: { trigger: trigger.name, view: trigger.view.name } },
    );
  }
  return {
    trigger: typeof candidate.trigger === 'string' ? candidate.trigger : trigger.name,
    view: candidate.view,
    // The payload is JSON, bigints tagged (`{ $bigint: "…" }`): handlers get the view's own types.
    changes: candidate.changes.map((change: Change<S>) => {
      const before = decodeState<S | undefined>(change.before);
      const after = decodeState<S>(change.after);
      return before === change.before && after === change.after ? change : { ...change, before, after };
    }),
  };
}
