/** Error codes of the SDK. */
export type SdkErrorCode =
  | 'INVALID_DEFINITION'
  | 'INVALID_ARGUMENT'
  | 'CONFIG_MISSING'
  | 'VIEW_NOT_CAUGHT_UP'
  | 'READ_FAILED'
  | 'HANDLER_FAILED'
  | 'IDEMPOTENCY_IN_PROGRESS'
  | 'IDEMPOTENCY_FAILED'
  | 'HIGH_WATER_MARK_FAILED';

/** Context that explains an SDK error. */
export interface SdkErrorContext {
  readonly view?: string;
  readonly trigger?: string;
  readonly key?: string;
  readonly [field: string]: unknown;
}

/**
 * Base error of the SDK. `code` is stable and meant to be matched; the message says what
 * was wrong, the value received and how to fix it.
 */
export class SdkError extends Error {
  override readonly name: string = 'SdkError';
  readonly code: SdkErrorCode;
  readonly retriable: boolean;
  readonly context: SdkErrorContext;

  constructor(
    code: SdkErrorCode,
    message: string,
    options: { retriable?: boolean; context?: SdkErrorContext; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }
}

/** A view, trigger or app definition is malformed. */
export class DefinitionError extends SdkError {
  override readonly name = 'DefinitionError';
  constructor(message: string, context: SdkErrorContext = {}) {
    super('INVALID_DEFINITION', message, { context });
  }
}
