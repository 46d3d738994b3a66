/**
 * Lambda entry of the live `authorizer` handler, configured by the environment (docs/architecture.md,
 * "Environment variables"). It reads no view definition, so one bundle serves every app.
 */
import { createLiveHandlers } from '../internal/handlers.ts';

/** Lambda entry point. */
export const handler = createLiveHandlers(undefined).authorizer;
