/**
 * `tributary dead-letters replay --view <v>`: replays a view's dead letters with the app's
 * current code (the engine's `replayDeadLetters`), printing progress and a summary.
 */
import { replayDeadLetters, type ReplaySummary } from '../../engine/index.ts';
import { functionNamesFromEnv } from '../../engine/index.ts';
import type { App } from '../../sdk/index.ts';
import { CliError } from './errors.ts';
import { findView, firstLine } from './project.ts';

/** What `dead-letters replay` was asked. */
export interface ReplayCommand {
  readonly app: App;
  readonly views: readonly string[];
  readonly codes?: readonly string[];
  readonly until?: Date;
  readonly table: string;
  readonly topic: string;
  readonly brokers: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Progress lines go here (stderr in the CLI), the summary is returned. */
  readonly progress: (line: string) => void;
}

/** Runs the replay; the summary (or an error naming what to fix). */
export async function replayCommand(command: ReplayCommand): Promise<ReplaySummary> {
  for (const view of command.views) findView(command.app, view);
  let lastShownMs = 0;
  try {
    return await replayDeadLetters({
      app: command.app,
      view: command.views,
      ...(command.codes !== undefined ? { codes: command.codes } : {}),
      ...(command.until !== undefined ? { until: command.until } : {}),
      tableName: command.table,
      kafka: { brokers: [...command.brokers] },
      deadLetterTopic: command.topic,
      functionNames: functionNamesFromEnv(command.env),
      onProgress: ({ done, total }) => {
        const now = Date.now();
        if (done < total && now - lastShownMs < 1_000) return;
        lastShownMs = now;
        command.progress(`replay: ${done}/${total} letters`);
      },
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'REPLAY_UNSUPPORTED' || code === 'REPLAY_VERSION_NOT_LIVE' || code === 'INVALID_ARGUMENT') {
      throw new CliError('USAGE', firstLine(error), { cause: error });
    }
    throw new CliError('NOT_CONFIGURED', `replay of ${command.views.join(', ')} from "${command.topic}" failed: ${firstLine(error)}; is \`tributary dev\` running in this folder (or KAFKA_BROKERS, TRIBUTARY_TABLE and the AWS endpoints set)?`, { cause: error });
  }
}

/** The summary in human form. */
export function replaySummaryLines(summary: ReplaySummary, views: readonly string[]): string[] {
  const lines = [
    `replayed ${summary.selected} letter${summary.selected === 1 ? '' : 's'} of ${views.join(', ')}:`,
    `  ${summary.replayed} applied to the view`,
    `  ${summary.alreadyApplied} skipped: already applied by an earlier replay`,
    `  ${summary.stillPoison} still poison: dead-lettered again with the new reason`,
  ];
  if (summary.filtered > 0) lines.push(`  ${summary.filtered} dropped by the view's filter`);
  if (summary.superseded > 0) lines.push(`  ${summary.superseded} skipped: dead-lettered again by an earlier replay (the later letter stands for it)`);
  if (summary.delivered + summary.alreadyDelivered + summary.notDue + summary.failedAgain > 0) {
    lines.push(`  trigger changes: ${summary.delivered} delivered, ${summary.alreadyDelivered} already delivered, ${summary.notDue} not due (when() says no), ${summary.failedAgain} failed again`);
  }
  for (const letter of summary.unreplayable) lines.push(`  not replayable ${letter.partition}:${letter.offset}: ${letter.reason}`);
  return lines;
}
