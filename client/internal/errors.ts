// The SDK's errors module alone, not `sdk/index.ts`: that entry loads the AWS SDK (reads), and
// the client runs in browsers with no AWS SDK inside. errors.ts imports nothing.
import { TributaryError, type TributaryErrorOptions } from '../../sdk/internal/errors.ts';

/** Error codes of the live client (`tributary/client`). */
export type ClientErrorCode =
  /** An option or a `subscribe` argument is malformed. */
  | 'INVALID_ARGUMENT'
  /** No WebSocket implementation: neither a global `WebSocket` nor the `WebSocket` option. */
  | 'NO_WEBSOCKET'
  /** The server refused a subscription (`error` frame: unauthorised, unknown view, too many, bad request). */
  | 'SUBSCRIBE_REFUSED'
  /** The server sent a frame that is not valid JSON or not a frame of the protocol. */
  | 'BAD_FRAME';

/** Context that explains a client error. */
export interface ClientErrorContext {
  readonly view?: string;
  /** The subscription's id on the wire. */
  readonly subscription?: string;
  /** The server's error code of a refused subscription (`UNAUTHORIZED`, `UNKNOWN_VIEW`, ...). */
  readonly serverCode?: string;
  readonly [field: string]: unknown;
}

// A type-only augmentation (no import is emitted), through the SDK's entry as every module does.
declare module '../../sdk/index.ts' {
  interface TributaryErrorCodes {
    client: ClientErrorCode;
  }
}

/** Error of `tributary/client`: bad arguments, refused subscriptions, malformed frames. */
export class ClientError extends TributaryError<'client', ClientErrorCode, ClientErrorContext> {
  override readonly name: string = 'ClientError';

  constructor(code: ClientErrorCode, message: string, options: TributaryErrorOptions<ClientErrorContext> = {}) {
    super('client', code, message, options);
  }
}
