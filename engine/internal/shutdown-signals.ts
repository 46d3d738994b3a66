/**
 * The one rule for stop signals, shared by the engine's container entry and `npm run dev`:
 * the first SIGINT/SIGTERM starts a graceful stop, repeats that arrive soon after it are the same
 * request delivered again, and only a repeat given deliberately later forces the process out.
 */
import { constants as osConstants } from 'node:os';

/** The signals that ask a process to stop: SIGTERM from ECS and Docker, SIGINT from Ctrl-C. */
export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/**
 * How long after the first stop signal a repeat still counts as the same request. A terminal's
 * Ctrl-C reaches every process of its group, so a process run under `tsx` or `npm run` gets it
 * directly and again relayed by its parent, milliseconds to a few hundred milliseconds apart on
 * a loaded machine; a person pressing Ctrl-C a second time to give up waiting takes longer.
 */
export const DEFAULT_FORCE_AFTER_MS = 2_000;

/** What a stop signal means: start stopping, the same request again, or stop waiting. */
export type ShutdownSignalDecision = 'stop' | 'repeat' | 'force';

/**
 * Classifies one stop signal: `firstAtMs` is when the first one arrived (undefined when this is
 * the first), `nowMs` is now.
 *
 * @example
 * decideShutdownSignal(undefined, 1_000, 2_000); // 'stop'
 * decideShutdownSignal(1_000, 1_050, 2_000);     // 'repeat' (the relayed copy of the same Ctrl-C)
 * decideShutdownSignal(1_000, 4_000, 2_000);     // 'force'
 */
export function decideShutdownSignal(firstAtMs: number | undefined, nowMs: number, forceAfterMs: number): ShutdownSignalDecision {
  if (firstAtMs === undefined) return 'stop';
  return nowMs - firstAtMs >= forceAfterMs ? 'force' : 'repeat';
}

/** Exits with 128 + the signal's number, the status a shell shows for a process the signal killed. */
export function exitLikeSignal(signal: NodeJS.Signals): never {
  process.exit(128 + osConstants.signals[signal]);
}

/** Options of {@link onShutdownSignal}. */
export interface ShutdownSignalOptions {
  /** Called once, on the first stop signal: begin the graceful stop. */
  onStop: (signal: NodeJS.Signals) => void;
  /**
   * Called for a repeat within `forceAfterMs` of the first signal, which is ignored.
   * @default nothing
   */
  onRepeat?: (signal: NodeJS.Signals, sinceFirstMs: number) => void;
  /**
   * Called for a repeat `forceAfterMs` or later after the first signal.
   * @default {@link exitLikeSignal}, as the signal's default action would
   */
  onForce?: (signal: NodeJS.Signals) => void;
  /** @default {@link DEFAULT_FORCE_AFTER_MS} */
  forceAfterMs?: number;
}

/**
 * Listens for SIGINT and SIGTERM by {@link decideShutdownSignal}'s rule and returns a function that
 * stops listening. The listeners stay while the stop runs: a process without them dies of the
 * next signal, which is exactly the relayed copy of the first.
 *
 * @example
 * const release = onShutdownSignal({ onStop: () => void engine.stop().finally(() => release()) });
 */
export function onShutdownSignal(options: ShutdownSignalOptions): () => void {
  const forceAfterMs = options.forceAfterMs ?? DEFAULT_FORCE_AFTER_MS;
  const onForce = options.onForce ?? exitLikeSignal;
  let firstAtMs: number | undefined;
  const listener = (signal: NodeJS.Signals): void => {
    const nowMs = performance.now();
    const decision = decideShutdownSignal(firstAtMs, nowMs, forceAfterMs);
    if (decision === 'stop') {
      firstAtMs = nowMs;
      options.onStop(signal);
    } else if (decision === 'repeat') {
      options.onRepeat?.(signal, Math.round(nowMs - firstAtMs!));
    } else {
      onForce(signal);
    }
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, listener);
  return () => {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, listener);
  };
}
