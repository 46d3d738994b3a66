/**
 * What the engine itself costs, as `npm run bench` prints it: where a batch's time goes (the
 * engine's `batchTimings`), CPU seconds of the engine process per million events, and, from a
 * V8 CPU profile of the engine worker (`BENCH_ENGINE_CPU_PROF=<dir>`), the shares of the fold,
 * decoding, the DynamoDB client, the Kafka client and the rest.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Session } from 'node:inspector/promises';
import { num, renderGrid } from './metrics.ts';

/** `process.cpuUsage()` of a worker, microseconds. */
export interface CpuSample {
  readonly userMicros: number;
  readonly systemMicros: number;
}

export function cpuNow(): CpuSample {
  const { user, system } = process.cpuUsage();
  return { userMicros: user, systemMicros: system };
}

/**
 * Starts a V8 CPU profile of this process's main thread (the engine's, not the module loader's);
 * the returned function stops it and writes it to `file`. Started once the engine joined its
 * group, so the profile holds the work of the run, not the start-up's module loading.
 */
export async function startCpuProfile(file: string): Promise<() => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

/** User + system CPU seconds per million events between two samples of one process. */
export function cpuSecondsPerMillion(before: CpuSample, after: CpuSample, events: number): { user: number; system: number; total: number } {
  const scale = 1_000_000 / Math.max(1, events) / 1_000_000;
  const user = (after.userMicros - before.userMicros) * scale;
  const system = (after.systemMicros - before.systemMicros) * scale;
  return { user, system, total: user + system };
}

/** One stage of `Engine.stats().batchTimings`. */
interface StageSummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const STAGE_LABELS: Record<string, string> = {
  fetch: 'fetch wait (produce -> batch handed over)',
  decodeFold: 'decode + fold (CPU)',
  read: 'state reads (cache misses)',
  write: 'item writes',
  deliver: 'trigger deliveries, dead letters',
  durable: 'batch handed over -> durable',
  queue: 'wait for previous checkpoint+commit',
  checkpoint: 'checkpoint write (behind next fetch)',
  commit: 'offset commit (behind next fetch)',
};

/** The engine's per-stage batch timings as a table. */
export function renderBatchTimings(timings: Readonly<Record<string, StageSummary>>): string {
  const body = Object.entries(timings).map(([stage, s]) => [
    STAGE_LABELS[stage] ?? stage,
    num()(s.count),
    num(2)(s.meanMs),
    num(2)(s.p50Ms),
    num(2)(s.p99Ms),
    num(1)(s.maxMs),
  ]);
  return renderGrid(['stage (per batch)', 'batches', 'mean ms', 'p50 ms', 'p99 ms', 'max ms'], body, 'label');
}

/** V8 `.cpuprofile` (the parts read here). */
interface CpuProfile {
  readonly nodes: readonly { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a profile node's self time is counted. */
function categoryOf(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'garbage collection';
  if (fn === '(idle)' || fn === '(program)') return fn === '(idle)' ? 'idle' : 'V8 / native (program)';
  if (url.includes('/kafkajs/')) return 'Kafka client (kafkajs)';
  if (url.includes('/@aws-sdk/') || url.includes('/@smithy/') || url.includes('/@aws-crypto/') || url.includes('/dynamodb-toolbox/')) return 'DynamoDB client (AWS SDK, toolbox)';
  if (url.includes('/node_modules/')) return 'other libraries';
  if (url.includes('/engine/internal/fold.ts') || url.includes('/bench/internal/class-counts.ts') || url.includes('/functions/')) return 'engine: decode + fold (fold.ts, the view)';
  if (url.includes('/engine/internal/')) return 'engine: batch loop, ledger, cache, store';
  if (url.includes('/sdk/')) return 'sdk / contract (item layout)';
  if (url.startsWith('node:') || url === '') return 'Node.js runtime (streams, net, timers)';
  return 'other';
}

/**
 * Self time per component of the `.cpuprofile` at `file` (see {@link startCpuProfile}), idle
 * excluded, as a table of shares, then the hottest functions. Undefined when there is none.
 */
export function renderCpuProfile(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const micros = new Map<string, number>();
  const fns = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (node === undefined) return;
    const category = categoryOf(node.callFrame.url, node.callFrame.functionName);
    const delta = profile.timeDeltas[i] ?? 0;
    micros.set(category, (micros.get(category) ?? 0) + delta);
    if (category !== 'idle') {
      const where = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/^.*\/(node_modules\/)?/, '')}`;
      fns.set(where, (fns.get(where) ?? 0) + delta);
    }
  });
  micros.delete('idle');
  const busy = [...micros.values()].reduce((a, b) => a + b, 0);
  const rows = [...micros]
    .sort((a, b) => b[1] - a[1])
    .map(([category, us]) => [category, num(2)(us / 1e6), `${num(1)((us / Math.max(1, busy)) * 100)} %`]);
  const top = [...fns]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([where, us]) => [where, num(2)(us / 1e6), `${num(1)((us / Math.max(1, busy)) * 100)} %`]);
  return [
    `CPU profile of the engine worker (${file}, from joining the group to the end of the throughput phase): self time by component, idle excluded`,
    renderGrid(['component', 'CPU s', 'share'], rows, 'label'),
    '',
    'hottest functions (self time)',
    renderGrid(['function', 'CPU s', 'share'], top, 'label'),
  ].join('\n');
}
