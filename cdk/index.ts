// Construct
export { TributaryApp, METRICS_NAMESPACE } from './internal/tributary-app.ts';
export type { EngineLogLevel, KafkaAuth, TributaryAppProps, TributaryKafkaProps } from './internal/props.ts';

// Stack of the CDK app (`cdk/bin/tributary.ts`), configured from `-c tributary:*` context
export { TributaryStack, propsFromContext, CONTEXT_KEYS } from './internal/stack.ts';
export type { TributaryStackProps } from './internal/stack.ts';

// Errors
export { DeploymentError } from './internal/errors.ts';
export type { DeploymentErrorCode, DeploymentErrorContext } from './internal/errors.ts';
