/**
 * The bridge between the engine's batch loop and the trigger dispatcher: a {@link ChangeSink}
 * whose deliveries go through a {@link TriggerDispatcher} and whose undeliverable changes go
 * to the engine's {@link DeadLetterSink} (the dead-letter topic).
 */
import type { Change, Trigger } from '../../../sdk/index.ts';
import type { ChangeOrigin, ChangeOutcome, ChangeSink, DeadLetterSink } from '../change-sink.ts';
import type { TriggerDeadLetterEntry } from '../dead-letter.ts';
import { TriggerDispatcher, type TriggerDeadLetter, type TriggerDispatcherOptions } from './dispatcher.ts';

/** Options of {@link createTriggerChangeSink}: the dispatcher's, with a dead-letter sink instead of a callback. */
export interface TriggerChangeSinkOptions extends Omit<TriggerDispatcherOptions, 'deadLetter' | 'applyWhen'> {
  /** Where undeliverable changes go; a failed `send` keeps the batch uncommitted. */
  readonly deadLetters: DeadLetterSink;
}

/** A change sink backed by a trigger dispatcher; `dispatcher` exposes stats for metrics and backpressure. */
export interface TriggerChangeSink extends ChangeSink {
  readonly dispatcher: TriggerDispatcher;
  close(): Promise<void>;
}

/**
 * The engine's dead letter for a change the dispatcher gave up on. A change whose `when`
 * threw is `TRIGGER_WHEN_FAILED`; anything else `TRIGGER_DELIVERY_FAILED`.
 */
export function toDeadLetterEntry(letter: TriggerDeadLetter): TriggerDeadLetterEntry {
  const { change } = letter;
  const when = letter.error.type === 'WhenThrew';
  const coalesced = letter.idempotencyKeys.length > 1 ? ` (coalesced from ${letter.idempotencyKeys.length} changes)` : '';
  return {
    kind: 'trigger',
    code: when ? 'TRIGGER_WHEN_FAILED' : 'TRIGGER_DELIVERY_FAILED',
    reason: when
      ? `${letter.error.message}; make when() return a boolean for every change`
      : `trigger "${letter.trigger}": function ${letter.functionName} failed ${letter.attempts} attempt(s) for key "${change.key}" version ${change.version}${coalesced}: ${letter.error.type}: ${letter.error.message}; fix the function, then replay this change from the dead-letter topic`,
    trigger: letter.trigger,
    view: letter.view,
    key: change.key,
    function: letter.function,
    change,
    attempts: letter.attempts,
    error: letter.error,
  };
}

/**
 * Creates the engine's trigger change sink.
 *
 * @example
 * const changes = createTriggerChangeSink({
 *   lambda: new LambdaClient({}),
 *   functionNames: config.functionNames,
 *   deadLetters,                       // produces to app.deadLetterTopic
 *   onInvocation: metrics.invocation,  // TriggerInvocations / TriggerErrors
 * });
 */
export function createTriggerChangeSink(options: TriggerChangeSinkOptions): TriggerChangeSink {
  const { deadLetters, ...rest } = options;
  const dispatcher = new TriggerDispatcher({
    ...rest,
    applyWhen: false,
    deadLetter: (letter) => deadLetters.send([toDeadLetterEntry(letter)]),
  });
  return {
    dispatcher,
    async deliver(trigger: Trigger<any>, changes: readonly Change[], origin?: ChangeOrigin): Promise<readonly ChangeOutcome[]> {
      const outcomes = await dispatcher.deliver(trigger, changes, origin?.right !== undefined ? { right: origin.right } : {});
      return outcomes.map((outcome) => outcome.status);
    },
    close: () => dispatcher.close(),
  };
}
