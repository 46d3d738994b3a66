// Construct
export { TributaryApp, METRICS_NAMESPACE } from './internal/tributary-app.ts';
export type { EngineLogLevel, KafkaAuth, TributaryAppProps, TributaryKafkaProps } from './internal/props.ts';

// Live subscriptions: the WebSocket API in front of the live views
export { DEFAULT_LIVE_STAGE, LiveApi } from './internal/live.ts';
export type { LiveApiProps, TributaryLiveAuth, TributaryLiveProps } from './internal/live.ts';

// Stack of the CDK app (`cdk/bin/tributary.ts`), configured from `-c tributary:*` context
export { TributaryStack, propsFromContext, CONTEXT_KEYS } from './internal/stack.ts';
export type { TributaryStackProps } from './internal/stack.ts';

// Errors
export { DeploymentError } from './internal/errors.ts';
export type { DeploymentErrorCode, DeploymentErrorContext } from './internal/errors.ts';
