/**
 * What the benchmark measures, measured rather than estimated: DynamoDB requests counted by a
 * client middleware, latencies as percentiles, peak memory from the kernel.
 */
import { readFileSync } from 'node:fs';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** Requests (and the items they write) that reached the DynamoDB client, by operation. */
export interface DynamoDbRequestCounts {
  /** Requests per command name, e.g. `{ UpdateItemCommand: 100000 }`; SDK retries not included. */
  readonly requests: Record<string, number>;
  /** Write requests: PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems. */
  readonly writeRequests: number;
  /** Items written: one per Put/Update/Delete, the items inside batch and transactional writes. */
  readonly itemWrites: number;
  /** Read requests: GetItem, BatchGetItem, Query, Scan, TransactGetItems. */
  readonly readRequests: number;
}

const SINGLE_WRITES = new Set(['PutItemCommand', 'UpdateItemCommand', 'DeleteItemCommand']);
const READS = new Set(['GetItemCommand', 'BatchGetItemCommand', 'QueryCommand', 'ScanCommand', 'TransactGetItemsCommand']);

/**
 * Adds a middleware to `client` that counts every command sent through it (document clients
 * built on it included: they share its middleware stack). Returns a live snapshot function.
 *
 * @example
 * const client = new DynamoDBClient({});
 * const counts = countDynamoDbRequests(client);
 * // ... run ...
 * counts().writeRequests
 */
export function countDynamoDbRequests(client: DynamoDBClient): () => DynamoDbRequestCounts {
  const requests: Record<string, number> = {};
  let writeRequests = 0;
  let itemWrites = 0;
  let readRequests = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String((context as { commandName?: string }).commandName ?? 'unknown');
      requests[name] = (requests[name] ?? 0) + 1;
      const input = args.input as Record<string, any>;
      if (SINGLE_WRITES.has(name)) {
        writeRequests++;
        itemWrites++;
      } else if (name === 'BatchWriteItemCommand') {
        writeRequests++;
        for (const list of Object.values(input.RequestItems ?? {})) itemWrites += (list as unknown[]).length;
      } else if (name === 'TransactWriteItemsCommand') {
        writeRequests++;
        itemWrites += (input.TransactItems ?? []).length;
      } else if (READS.has(name)) {
        readRequests++;
      }
      return next(args);
    },
    // 'initialize' runs once per command, before retries: counts what the caller asked for.
    { step: 'initialize', name: 'benchRequestCounter' },
  );
  return () => ({ requests: { ...requests }, writeRequests, itemWrites, readRequests });
}

/** Difference of two snapshots: what happened between them. */
export function diffCounts(after: DynamoDbRequestCounts, before: DynamoDbRequestCounts): DynamoDbRequestCounts {
  const requests: Record<string, number> = {};
  for (const [name, n] of Object.entries(after.requests)) {
    const d = n - (before.requests[name] ?? 0);
    if (d !== 0) requests[name] = d;
  }
  return {
    requests,
    writeRequests: after.writeRequests - before.writeRequests,
    itemWrites: after.itemWrites - before.itemWrites,
    readRequests: after.readRequests - before.readRequests,
  };
}

/** Memory of this process: resident set now and at its peak, and the V8 heap and off-heap buffers. */
export interface MemorySample {
  readonly rssBytes: number;
  /** Peak resident set (VmHWM) over the process's life. */
  readonly peakRssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  /** Buffers and other memory outside the V8 heap (Kafka fetch buffers among them). */
  readonly externalBytes: number;
}

/** Resident set size now and its peak (VmHWM) over the process's life, with V8's heap figures, in bytes. */
export function memoryNow(): MemorySample {
  const usage = process.memoryUsage();
  let peakRssBytes = usage.rss;
  try {
    const match = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) peakRssBytes = Number(match[1]) * 1024;
  } catch {
    // Not Linux: the current RSS is the best figure available.
  }
  return { rssBytes: usage.rss, peakRssBytes, heapUsedBytes: usage.heapUsed, heapTotalBytes: usage.heapTotal, externalBytes: usage.external };
}

/**
 * The `p`-th percentile (0..100) of `values`, nearest-rank; undefined when empty.
 *
 * @example
 * percentile([5, 1, 9, 3], 50) // 3
 */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

/** One row of the results table: a metric, each contender's figure, and their ratio. */
export interface ResultRow {
  readonly metric: string;
  readonly engine: number | undefined;
  readonly naive: number | undefined;
  /** How to print the numbers. */
  readonly format: (value: number) => string;
  /** Which side is better when larger, for the ratio's wording. */
  readonly better: 'higher' | 'lower';
}

/**
 * Renders rows as a fixed-width text table with an `engine / naive` ratio column.
 *
 * @example
 * console.log(renderTable([{ metric: 'events/s', engine: 9000, naive: 1500, format: String, better: 'higher' }]));
 */
export function renderTable(rows: readonly ResultRow[]): string {
  const header = ['metric', 'engine', 'naive', 'engine/naive'];
  const body = rows.map((row) => {
    const ratio =
      row.engine !== undefined && row.naive !== undefined && row.naive !== 0
        ? `${(row.engine / row.naive).toFixed(row.engine / row.naive < 0.1 ? 3 : 2)}x`
        : 'n/a';
    return [
      row.metric,
      row.engine === undefined ? 'n/a' : row.format(row.engine),
      row.naive === undefined ? 'n/a' : row.format(row.naive),
      ratio,
    ];
  });
  return renderGrid(header, body, 'label');
}

/**
 * Renders a fixed-width text grid: a header, a rule, then the rows; cells right-aligned, or the
 * first column left-aligned when it holds `label`s.
 *
 * @example
 * console.log(renderGrid(['keys', 'RSS'], [['100,000', '519.0 MiB']], 'number'));
 */
export function renderGrid(header: readonly string[], body: readonly (readonly string[])[], firstColumn: 'label' | 'number'): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 && firstColumn === 'label' ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)].join('\n');
}

/** Formats bytes as MiB with one decimal. */
export const mib = (bytes: number): string => `${(bytes / 1_048_576).toFixed(1)} MiB`;
/** Formats a number with thousands separators and at most `digits` decimals. */
export const num =
  (digits = 0) =>
  (value: number): string =>
    value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
