// Definitions
export { defineApp, defineTrigger, defineView, jsonDecoder } from './internal/define-fns.ts';
export type {
  App,
  AppOptions,
  Change,
  Decoder,
  EventOf,
  PoisonPolicy,
  RetryOptions,
  SourceRecord,
  StateOf,
  Trigger,
  TriggerOptions,
  View,
  ViewKey,
  ViewOptions,
} from './internal/define.ts';

// Errors
export { DefinitionError, SdkError } from './internal/errors.ts';
export type { SdkErrorCode, SdkErrorContext } from './internal/errors.ts';
