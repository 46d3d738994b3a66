/**
 * Wire shapes of the Lambda Invoke API's errors, as the AWS SDK for JavaScript v3 parses them:
 * service errors carry `x-amzn-errortype` and a JSON body `{ Type, message }`; function errors
 * are a 200 with `X-Amz-Function-Error` and `{ errorType, errorMessage, trace }`.
 */

/** A service-level error (the SDK throws it as an exception named `errorType`). */
export interface ServiceErrorReply {
  readonly status: number;
  readonly errorType: string;
  readonly message: string;
  /** `User` for caller mistakes, `Service` for the service's own. */
  readonly type: 'User' | 'Service';
  /** Extra body fields, e.g. `Reason` on throttling. */
  readonly extra?: Record<string, string>;
}

/** The payload of a function error (the SDK returns it with `FunctionError: 'Unhandled'`). */
export interface FunctionErrorPayload {
  readonly errorType: string;
  readonly errorMessage: string;
  readonly trace?: readonly string[];
}

/** Converts whatever a handler threw into the payload the Node.js Lambda runtime reports. */
export function toFunctionErrorPayload(error: unknown): FunctionErrorPayload {
  if (error instanceof Error) {
    return {
      errorType: error.name || error.constructor?.name || 'Error',
      errorMessage: error.message,
      trace: (error.stack ?? '').split('\n').filter((line) => line !== ''),
    };
  }
  if (typeof error === 'string') return { errorType: 'string', errorMessage: error, trace: [] };
  let message: string;
  try {
    message = JSON.stringify(error) ?? String(error);
  } catch {
    message = String(error);
  }
  return { errorType: typeof error, errorMessage: message, trace: [] };
}

/** 404 for a function the endpoint does not know. */
export function functionNotFound(arn: string): ServiceErrorReply {
  return { status: 404, errorType: 'ResourceNotFoundException', type: 'User', message: `Function not found: ${arn}` };
}

/** 413 for a request payload over the limit. */
export function requestTooLarge(limitBytes: number, operation: string): ServiceErrorReply {
  return {
    status: 413,
    errorType: 'RequestTooLargeException',
    type: 'User',
    message: `Request must be smaller than ${limitBytes} bytes for the ${operation} operation`,
  };
}

/** 400 for a payload that is not JSON. */
export function invalidRequestContent(detail: string): ServiceErrorReply {
  return {
    status: 400,
    errorType: 'InvalidRequestContentException',
    type: 'User',
    message: `Could not parse request body into json: ${detail}`,
  };
}

/** 400 for malformed parameters (function name, invocation type, log type). */
export function validationError(message: string): ServiceErrorReply {
  return { status: 400, errorType: 'ValidationException', type: 'User', message };
}

/** 429 when the concurrency limit is reached; the SDK retries it as throttling. */
export function tooManyRequests(limit: number): ServiceErrorReply {
  return {
    status: 429,
    errorType: 'TooManyRequestsException',
    type: 'User',
    message: `Rate Exceeded. More than ${limit} concurrent invocations on the local endpoint (maxConcurrency).`,
    extra: { Reason: 'ConcurrentInvocationLimitExceeded' },
  };
}

/** 503 while the endpoint is stopping; the SDK retries it. */
export function serviceUnavailable(): ServiceErrorReply {
  return { status: 503, errorType: 'ServiceException', type: 'Service', message: 'The local Lambda endpoint is stopping.' };
}
