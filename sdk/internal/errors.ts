/** Error codes of the SDK. */
export type SdkErrorCode =
  | 'INVALID_DEFINITION'
  | 'INVALID_ARGUMENT'
  | 'CONFIG_MISSING'
  | 'VIEW_NOT_CAUGHT_UP'
  | 'READ_FAILED'
  | 'WINDOW_EXPIRED'
  | 'HANDLER_FAILED'
  | 'IDEMPOTENCY_IN_PROGRESS'
  | 'IDEMPOTENCY_FAILED'
  | 'HIGH_WATER_MARK_FAILED'
  | 'NULL_VALUE'
  | 'DISTINCT_CAP_EXCEEDED';

/** Context that explains an SDK error. */
export interface SdkErrorContext {
  readonly view?: string;
  readonly trigger?: string;
  readonly key?: string;
  readonly [field: string]: unknown;
}

/**
 * The error codes of each part of Tributary, by module. Each module adds its own list to this
 * interface (declaration merging), so {@link TributaryErrorCode} is the union of them all and
 * {@link isTributaryError} checks a code against its module's list.
 */
export interface TributaryErrorCodes {
  sdk: SdkErrorCode;
}

/** A part of Tributary that throws coded errors: `sdk`, `engine`, `triggers`, `local`, `cdk`. */
export type ErrorModule = keyof TributaryErrorCodes;

/** Every error code, qualified by its module: `engine.STORAGE_FAILED`, `sdk.INVALID_DEFINITION`, ... */
export type TributaryErrorCode = { [M in ErrorModule]: `${M}.${TributaryErrorCodes[M]}` }[ErrorModule];

/** Options of a {@link TributaryError}. */
export interface TributaryErrorOptions<Context> {
  /** Whether the same operation can succeed when retried. @default false */
  readonly retriable?: boolean;
  /** The coordinates that explain the error (view, key, topic, partition, offset, ...). @default {} */
  readonly context?: Context;
  /** The error this one translates. @default undefined */
  readonly cause?: unknown;
}

/**
 * The one base error of Tributary. Every module's error (`SdkError`, `EngineError`,
 * `TriggerError`, `LocalStackError`, `DeploymentError`) extends it with its `module` and its
 * own code list: match on `module` and `code` (or {@link isTributaryError}), never on messages.
 * The message says what was wrong, the value received and how to fix it.
 */
export class TributaryError<
  Module extends ErrorModule = ErrorModule,
  Code extends TributaryErrorCodes[Module] = TributaryErrorCodes[Module],
  Context extends Readonly<Record<string, unknown>> = Readonly<Record<string, unknown>>,
> extends Error {
  override readonly name: string = 'TributaryError';
  readonly module: Module;
  readonly code: Code;
  readonly retriable: boolean;
  readonly context: Context;

  constructor(module: Module, code: Code, message: string, options: TributaryErrorOptions<Context> = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.module = module;
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? ({} as Context);
  }

  /** The code qualified by its module, e.g. `engine.STORAGE_FAILED`: unique across Tributary. */
  get qualifiedCode(): TributaryErrorCode {
    return `${this.module}.${this.code}` as TributaryErrorCode;
  }
}

/**
 * Whether `error` is a Tributary error, optionally of `module` and one of `codes` (typed by that
 * module's code list).
 *
 * @example
 * try { await reader.get(view, key); }
 * catch (error) { if (isTributaryError(error, 'sdk', 'READ_FAILED') && error.retriable) retry(); else throw error; }
 */
export function isTributaryError<M extends ErrorModule>(
  error: unknown,
  module?: M,
  ...codes: TributaryErrorCodes[M][]
): error is TributaryError<M> {
  if (!(error instanceof TributaryError)) return false;
  if (module !== undefined && error.module !== module) return false;
  return codes.length === 0 || codes.includes(error.code as TributaryErrorCodes[M]);
}

/** Error of the SDK: definitions, reads, handler wrappers, idempotency. */
export class SdkError extends TributaryError<'sdk', SdkErrorCode, SdkErrorContext> {
  override readonly name: string = 'SdkError';

  constructor(code: SdkErrorCode, message: string, options: TributaryErrorOptions<SdkErrorContext> = {}) {
    super('sdk', code, message, options);
  }
}

/** A view, trigger or app definition is malformed. */
export class DefinitionError extends SdkError {
  override readonly name = 'DefinitionError';
  constructor(message: string, context: SdkErrorContext = {}) {
    super('INVALID_DEFINITION', message, { context });
  }
}
