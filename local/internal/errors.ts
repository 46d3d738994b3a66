import { TributaryError, type TributaryErrorOptions } from '../../sdk/index.ts';

/** Error codes of the embedded local stack. */
export type LocalStackErrorCode =
  | 'INVALID_OPTION'
  | 'JAVA_NOT_FOUND'
  | 'MAVEN_NOT_FOUND'
  | 'KAFKA_RESOLVE_FAILED'
  | 'KAFKA_START_FAILED'
  | 'DYNAMODB_START_FAILED'
  | 'LAMBDA_START_FAILED'
  | 'FUNCTION_LOAD_FAILED'
  | 'STACK_START_FAILED'
  | 'STOP_FAILED'
  | 'TABLE_CREATE_FAILED';

/** Context that explains a local stack error. */
export interface LocalStackErrorContext {
  readonly component?: 'kafka' | 'dynamodb' | 'lambda' | 'stack';
  readonly port?: number;
  readonly dataDir?: string;
  readonly functionName?: string;
  readonly [field: string]: unknown;
}

declare module '../../sdk/index.ts' {
  interface TributaryErrorCodes {
    local: LocalStackErrorCode;
  }
}

/**
 * Error of the local stack (`local/`). `code` is stable and meant to be matched; the message
 * says what was wrong, the value received and how to fix it.
 */
export class LocalStackError extends TributaryError<'local', LocalStackErrorCode, LocalStackErrorContext> {
  override readonly name: string = 'LocalStackError';

  constructor(code: LocalStackErrorCode, message: string, options: TributaryErrorOptions<LocalStackErrorContext> = {}) {
    super('local', code, message, options);
  }
}
