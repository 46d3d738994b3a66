import { TributaryError, type TributaryErrorOptions } from '../../sdk/index.ts';

/** Error codes of the `tributary` command line. */
export type CliErrorCode =
  /** A wrong command, option or argument. */
  | 'USAGE'
  /** The app, handler or seed module could not be loaded. */
  | 'MODULE_LOAD_FAILED'
  /** A view, dead letter or file that was asked for does not exist. */
  | 'NOT_FOUND'
  /** Input that cannot be produced (a line that is not JSON, a key field missing). */
  | 'INVALID_INPUT'
  /** Nothing to talk to: no broker or table configured. */
  | 'NOT_CONFIGURED';

/** Context that explains a CLI error. */
export interface CliErrorContext {
  readonly command?: string;
  readonly [field: string]: unknown;
}

declare module '../../sdk/index.ts' {
  interface TributaryErrorCodes {
    cli: CliErrorCode;
  }
}

/**
 * Error of the `tributary` command line (`cli/`). The message is the one line the command
 * prints: what was wrong, the value received, and what to do.
 */
export class CliError extends TributaryError<'cli', CliErrorCode, CliErrorContext> {
  override readonly name: string = 'CliError';

  constructor(code: CliErrorCode, message: string, options: TributaryErrorOptions<CliErrorContext> = {}) {
    super('cli', code, message, options);
  }
}
