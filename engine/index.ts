// Engine
export { startEngine } from './internal/runtime.ts';
export type { Engine, EngineState, EngineStats } from './internal/runtime.ts';
export {
  compileConfig,
  functionNamesFromEnv,
  healthHostFromEnv,
  healthPortFromEnv,
  kafkaConfigFromEnv,
  logLevelFromEnv,
  optionalIntFromEnv,
  tableNameFromEnv,
} from './internal/config.ts';
export type { EngineConfig, EngineOptions, Env } from './internal/config.ts';

// Stop signals (one Ctrl-C drains; a later second one forces)
export { DEFAULT_FORCE_AFTER_MS, decideShutdownSignal, exitLikeSignal, onShutdownSignal, SHUTDOWN_SIGNALS } from './internal/shutdown-signals.ts';
export type { ShutdownSignalDecision, ShutdownSignalOptions } from './internal/shutdown-signals.ts';

// Amazon MSK IAM auth (kafkajs OAUTHBEARER)
export { DEFAULT_MSK_TOKEN_REFRESH_MARGIN_MS, mskIamTokenProvider } from './internal/msk-iam.ts';
export type { MskAuthToken, MskAuthTokenSigner, MskIamTokenProviderOptions, OAuthBearerProvider } from './internal/msk-iam.ts';
export type { LogLevel } from './internal/log.ts';

// View lifecycle: definition identity
export { fingerprintParts, judgeDefinition, viewFingerprint } from './internal/lifecycle.ts';
export type { DefinitionCheck, DefinitionVerdict, RecordedVersion, ViewRegistryEntry } from './internal/lifecycle.ts';

// Dead letters
export { encodeDeadLetter } from './internal/dead-letter.ts';
export type { DeadLetter, PoisonCode, PoisonDeadLetter, TriggerDeadLetterEntry } from './internal/dead-letter.ts';

// Dead-letter replay
export { replayDeadLetters } from './internal/replay-runner.ts';
export type { ReplayDeadLettersOptions } from './internal/replay-runner.ts';
export { replayLetters, replayTopicOfTrigger, replayTopicOfView } from './internal/replay.ts';
export type { ReplayDeps, ReplayProgress, ReplaySelection, ReplaySummary, StoredDeadLetter, UnreplayableLetter } from './internal/replay.ts';

// Test driver
export { createTestDriver, MemoryItemStore } from './internal/test-driver.ts';
export type { DeliveredChange, TestDriver, TestDriverOptions, TestRecord } from './internal/test-driver.ts';

// Errors
export { EngineError } from './internal/errors.ts';
export type { EngineErrorCode, EngineErrorContext } from './internal/errors.ts';
