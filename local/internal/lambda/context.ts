import { randomBytes, randomUUID } from 'node:crypto';

/**
 * The `context` argument a Node.js Lambda handler receives; the same shape as `Context` in
 * `@types/aws-lambda`, so handlers written for AWS run unchanged on the local endpoint.
 */
export interface LambdaContext {
  callbackWaitsForEmptyEventLoop: boolean;
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  /** A string, as on AWS. */
  readonly memoryLimitInMB: string;
  readonly awsRequestId: string;
  readonly logGroupName: string;
  readonly logStreamName: string;
  readonly identity?: undefined;
  /** Decoded from the `ClientContext` invoke parameter (base64 JSON), when given. */
  readonly clientContext?: unknown;
  /** Milliseconds left before the invocation times out. */
  getRemainingTimeInMillis(): number;
}

/**
 * A handler the local endpoint can invoke: `(event, context) => result`, sync or async. A
 * callback-style handler (`(event, context, callback)`) is also accepted, as on AWS.
 */
export type LocalHandler = (event: any, context: LambdaContext, callback?: LambdaCallback) => unknown;

/** The legacy Lambda callback: `callback(error)` or `callback(null, result)`. */
export type LambdaCallback = (error?: unknown, result?: unknown) => void;

/** Everything needed to build one invocation's context. */
export interface InvocationContextParams {
  functionName: string;
  qualifier: string | undefined;
  region: string;
  accountId: string;
  memorySizeMb: number;
  deadline: number;
  clientContext: unknown;
  requestId?: string;
}

/** Builds the context of one invocation; log names follow AWS's format. */
export function createLambdaContext(params: InvocationContextParams): LambdaContext {
  const arn = `arn:aws:lambda:${params.region}:${params.accountId}:function:${params.functionName}`;
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: params.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: params.qualifier === undefined ? arn : `${arn}:${params.qualifier}`,
    memoryLimitInMB: String(params.memorySizeMb),
    awsRequestId: params.requestId ?? randomUUID(),
    logGroupName: `/aws/lambda/${params.functionName}`,
    logStreamName: `${day}/[$LATEST]${randomBytes(16).toString('hex')}`,
    clientContext: params.clientContext,
    getRemainingTimeInMillis: () => Math.max(0, params.deadline - Date.now()),
  };
}
