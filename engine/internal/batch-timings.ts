/**
 * Where a batch's time goes, stage by stage, over the task's recent batches: what
 * `Engine.stats().batchTimings` reports and `npm run bench` prints as a table.
 */

/**
 * The stages of one batch, in order:
 * - `fetch`: from the produce time of the batch's last record (its Kafka timestamp) until the
 *   consumer handed the batch over (broker append, the fetch, waiting for the batch before it);
 * - `decodeFold`: decoding and routing the records and folding them into states (CPU);
 * - `read`: loading the states the cache did not hold (one batched consistent read);
 * - `write`: the conditional item writes (wall time, writes in flight together);
 * - `deliver`: trigger deliveries and dead letters;
 * - `durable`: from handing the batch over until its effects were durable (the stages above but `fetch`);
 * - `queue`: waiting for the partition's previous checkpoint and commit before the next fetch;
 * - `checkpoint`, `commit`: the checkpoint write and the offset commit (behind the next fetch).
 */
export const BATCH_STAGES = ['fetch', 'decodeFold', 'read', 'write', 'deliver', 'durable', 'queue', 'checkpoint', 'commit'] as const;
export type BatchStage = (typeof BATCH_STAGES)[number];

/** One stage over the recent batches. */
export interface StageSummary {
  /** Batches measured (at most the window). */
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Samples kept per stage: the summary covers this many recent batches. */
export const BATCH_TIMINGS_WINDOW = 1_000;

/** Per stage, a ring of the last {@link BATCH_TIMINGS_WINDOW} samples (milliseconds). */
export class BatchTimings {
  private readonly rings = new Map<BatchStage, { samples: Float64Array; next: number; count: number }>();

  record(stage: BatchStage, ms: number): void {
    let ring = this.rings.get(stage);
    if (ring === undefined) {
      ring = { samples: new Float64Array(BATCH_TIMINGS_WINDOW), next: 0, count: 0 };
      this.rings.set(stage, ring);
    }
    ring.samples[ring.next] = Math.max(0, ms);
    ring.next = (ring.next + 1) % BATCH_TIMINGS_WINDOW;
    ring.count = Math.min(BATCH_TIMINGS_WINDOW, ring.count + 1);
  }

  /** Each measured stage's summary, in stage order. */
  summary(): Partial<Record<BatchStage, StageSummary>> {
    const out: Partial<Record<BatchStage, StageSummary>> = {};
    for (const stage of BATCH_STAGES) {
      const ring = this.rings.get(stage);
      if (ring === undefined || ring.count === 0) continue;
      const sorted = ring.samples.slice(0, ring.count).sort();
      const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
      let total = 0;
      for (const ms of sorted) total += ms;
      out[stage] = { count: ring.count, meanMs: total / ring.count, p50Ms: at(50), p99Ms: at(99), maxMs: sorted[sorted.length - 1]! };
    }
    return out;
  }
}
