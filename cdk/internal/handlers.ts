import * as fs from 'node:fs';
import * as path from 'node:path';
import { LIVE_FUNCTIONS } from '../../sdk/contract/index.ts';
import type { App } from '../../sdk/index.ts';
import { DeploymentError } from './errors.ts';

/** A Lambda handler file: `<handlersDir>/<name>.ts` exporting `handler`. */
export interface HandlerFile {
  /** Logical function name, the file name without `.ts`; what triggers name. */
  readonly name: string;
  /** Absolute path of the file. */
  readonly entry: string;
}

const HANDLER_FILE = /^([A-Za-z0-9_-]{1,64})\.ts$/;

/**
 * Lists the handler files of `handlersDir` and checks that every function a trigger names has one,
 * so a typo in `defineTrigger({ function })` fails at synth instead of as a 404 in production.
 */
export function findHandlers(app: App, handlersDir: string, shownDir: string): HandlerFile[] {
  const files = fs.existsSync(handlersDir) ? fs.readdirSync(handlersDir, { withFileTypes: true }) : [];
  const handlers = files
    .filter((file) => file.isFile() && !file.name.endsWith('.d.ts') && !file.name.endsWith('.test.ts'))
    .map((file) => HANDLER_FILE.exec(file.name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({ name: match[1]!, entry: path.join(handlersDir, match[0]) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const names = new Set(handlers.map((h) => h.name));
  for (const trigger of app.triggers) {
    // The live views' built-in fan-out trigger runs the package's own function (cdk/internal/live.ts).
    if (trigger.function === LIVE_FUNCTIONS.fanout) continue;
    if (!names.has(trigger.function)) {
      throw new DeploymentError(
        'MISSING_HANDLER',
        `TributaryApp: trigger "${trigger.name}" of app "${app.name}" names function "${trigger.function}", but ${shownDir}/${trigger.function}.ts does not exist` +
          ` (found: ${handlers.map((h) => h.name).join(', ') || 'none'}); create it exporting \`handler\`, or fix the trigger's function`,
        { prop: 'handlersDir', trigger: trigger.name, function: trigger.function },
      );
    }
  }
  return handlers;
}
