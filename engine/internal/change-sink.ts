/**
 * Where the engine hands trigger changes, and where poison goes: the two outward edges of a
 * batch besides the views table. The runtime plugs in the trigger dispatcher and a Kafka
 * producer; the test driver plugs in memory.
 */
import type { Change, Trigger } from '../../sdk/index.ts';
import type { DeadLetter } from './dead-letter.ts';
import type { DeliveryVerdict } from './ownership.ts';

/** What happened to one change handed to a {@link ChangeSink}. */
export type ChangeOutcome = 'delivered' | 'dead-lettered' | 'skipped' | 'superseded';

/** Where a batch's changes came from, as the sink needs it to fence their delivery. */
export interface ChangeOrigin {
  /**
   * Whether this task may still deliver the batch's changes, asked right before each
   * invocation; when `lost`, the sink rejects with an error of code `PARTITION_LOST`.
   * @default always `owned`
   */
  readonly right?: () => DeliveryVerdict;
  /**
   * Views the batch leaves out: their builds fold these records (build.ts, `BuildGate`).
   * @default none
   */
  readonly skipViews?: ReadonlySet<string>;
}

/**
 * Delivers changes of one trigger. Resolves once every change is delivered or dead-lettered
 * (the engine commits offsets after that); rejects when that cannot be guaranteed (the engine
 * then does not commit, and the changes are delivered again after a restart).
 */
export interface ChangeSink {
  deliver(trigger: Trigger<any>, changes: readonly Change[], origin?: ChangeOrigin): Promise<readonly ChangeOutcome[]>;
  /** Stops accepting changes; in-flight deliveries settle or reject. */
  close?(): Promise<void>;
}

/** Makes dead letters durable (the dead-letter topic). Resolves once they are. */
export interface DeadLetterSink {
  send(letters: readonly DeadLetter[]): Promise<void>;
}
