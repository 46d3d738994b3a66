/**
 * What every command finds in the user's project: the `.tributary/` data folder and its `env`
 * file, the app module (TypeScript, loaded through tsx), its views and its table.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { register as registerRequire } from 'tsx/cjs/api';
import { register } from 'tsx/esm/api';
import { ENV } from '../../sdk/contract/index.ts';
import type { App, View } from '../../sdk/index.ts';
import { CliError } from './errors.ts';

/** Gitignore it; delete it to start from empty topics and tables. */
export const DATA_DIR_NAME = '.tributary';
/** Where `--app` is looked for when not given, in this order. */
export const DEFAULT_APP_MODULES = ['app.ts', 'src/app.ts'] as const;
/** Handler files the CLI serves: `<handlersDir>/<name>.<ext>`, the name being the function's. */
const HANDLER_FILE = /^([A-Za-z0-9_-]{1,64})\.(ts|mts|js|mjs)$/;

/** `.tributary/env` of `cwd` as written by `tributary dev` (`export KEY=value` lines). */
export function readEnvFile(cwd: string): Record<string, string> {
  const file = path.join(cwd, DATA_DIR_NAME, 'env');
  if (!existsSync(file)) return {};
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

/**
 * The environment a command talks to: the process's own variables first, then what the running
 * (or last) `tributary dev` wrote to `.tributary/env`, so `tributary views get` works in a second
 * terminal with nothing exported.
 */
export function projectEnv(cwd: string, env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  return { ...readEnvFile(cwd), ...Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')) };
}

/** `--app`, or the first of {@link DEFAULT_APP_MODULES} that exists. */
export function resolveAppPath(cwd: string, given: string | undefined): string {
  if (given !== undefined) {
    const file = path.resolve(cwd, given);
    if (!existsSync(file)) throw new CliError('NOT_FOUND', `--app ${given}: no such file (looked at ${file}); pass the module that exports \`app\` (a defineApp() result)`);
    return file;
  }
  for (const candidate of DEFAULT_APP_MODULES) {
    const file = path.join(cwd, candidate);
    if (existsSync(file)) return file;
  }
  throw new CliError('NOT_FOUND', `no app module: neither ${DEFAULT_APP_MODULES.join(' nor ')} exists in ${cwd}; pass --app ./path/to/app.ts (a module exporting \`app = defineApp({...})\`)`);
}

let generation = 0;

/**
 * Imports TypeScript (or JavaScript) modules of the user's project. Each loader is a fresh tsx
 * namespace, so a loader made after a file changed sees the new code (Node caches a module for
 * the life of the process); modules loaded through one loader share one instance of each import.
 */
export function createModuleLoader(): (file: string) => Promise<Record<string, unknown>> {
  generation += 1;
  const namespace = `tributary-${process.pid}-${generation}`;
  const api = register({ namespace });
  let requireApi: { require: (id: string, fromFile: string) => unknown } | undefined;
  return async (file) => {
    try {
      return (await api.import(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
    } catch (error) {
      // Node 24 strips types itself and does not resolve tsx's `?namespace=` ESM specifiers; tsx's
      // own tsImport() loads `.ts` files through its require hook there, and so does this loader.
      if (!String((error as { message?: unknown })?.message).includes('?namespace=')) throw error;
      requireApi ??= registerRequire({ namespace });
      return requireApi.require(file, import.meta.url) as Record<string, unknown>;
    }
  };
}

/** The `app` (a defineApp() result) exported by `file`. */
export async function loadApp(file: string, load = createModuleLoader()): Promise<App> {
  let loaded: Record<string, unknown>;
  try {
    loaded = await load(file);
  } catch (error) {
    throw new CliError('MODULE_LOAD_FAILED', `cannot load the app module ${file}: ${firstLine(error)}; fix the error, or pass --app with the module that exports \`app\``, { cause: error });
  }
  const app = (loaded.app ?? loaded.default) as App | undefined;
  if (!app || app.kind !== 'app') {
    throw new CliError('MODULE_LOAD_FAILED', `${file} does not export \`app\` (a defineApp() result); it exports ${JSON.stringify(Object.keys(loaded))}. Add \`export const app = defineApp({ name, views, triggers })\``);
  }
  return app;
}

/** The handler modules of `dir`: function name → file. */
export function handlerFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return files;
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith('.d.ts') || name.includes('.test.')) continue;
    const match = HANDLER_FILE.exec(name);
    if (match && !files.has(match[1]!)) files.set(match[1]!, path.join(dir, name));
  }
  return files;
}

/** The table of `app`: `TRIBUTARY_TABLE`, else `<app name>-views` (what `tributary dev` creates). */
export function tableNameOf(app: App, env: Record<string, string | undefined>): string {
  return env[ENV.table]?.trim() || defaultTableName(app);
}

/** The table `tributary dev` creates for `app`. */
export function defaultTableName(app: App): string {
  return `${app.name}-views`;
}

/** The view of `app` called `name`, or a NOT_FOUND error listing the views there are. */
export function findView(app: App, name: string): View<any, any> {
  const view = app.views.find((v) => v.name === name);
  if (!view) {
    throw new CliError('NOT_FOUND', `app "${app.name}" has no view ${JSON.stringify(name)}; its views are ${app.views.map((v) => v.name).join(', ') || 'none'}`);
  }
  return view;
}

/** The brokers to talk to: `--brokers`, else KAFKA_BROKERS (the environment or `.tributary/env`). */
export function brokersOf(given: string | undefined, env: Record<string, string | undefined>): string[] {
  const raw = given ?? env.KAFKA_BROKERS;
  const brokers = (raw ?? '').split(',').map((b) => b.trim()).filter((b) => b.length > 0);
  if (brokers.length === 0) {
    throw new CliError('NOT_CONFIGURED', 'no Kafka brokers: KAFKA_BROKERS is not set and no .tributary/env was found here; start `tributary dev` in this folder, or pass --brokers host:port');
  }
  return brokers;
}

/** The first line of an error's message, for one-line reports. */
export function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const lines = message.split('\n').map((line) => line.trim()).filter((line) => line.length > 0);
  // "Transform failed with 1 error:" (esbuild, through tsx) says where only on the next line.
  return lines[0]?.endsWith(':') && lines[1] !== undefined ? `${lines[0]} ${lines[1]}` : lines[0] ?? '';
}

/** JSON with bigints (exact numbers in view state) as decimal strings. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent);
}
