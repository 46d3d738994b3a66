#!/usr/bin/env node
/**
 * The `tributary` command (package `bin`): `dev` runs your app on the embedded local stack;
 * `produce`, `views` and `dead-letters` talk to it (or to any broker and table, through the
 * standard environment). `tributary <command> --help` describes each. Errors are one line,
 * `tributary: <what is wrong and what to do>`, and exit with code 1 (2 for a wrong command line).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isTributaryError } from '../sdk/index.ts';
import { CliError } from './internal/errors.ts';
import type { WindowRead } from './internal/windows.ts';
import { brokersOf, findView, firstLine, loadApp, projectEnv, resolveAppPath, tableNameOf, toJson } from './internal/project.ts';

/** Events per second a seed is asked for without `--rate`: slow enough to read the output. */
const DEFAULT_SEED_RATE = 20;
/** Partitions of the topics `tributary dev` creates: more than one, so per-partition order and lag show. */
const DEFAULT_PARTITIONS = 3;

const HELP = {
  main: `Usage: tributary <command> [options]

Commands:
  dev                        run your app on the embedded local stack (Kafka, DynamoDB Local, Lambda)
  produce <topic>            send JSON events (one per line) from a file or stdin
  views get <view> <key>     read one key of a view
  views query <view>         list the keys of a view (--prefix p)
  views latest <view> <key>  the newest window of a key (windowed views)
  views windows <view> <key> a key's windows in time order (--from t --to t)
  views window <view> <key> <start>   one window of a key, by its start
  dead-letters list          list the app's dead letters
  dead-letters show <p:o>    show one dead letter in full
  dead-letters replay --view <v>   fold a view's dead letters again with the fixed code

Run \`tributary <command> --help\` for its options. The commands after \`dev\` read the
environment \`tributary dev\` writes to .tributary/env, so they work in a second terminal.`,
  dev: `Usage: tributary dev [--app ./app.ts] [--handlers ./handlers] [--seed ./seed.ts] [options]

Runs your app on the embedded local stack, for development only: creates the views table and
the app's source and dead-letter topics, serves your handlers on the local Lambda Invoke API,
runs the engine, prints a live summary, and restarts the engine when a file of the app changes.
Data lives in .tributary/ (delete it to start empty); logs in .tributary/logs/.

Options:
  --app <file>         module exporting \`app\` (defineApp)       default: app.ts, else src/app.ts
  --handlers <dir>     Lambda handlers, <dir>/<function>.ts      default: handlers/ next to the app
  --seed <file>        module exporting \`seed(context)\` that produces example events
  --rate <n>           events per second asked of the seed       default: ${DEFAULT_SEED_RATE}
  --events <n>         events the seed produces, then stops      default: until Ctrl-C
  --partitions <n>     partitions of the topics created          default: ${DEFAULT_PARTITIONS}
  --kafka <kind>       embedded | apache (Apache Kafka 4.1 from Maven Central)   default: embedded
  --dashboard <dir>    serve a built dashboard (index.html) on loopback, with a feed of the engine
  -h, --help

Ports (environment, 0 = random): TRIBUTARY_KAFKA_PORT (9092), TRIBUTARY_DYNAMODB_PORT (8000),
TRIBUTARY_LAMBDA_PORT (3001), TRIBUTARY_DASHBOARD_PORT (3003).`,
  produce: `Usage: tributary produce <topic> [--file events.jsonl] [--key field] [--brokers host:port]

Sends events to <topic>: one JSON value per line (JSON Lines), from --file or stdin.

Options:
  --file <file>        read the events from this file             default: stdin
  --key <field>        use this field of each event as the Kafka key   default: no key
  --brokers <list>     comma-separated brokers                   default: KAFKA_BROKERS or .tributary/env
  -h, --help`,
  views: `Usage: tributary views get <view> <key> [--json]
       tributary views query <view> [--prefix p] [--limit n] [--json]
       tributary views latest <view> <key> [--json]
       tributary views windows <view> <key> [--from t] [--to t] [--limit n] [--json]
       tributary views window <view> <key> <start> [--json]

Reads a view of the app through the SDK: \`get\` one key, \`query\` the keys in order. A
windowed view has one item per key and window: \`latest\` reads a key's newest window,
\`windows\` its windows in time order (starts in [--from, --to)), \`window\` the one starting
at <start>. Each window prints as [start–end UTC), open or closed (stream time passed its end
plus graceMs; a view with emit 'final' then delivers it to its triggers), its version and state.
Times are epoch milliseconds or ISO-8601 (2026-12-01, 2026-12-01 10:00:05.250), UTC unless they
name a zone, so a window start can be copied from the output.

Options:
  --app <file>         module exporting \`app\`                   default: app.ts, else src/app.ts
  --table <name>       views table                               default: TRIBUTARY_TABLE or <app>-views
  --prefix <p>         query: keys starting with p
  --limit <n>          query, windows: at most n keys or windows
  --from <t>           windows: earliest window start           default: every retained window
  --to <t>             windows: window starts before this       default: no upper bound
  --json               print JSON instead of the human form
  -h, --help`,
  'dead-letters': `Usage: tributary dead-letters list [--json]
       tributary dead-letters show <partition:offset> [--json]
       tributary dead-letters replay --view <view> [--view <view>] [--code <code>] [--until <t>] [--json]

Reads the app's dead-letter topic from the start: poison records and changes a trigger could
not deliver, with the reason. \`replay\` folds a view's poison records into that view again with
the app's current code (fix the code first), exactly once: a second replay skips what the
first applied. Records still poison are dead-lettered again with the new reason. Its
triggers' undelivered changes are delivered again, with their idempotency keys.

Options:
  --app <file>         module exporting \`app\`                   default: app.ts, else src/app.ts
  --topic <name>       dead-letter topic                         default: the app's
  --brokers <list>     comma-separated brokers                   default: KAFKA_BROKERS or .tributary/env
  --view <view>        replay: the view whose letters to replay (repeat for several)
  --code <code>        replay: only letters of this code, e.g. REDUCE_FAILED (repeatable)
  --until <t>          replay: only letters written up to t (epoch ms or ISO-8601)
  --table <name>       replay: views table                       default: TRIBUTARY_TABLE or <app>-views
  --json               print JSON instead of the human form
  -h, --help`,
} as const;

type Command = keyof typeof HELP;

function parse<O extends NonNullable<ParseArgsConfig['options']>>(command: Command, args: readonly string[], options: O) {
  try {
    return parseArgs({ args: [...args], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CliError('USAGE', `${command === 'main' ? '' : `${command}: `}${firstLine(error).replace(/\. To specify a positional argument.*$/, '')}; see \`tributary ${command === 'main' ? '' : `${command} `}--help\``, { context: { command } });
  }
}

function positiveInt(command: Command, name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new CliError('USAGE', `${command}: --${name} needs a positive integer, received ${JSON.stringify(raw)}; e.g. --${name} 50`);
  return n;
}

function usage(command: Command, message: string): CliError {
  return new CliError('USAGE', `${command}: ${message}; see \`tributary ${command} --help\``, { context: { command } });
}

/** `dead-letters replay`: progress on stderr, the summary on stdout. */
async function deadLettersReplay(
  cwd: string,
  values: { app?: string; topic?: string; brokers?: string; json?: boolean; view?: string[]; code?: string[]; until?: string; table?: string },
  extra: string | undefined,
  print: (line: string) => void,
): Promise<number> {
  if (extra !== undefined) throw usage('dead-letters', `unexpected argument ${JSON.stringify(extra)}`);
  if (values.view === undefined || values.view.length === 0) throw usage('dead-letters', 'replay needs --view <view>, the view whose letters to replay');
  const { parseTime } = await import('./internal/windows.ts');
  const until = values.until === undefined ? undefined : new Date(parseTime('--until', values.until));
  const env = projectEnv(cwd);
  Object.assign(process.env, Object.fromEntries(Object.entries(env).filter(([k, v]) => v !== undefined && process.env[k] === undefined)));
  const app = await loadApp(resolveAppPath(cwd, values.app));
  const { replayCommand, replaySummaryLines } = await import('./internal/replay.ts');
  const summary = await replayCommand({
    app,
    views: values.view,
    ...(values.code !== undefined ? { codes: values.code } : {}),
    ...(until !== undefined ? { until } : {}),
    table: values.table ?? tableNameOf(app, env),
    topic: values.topic ?? env.TRIBUTARY_DEAD_LETTER_TOPIC ?? app.deadLetterTopic,
    brokers: brokersOf(values.brokers, env),
    env,
    progress: (line) => console.error(line),
  });
  if (values.json) print(toJson(summary, 2));
  else for (const line of replaySummaryLines(summary, values.view)) print(line);
  return 0;
}

async function main(argv: readonly string[]): Promise<number> {
  const cwd = process.cwd();
  const print = (line: string) => console.log(line);
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    print(HELP.main);
    return 0;
  }
  switch (command) {
    case 'dev': {
      const { values, positionals } = parse('dev', rest, {
        app: { type: 'string' },
        handlers: { type: 'string' },
        seed: { type: 'string' },
        rate: { type: 'string' },
        events: { type: 'string' },
        partitions: { type: 'string' },
        kafka: { type: 'string' },
        dashboard: { type: 'string' },
      });
      if (values.help) return print(HELP.dev), 0;
      if (positionals.length > 0) throw usage('dev', `unexpected argument ${JSON.stringify(positionals[0])}`);
      if (values.kafka !== undefined && values.kafka !== 'embedded' && values.kafka !== 'apache') {
        throw usage('dev', `--kafka needs embedded or apache, received ${JSON.stringify(values.kafka)}`);
      }
      const appFile = resolveAppPath(cwd, values.app);
      const handlersDir = values.handlers === undefined ? path.join(path.dirname(appFile), 'handlers') : path.resolve(cwd, values.handlers);
      if (values.handlers !== undefined && !existsSync(handlersDir)) {
        throw new CliError('NOT_FOUND', `--handlers ${values.handlers}: no such folder (looked at ${handlersDir}); pass the folder holding <function>.ts handler files`);
      }
      const seedFile = values.seed === undefined ? undefined : path.resolve(cwd, values.seed);
      if (seedFile !== undefined && !existsSync(seedFile)) {
        throw new CliError('NOT_FOUND', `--seed ${values.seed}: no such file (looked at ${seedFile}); pass a module exporting \`seed(context)\``);
      }
      const dashboardDir = values.dashboard === undefined ? undefined : path.resolve(cwd, values.dashboard);
      if (dashboardDir !== undefined && !existsSync(path.join(dashboardDir, 'index.html'))) {
        throw new CliError('NOT_FOUND', `--dashboard ${values.dashboard}: no index.html in ${dashboardDir}; build the dashboard first (npm run dashboard:build)`);
      }
      // Each command imports what it runs: `--help` and a typo answer at once.
      const { runDevUntilStopped } = await import('./internal/dev.ts');
      await runDevUntilStopped({
        cwd,
        appFile,
        handlersDir,
        seedFile,
        kafka: (values.kafka as 'embedded' | 'apache' | undefined) ?? 'embedded',
        partitions: positiveInt('dev', 'partitions', values.partitions) ?? DEFAULT_PARTITIONS,
        rate: positiveInt('dev', 'rate', values.rate) ?? DEFAULT_SEED_RATE,
        events: positiveInt('dev', 'events', values.events),
        print,
        ...(dashboardDir === undefined ? {} : { dashboardDir }),
      });
      return 0;
    }
    case 'produce': {
      const { values, positionals } = parse('produce', rest, { file: { type: 'string' }, key: { type: 'string' }, brokers: { type: 'string' } });
      if (values.help) return print(HELP.produce), 0;
      const [topic, extra] = positionals;
      if (topic === undefined) throw usage('produce', 'name the topic, e.g. `tributary produce orders --file orders.jsonl`');
      if (extra !== undefined) throw usage('produce', `unexpected argument ${JSON.stringify(extra)}`);
      const env = projectEnv(cwd);
      const brokers = brokersOf(values.brokers, env);
      if (values.file === undefined && process.stdin.isTTY) {
        throw usage('produce', 'no events: pass --file events.jsonl or pipe JSON lines into stdin');
      }
      if (values.file !== undefined && !existsSync(values.file)) {
        throw new CliError('NOT_FOUND', `produce: --file ${values.file}: no such file`);
      }
      const { inputOf, produce } = await import('./internal/produce.ts');
      const sent = await produce({ topic, brokers, keyField: values.key, ...inputOf(values.file) });
      print(`produced ${sent} event${sent === 1 ? '' : 's'} to "${topic}" at ${brokers.join(',')}`);
      return 0;
    }
    case 'views': {
      const { values, positionals } = parse('views', rest, {
        app: { type: 'string' },
        table: { type: 'string' },
        prefix: { type: 'string' },
        limit: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        json: { type: 'boolean' },
      });
      if (values.help) return print(HELP.views), 0;
      const [action, viewName, key, ...extras] = positionals;
      const ACTIONS = ['get', 'query', 'latest', 'windows', 'window'];
      if (action === undefined || !ACTIONS.includes(action)) throw usage('views', `expected ${ACTIONS.map((a) => `\`${a}\``).join(', ')}, received ${JSON.stringify(action ?? '')}`);
      if (viewName === undefined) throw usage('views', `${action} needs a view name`);
      if (action !== 'query' && key === undefined) throw usage('views', `${action} needs a key, e.g. \`tributary views ${action} ${viewName} some-key${action === 'window' ? ' 2026-12-01' : ''}\``);
      if (action === 'window' && extras[0] === undefined) throw usage('views', `window needs the window's start, e.g. \`tributary views window ${viewName} ${key} 2026-12-01\` (\`tributary views windows ${viewName} ${key}\` lists them)`);
      const unexpected = action === 'query' ? key : action === 'window' ? extras[1] : extras[0];
      if (unexpected !== undefined) throw usage('views', `unexpected argument ${JSON.stringify(unexpected)}`);
      if (action !== 'windows' && (values.from !== undefined || values.to !== undefined)) throw usage('views', '--from and --to go with `windows`');
      const { parseTime, viewWindows, windowedReadHint } = await import('./internal/windows.ts');
      const limit = positiveInt('views', 'limit', values.limit);
      const from = values.from === undefined ? undefined : parseTime('--from', values.from);
      const to = values.to === undefined ? undefined : parseTime('--to', values.to);
      const start = action === 'window' ? parseTime('<start>', extras[0]!) : undefined;
      const env = projectEnv(cwd);
      Object.assign(process.env, Object.fromEntries(Object.entries(env).filter(([k, v]) => v !== undefined && process.env[k] === undefined)));
      const app = await loadApp(resolveAppPath(cwd, values.app));
      const table = values.table ?? tableNameOf(app, env);
      const json = values.json === true;
      let lines: string[];
      if (action === 'get' || action === 'query') {
        const hint = windowedReadHint(findView(app, viewName), action);
        if (hint) throw hint;
        const { viewGet, viewQuery } = await import('./internal/inspect.ts');
        lines = action === 'get'
          ? await viewGet(app, table, viewName, key!, json)
          : await viewQuery(app, table, viewName, values.prefix === undefined ? undefined : { prefix: values.prefix }, limit, json);
      } else {
        const read: WindowRead = action === 'windows'
          ? { action: 'windows', ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }), ...(limit === undefined ? {} : { limit }) }
          : action === 'window' ? { action: 'window', start: start! } : { action: 'latest' };
        lines = await viewWindows(app, table, viewName, key!, read, json);
      }
      for (const line of lines) print(line);
      return 0;
    }
    case 'dead-letters': {
      const { values, positionals } = parse('dead-letters', rest, {
        app: { type: 'string' },
        topic: { type: 'string' },
        brokers: { type: 'string' },
        json: { type: 'boolean' },
        view: { type: 'string', multiple: true },
        code: { type: 'string', multiple: true },
        until: { type: 'string' },
        table: { type: 'string' },
      });
      if (values.help) return print(HELP['dead-letters']), 0;
      const [action, position, extra] = positionals;
      if (action === 'replay') return deadLettersReplay(cwd, values, position, print);
      if (values.view !== undefined || values.code !== undefined || values.until !== undefined || values.table !== undefined) {
        throw usage('dead-letters', '--view, --code, --until and --table go with `replay`');
      }
      if (action !== 'list' && action !== 'show') throw usage('dead-letters', `expected \`list\`, \`show\` or \`replay\`, received ${JSON.stringify(action ?? '')}`);
      if (action === 'show' && position === undefined) throw usage('dead-letters', 'show needs partition:offset, e.g. `tributary dead-letters show 0:12`');
      if ((action === 'show' ? extra : position) !== undefined) throw usage('dead-letters', `unexpected argument ${JSON.stringify(action === 'show' ? extra : position)}`);
      const env = projectEnv(cwd);
      const { deadLetterLine, findDeadLetter, readDeadLetters } = await import('./internal/inspect.ts');
      const topic = values.topic ?? env.TRIBUTARY_DEAD_LETTER_TOPIC ?? (await loadApp(resolveAppPath(cwd, values.app))).deadLetterTopic;
      const letters = await readDeadLetters(brokersOf(values.brokers, env), topic);
      if (action === 'show') {
        const found = findDeadLetter(letters, position!, topic);
        print(values.json ? toJson(found, 2) : `${deadLetterLine(found)}\n${toJson(found.letter, 2)}`);
        return 0;
      }
      if (values.json) print(toJson(letters, 2));
      else if (letters.length === 0) print(`no dead letters in "${topic}"`);
      else for (const line of [...letters.map(deadLetterLine), `${letters.length} dead letter${letters.length === 1 ? '' : 's'} in "${topic}"`]) print(line);
      return 0;
    }
    default:
      throw new CliError('USAGE', `unknown command ${JSON.stringify(command)}; the commands are dev, produce, views, dead-letters (see \`tributary --help\`)`);
  }
}

main(process.argv.slice(2)).then(
  // Exit at once: idle keep-alive sockets of the AWS and Kafka clients must not hold the process.
  (code) => process.exit(code),
  (error: unknown) => {
    const message = isTributaryError(error) ? error.message : `unexpected error: ${firstLine(error)}`;
    // One line: a multi-line message (the local stack lists each part that failed) is joined.
    const line = message.split('\n').map((part) => part.trim()).filter((part) => part.length > 0).join(' ');
    process.stderr.write(`tributary: ${line}\n`);
    process.exit(error instanceof CliError && error.code === 'USAGE' ? 2 : 1);
  },
);
