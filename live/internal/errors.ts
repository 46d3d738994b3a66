import { TributaryError, type TributaryErrorOptions } from '../../sdk/index.ts';

/** Error codes of the live handlers (`tributary/live`). */
export type LiveErrorCode = 'CONFIG_MISSING' | 'INVALID_ARGUMENT';

declare module '../../sdk/index.ts' {
  interface TributaryErrorCodes {
    live: LiveErrorCode;
  }
}

/** Error of the live handlers: a missing setting or a bad option, said with the value and the fix. */
export class LiveError extends TributaryError<'live', LiveErrorCode, Record<string, unknown>> {
  override readonly name: string = 'LiveError';

  constructor(code: LiveErrorCode, message: string, options: TributaryErrorOptions<Record<string, unknown>> = {}) {
    super('live', code, message, options);
  }
}
