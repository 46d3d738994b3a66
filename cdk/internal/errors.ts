import { TributaryError } from '../../sdk/index.ts';

/** Error codes of the deployment module. */
export type DeploymentErrorCode =
  /** A `TributaryApp` prop is missing, malformed or contradicts another prop. */
  | 'INVALID_PROPS'
  /** A trigger names a function that has no handler file. */
  | 'MISSING_HANDLER'
  /** A `-c tributary:*` context value of the CDK app is malformed. */
  | 'INVALID_CONTEXT';

/** Context that explains a deployment error. */
export interface DeploymentErrorContext {
  readonly prop?: string;
  readonly [field: string]: unknown;
}

declare module '../../sdk/index.ts' {
  interface TributaryErrorCodes {
    cdk: DeploymentErrorCode;
  }
}

/**
 * Error of `cdk/`: thrown at synth time, before any resource is created, so a wrong
 * configuration never reaches CloudFormation. `code` is stable and meant to be matched; it is
 * never retriable (a configuration does not fix itself).
 */
export class DeploymentError extends TributaryError<'cdk', DeploymentErrorCode, DeploymentErrorContext> {
  override readonly name: string = 'DeploymentError';

  constructor(code: DeploymentErrorCode, message: string, context: DeploymentErrorContext = {}) {
    super('cdk', code, message, { context });
  }
}
