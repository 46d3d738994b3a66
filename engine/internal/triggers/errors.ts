import { TributaryError, type TributaryErrorOptions } from '../../../sdk/index.ts';

/** Error codes of the trigger dispatcher. */
export type TriggerErrorCode =
  /** `deliver()` received something that is not a trigger or not an array of changes. */
  | 'INVALID_ARGUMENT'
  /** A change could not be delivered and the dead-letter callback failed too: do not commit. */
  | 'DEAD_LETTER_FAILED'
  /** The dispatcher was closed before the change was delivered or dead-lettered. */
  | 'DISPATCHER_CLOSED'
  /** The call's delivery right said `lost` before an invocation: the change was not sent. */
  | 'PARTITION_LOST';

/** Context that explains a trigger error. */
export interface TriggerErrorContext {
  readonly trigger?: string;
  readonly view?: string;
  readonly key?: string;
  readonly version?: number;
  readonly function?: string;
  readonly [field: string]: unknown;
}

declare module '../../../sdk/index.ts' {
  interface TributaryErrorCodes {
    triggers: TriggerErrorCode;
  }
}

/**
 * Error of the trigger dispatcher: a stable `code`, whether retrying the same call can succeed
 * (`retriable`), and the trigger/change it concerns.
 */
export class TriggerError extends TributaryError<'triggers', TriggerErrorCode, TriggerErrorContext> {
  override readonly name: string = 'TriggerError';

  constructor(code: TriggerErrorCode, message: string, options: TributaryErrorOptions<TriggerErrorContext> = {}) {
    super('triggers', code, message, options);
  }
}
