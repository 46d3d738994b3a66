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

/**
 * Base error of `cdk/`: thrown at synth time, before any resource is created, so a wrong
 * configuration never reaches CloudFormation. `code` is stable and meant to be matched.
 */
export class DeploymentError extends Error {
  override readonly name: string = 'DeploymentError';
  readonly code: DeploymentErrorCode;
  /** Synth-time configuration errors never fix themselves on retry. */
  readonly retriable = false;
  readonly context: DeploymentErrorContext;

  constructor(code: DeploymentErrorCode, message: string, context: DeploymentErrorContext = {}) {
    super(message);
    this.code = code;
    this.context = context;
  }
}
