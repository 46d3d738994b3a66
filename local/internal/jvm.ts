/**
 * What the stack's two Java servers (DynamoDB Local and Apache Kafka) share: finding `java`,
 * spawning it under a watchdog so it dies with us, keeping the tail of its output for error
 * messages, and stopping it (SIGTERM, then SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { LocalStackError, type LocalStackErrorContext } from './errors.ts';

/** Tail of a child's output kept for error messages. */
const OUTPUT_TAIL_CHARS = 4_000;

export const JAVA_HINT = 'install a Java 17+ runtime, e.g. `apt-get install -y default-jre-headless` (Debian 12; elsewhere `openjdk-17-jre-headless`), or set JAVA_HOME';

/**
 * Runs the command given as arguments and kills it when our stdin closes (the parent stopped
 * us or died, even by SIGKILL), so a crashed test run never leaves a JVM behind. Also forwards
 * SIGTERM/SIGINT to it and exits with its status.
 */
const WATCHDOG_SCRIPT = [
  'exec 3<&0',
  '"$@" </dev/null &',
  'child=$!',
  "trap 'kill $child 2>/dev/null' TERM INT HUP",
  '( cat >/dev/null <&3; kill $child 2>/dev/null ) &',
  'watcher=$!',
  'wait $child; status=$?',
  'while kill -0 $child 2>/dev/null; do wait $child; status=$?; done',
  'kill $watcher 2>/dev/null',
  'exit $status',
].join('\n');

/** `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH. */
export function defaultJavaCommand(): string {
  const javaHome = process.env.JAVA_HOME;
  return javaHome ? path.join(javaHome, 'bin', 'java') : 'java';
}

/** The absolute path of `command` when it is executable (looked up on PATH unless it has a slash). */
export function findExecutable(command: string): string | undefined {
  const candidates = command.includes(path.sep)
    ? [command]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** Fails early, with the fix, when `java` is not on PATH (or not executable). */
export function assertJava(command: string, who: string, context: LocalStackErrorContext): void {
  if (findExecutable(command) !== undefined) return;
  throw new LocalStackError('JAVA_NOT_FOUND', `${who} needs Java, but "${command}" was not found or is not executable; ${JAVA_HINT}`, {
    context: { ...context, javaCommand: command },
  });
}

/** The `JAVA_NOT_FOUND` error for a JVM that could not run at all, or `undefined` when it did. */
export function javaStartFailure(who: string, code: number | null, output: string, context: LocalStackErrorContext): LocalStackError | undefined {
  if (code === 127 || /not found/i.test(output.split('\n')[0] ?? '')) {
    return new LocalStackError('JAVA_NOT_FOUND', `${who} needs Java, which could not be started; ${JAVA_HINT}. Output:\n${output}`, { context });
  }
  if (/UnsupportedClassVersionError/.test(output)) {
    return new LocalStackError('JAVA_NOT_FOUND', `${who} needs Java 17 or newer, the installed java is older; ${JAVA_HINT}. Output:\n${output}`, {
      context,
    });
  }
  return undefined;
}

/** Keeps the tail of a child's output for error messages and forwards complete lines. */
export class OutputTail {
  private buffer = '';
  private partial = '';
  push(chunk: Buffer, onLine: (line: string) => void): void {
    const text = chunk.toString('utf8');
    this.buffer = (this.buffer + text).slice(-OUTPUT_TAIL_CHARS);
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') onLine(line.trimEnd());
  }
  text(): string {
    return this.buffer.trim();
  }
}

/** Options of {@link spawnJvm}. */
export interface SpawnJvmOptions {
  /** Name of the process in `ps` (the watchdog's `$0`). */
  readonly name: string;
  readonly java: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** Receives each complete line the JVM prints. */
  readonly onLine: (line: string) => void;
  /**
   * Keep this process alive until the JVM exits: for a short-lived tool whose exit is awaited.
   * A server JVM never holds this process open.
   * @default false
   */
  readonly keepAlive?: boolean;
}

/** A JVM started by {@link spawnJvm}. */
export interface JvmProcess {
  readonly child: ChildProcess;
  readonly output: OutputTail;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  /** Resolves with the exit code once the process has exited and its output has been read to the end. */
  readonly closed: Promise<number | null>;
  hasExited(): boolean;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs: number): Promise<void>;
}

/**
 * Spawns `java args…` under the watchdog, in its own process group (Ctrl-C in a terminal
 * reaches us, and we stop the JVM in order), kills it when this process exits, and keeps
 * neither the JVM nor its pipes from letting this process exit.
 */
export function spawnJvm(options: SpawnJvmOptions): JvmProcess {
  const child = spawn('sh', ['-c', WATCHDOG_SCRIPT, options.name, options.java, ...options.args], {
    cwd: options.cwd,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const output = new OutputTail();
  child.stdout?.on('data', (chunk: Buffer) => output.push(chunk, options.onLine));
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk, options.onLine));
  let exitedFlag = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitedFlag = true;
      resolve(code);
    }),
  );
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const killOnExit = (): void => killGroup(child, 'SIGKILL');
  process.on('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  if (options.keepAlive !== true) {
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
  }

  let stopping: Promise<void> | undefined;
  return {
    child,
    output,
    exited,
    closed,
    hasExited: () => exitedFlag,
    stop(graceMs: number): Promise<void> {
      stopping ??= (async () => {
        if (exitedFlag) return;
        // Closing stdin makes the watchdog kill the JVM; SIGTERM to the group does the same directly.
        child.stdin?.end();
        killGroup(child, 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), graceMs);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          killGroup(child, 'SIGKILL');
          await exited;
        }
      })();
      return stopping;
    },
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** What a JVM server prints when its port is taken (Jetty logs it and may stay up without listening). */
const BIND_FAILURE = /BindException|Address already in use/i;

/** The start-up failure of a JVM server, `JAVA_NOT_FOUND` when Java itself could not run. */
export function jvmStartFailure(
  who: string,
  code: 'KAFKA_START_FAILED' | 'DYNAMODB_START_FAILED',
  exitCode: number | null,
  output: string,
  context: LocalStackErrorContext,
): LocalStackError {
  const noJava = javaStartFailure(who, exitCode, output, context);
  if (noJava) return noJava;
  const portInUse = BIND_FAILURE.test(output);
  return new LocalStackError(
    code,
    `${who} ${exitCode === null ? 'failed to start' : `exited with code ${exitCode}`} before it was ready` +
      (portInUse ? ` (port ${String(context.port)} is in use; pick another port or 0 for a random one)` : '') +
      `. Output:\n${output || '(none)'}`,
    { context: { ...context, portInUse } },
  );
}

/** Options of {@link waitUntilReady}. */
export interface ReadyOptions {
  /** The server's name in messages, e.g. `DynamoDB Local`. */
  readonly who: string;
  readonly code: 'KAFKA_START_FAILED' | 'DYNAMODB_START_FAILED';
  /** Where it should answer, for messages. */
  readonly endpoint: string;
  /** When the wait started (spawn time). */
  readonly startedMs: number;
  readonly timeoutMs: number;
  readonly pollMs: number;
  /** Grace of the stop when it never gets ready. */
  readonly stopGraceMs: number;
  readonly context: LocalStackErrorContext;
  /** One readiness probe through a real client; false means "not yet". */
  ready(): Promise<boolean>;
}

/**
 * Polls `ready()` until it answers, the JVM exits, it reports its port taken, or the deadline
 * passes; in the three failures the JVM is stopped and a coded error says why, with its output.
 */
export async function waitUntilReady(jvm: JvmProcess, options: ReadyOptions): Promise<void> {
  try {
    const deadline = options.startedMs + options.timeoutMs;
    for (;;) {
      if (jvm.hasExited()) throw jvmStartFailure(options.who, options.code, await jvm.exited, jvm.output.text(), options.context);
      if (BIND_FAILURE.test(jvm.output.text())) throw jvmStartFailure(options.who, options.code, null, jvm.output.text(), options.context);
      if (await options.ready()) return;
      if (Date.now() > deadline) {
        throw new LocalStackError(
          options.code,
          `${options.who} did not answer on ${options.endpoint} within ${options.timeoutMs} ms; raise startTimeoutMs if the machine is very loaded. Output:\n${jvm.output.text() || '(none)'}`,
          { retriable: true, context: options.context },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, options.pollMs));
    }
  } catch (error) {
    await jvm.stop(options.stopGraceMs);
    throw error;
  }
}
