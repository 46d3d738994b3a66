import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';

/**
 * Captures what a handler writes through `console` during one invocation, for
 * `LogType: Tail`. Handlers run in this process, so console output is global: the console
 * methods are wrapped only while at least one tailed invocation runs, and a line is attributed
 * to the invocation whose async context wrote it. Output still reaches the real console.
 */
export class LogCapture {
  private readonly storage = new AsyncLocalStorage<string[]>();
  private active = 0;
  private originals: Partial<Record<ConsoleMethod, (...args: unknown[]) => void>> = {};

  /** Runs `fn` with console capture; returns its result and the captured lines. */
  async run<T>(requestId: string, fn: () => Promise<T>): Promise<{ result: PromiseSettledResult<T>; lines: string[] }> {
    const lines: string[] = [];
    this.install();
    try {
      const result = await this.storage.run(lines, async () => {
        try {
          return { status: 'fulfilled', value: await fn() } as const;
        } catch (reason) {
          return { status: 'rejected', reason } as const;
        }
      });
      return { result, lines: lines.map((line) => line.replace('{requestId}', requestId)) };
    } finally {
      this.uninstall();
    }
  }

  private install(): void {
    if (this.active++ > 0) return;
    for (const method of CONSOLE_METHODS) {
      const original = console[method] as (...args: unknown[]) => void;
      this.originals[method] = original;
      const level = method === 'log' ? 'INFO' : method.toUpperCase();
      console[method] = (...args: unknown[]) => {
        const lines = this.storage.getStore();
        if (lines) lines.push(`${new Date().toISOString()}\t{requestId}\t${level}\t${format(...args)}`);
        original.apply(console, args);
      };
    }
  }

  private uninstall(): void {
    if (--this.active > 0) return;
    for (const method of CONSOLE_METHODS) {
      const original = this.originals[method];
      if (original) console[method] = original;
    }
    this.originals = {};
  }
}

type ConsoleMethod = 'log' | 'info' | 'warn' | 'error' | 'debug';
const CONSOLE_METHODS: readonly ConsoleMethod[] = ['log', 'info', 'warn', 'error', 'debug'];

/** AWS returns the last 4 KB of the log in `X-Amz-Log-Result`. */
const TAIL_BYTES = 4_096;

/** Formats an invocation's log like CloudWatch (START/END/REPORT) and returns its base64 tail. */
export function formatLogTail(params: {
  requestId: string;
  lines: readonly string[];
  durationMs: number;
  memorySizeMb: number;
  errorLine?: string;
}): string {
  const report =
    `REPORT RequestId: ${params.requestId}\tDuration: ${params.durationMs.toFixed(2)} ms\t` +
    `Billed Duration: ${Math.ceil(params.durationMs)} ms\tMemory Size: ${params.memorySizeMb} MB\t` +
    `Max Memory Used: ${Math.round(process.memoryUsage().rss / 1_048_576)} MB\t`;
  const text = [
    `START RequestId: ${params.requestId} Version: $LATEST`,
    ...params.lines,
    ...(params.errorLine === undefined ? [] : [params.errorLine]),
    `END RequestId: ${params.requestId}`,
    report,
    '',
  ].join('\n');
  const bytes = Buffer.from(text, 'utf8');
  return bytes.subarray(Math.max(0, bytes.length - TAIL_BYTES)).toString('base64');
}
