/**
 * Partition logs and broker metadata, in memory and optionally persisted to a data directory.
 *
 * Layout of a data directory:
 * - `topics.json` — topic names, ids and partition counts (rewritten atomically on change);
 * - `logs/<topicIdHex>/<partition>.log` — append-only record batches exactly as served
 *   (base offsets already rewritten); the in-memory index is rebuilt by scanning on start;
 * - `offsets.log` — committed group offsets as JSON lines, compacted on start.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { BATCH, type BatchInfo, firstOffsetDeltaAtOrAfter, readBatchInfo } from './records.ts';

/** How many recent batches per producer are remembered to recognise retried duplicates (Kafka keeps 5). */
const PRODUCER_RECENT_BATCHES = 5;

/** Kafka error codes used by the idempotence checks. */
export const OUT_OF_ORDER_SEQUENCE_NUMBER = 45;
export const INVALID_PRODUCER_EPOCH = 47;

interface RecentBatch {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly baseOffset: number;
}
interface ProducerState {
  epoch: number;
  recent: RecentBatch[];
}

/** Outcome of appending one batch. */
export type AppendResult =
  | { readonly kind: 'appended'; readonly baseOffset: number }
  | { readonly kind: 'duplicate'; readonly baseOffset: number }
  | { readonly kind: 'rejected'; readonly errorCode: number; readonly reason: string };

/** One partition: stored batches with their offsets, plus idempotent-producer state. */
export class PartitionLog {
  private readonly batches: Buffer[] = [];
  private readonly baseOffsets: number[] = [];
  private readonly lastOffsets: number[] = [];
  private readonly maxTimestamps: number[] = [];
  private readonly producers = new Map<bigint, ProducerState>();
  logEndOffset = 0;
  readonly logStartOffset = 0;
  private fd: number | undefined;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly file: string | undefined,
  ) {
    if (file !== undefined) {
      if (existsSync(file)) {
        const data = readFileSync(file);
        const good = this.load(data);
        // Cut a torn tail (crash mid-append) so that new batches follow the last whole one.
        if (good < data.length) truncateSync(file, good);
      }
      this.fd = openSync(file, 'a');
    }
  }

  /** Indexes the batches in `data`; returns the length of its whole-batch prefix. */
  private load(data: Buffer): number {
    let pos = 0;
    while (data.length - pos >= BATCH.headerSize) {
      const size = data.readInt32BE(pos + BATCH.batchLength) + 12;
      // A torn write at the end of the file (crash mid-append) is dropped.
      if (size < BATCH.headerSize || pos + size > data.length) break;
      const info = readBatchInfo(data.subarray(pos, pos + size));
      const baseOffset = Number(info.buf.readBigInt64BE(BATCH.baseOffset));
      this.index(info, baseOffset);
      pos += size;
    }
    return pos;
  }

  private index(info: BatchInfo, baseOffset: number): void {
    const lastOffset = baseOffset + info.lastOffsetDelta;
    this.batches.push(info.buf);
    this.baseOffsets.push(baseOffset);
    this.lastOffsets.push(lastOffset);
    this.maxTimestamps.push(info.maxTimestamp);
    this.logEndOffset = lastOffset + 1;
    if (info.producerId >= 0n && info.baseSequence >= 0) {
      let state = this.producers.get(info.producerId);
      if (state === undefined || info.producerEpoch > state.epoch) {
        state = { epoch: info.producerEpoch, recent: [] };
        this.producers.set(info.producerId, state);
      }
      state.recent.push({ firstSeq: info.baseSequence, lastSeq: info.baseSequence + info.lastOffsetDelta, baseOffset });
      if (state.recent.length > PRODUCER_RECENT_BATCHES) state.recent.shift();
    }
  }

  /** Checks idempotence, copies the batch, rewrites its base offset, stores and persists it. */
  append(info: BatchInfo): AppendResult {
    if (info.producerId >= 0n && info.baseSequence >= 0) {
      const state = this.producers.get(info.producerId);
      const lastSeq = info.baseSequence + info.lastOffsetDelta;
      if (state !== undefined && info.producerEpoch < state.epoch) {
        return {
          kind: 'rejected',
          errorCode: INVALID_PRODUCER_EPOCH,
          reason: `producer ${info.producerId} epoch ${info.producerEpoch} is older than ${state.epoch}`,
        };
      }
      if (state !== undefined && info.producerEpoch === state.epoch) {
        const dup = state.recent.find((b) => b.firstSeq === info.baseSequence && b.lastSeq === lastSeq);
        if (dup !== undefined) return { kind: 'duplicate', baseOffset: dup.baseOffset };
        const last = state.recent[state.recent.length - 1];
        const expected = last === undefined ? 0 : (last.lastSeq + 1) % 2 ** 31;
        if (info.baseSequence !== expected) {
          return {
            kind: 'rejected',
            errorCode: OUT_OF_ORDER_SEQUENCE_NUMBER,
            reason: `producer ${info.producerId}: sequence ${info.baseSequence}, expected ${expected}`,
          };
        }
      } else if (info.baseSequence !== 0) {
        return {
          kind: 'rejected',
          errorCode: OUT_OF_ORDER_SEQUENCE_NUMBER,
          reason: `producer ${info.producerId} epoch ${info.producerEpoch}: first sequence ${info.baseSequence}, expected 0`,
        };
      }
    }
    const baseOffset = this.logEndOffset;
    const buf = Buffer.allocUnsafe(info.buf.length);
    info.buf.copy(buf);
    buf.writeBigInt64BE(BigInt(baseOffset), BATCH.baseOffset);
    if (this.fd !== undefined) writeSync(this.fd, buf);
    this.index({ ...info, buf }, baseOffset);
    return { kind: 'appended', baseOffset };
  }

  /** Index of the first batch whose last offset is >= `offset`. */
  private findBatch(offset: number): number {
    let lo = 0;
    let hi = this.lastOffsets.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.lastOffsets[mid]! < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Batches from `offset` on, up to `maxBytes` (at least one batch when any exists, as Kafka
   * does, so that an oversized batch never blocks a consumer).
   */
  read(offset: number, maxBytes: number): { batches: Buffer[]; bytes: number } {
    const batches: Buffer[] = [];
    let bytes = 0;
    for (let i = this.findBatch(offset); i < this.batches.length; i++) {
      const b = this.batches[i]!;
      if (batches.length > 0 && bytes + b.length > maxBytes) break;
      batches.push(b);
      bytes += b.length;
      if (bytes >= maxBytes) break;
    }
    return { batches, bytes };
  }

  /** Bytes available from `offset` on, counted up to `limit`. */
  availableBytes(offset: number, limit: number): number {
    let bytes = 0;
    for (let i = this.findBatch(offset); i < this.batches.length && bytes < limit; i++) bytes += this.batches[i]!.length;
    return bytes;
  }

  /** First offset whose record timestamp is >= `timestamp`, or -1 when none. */
  offsetForTimestamp(timestamp: number): { offset: number; timestamp: number } {
    for (let i = 0; i < this.batches.length; i++) {
      if (this.maxTimestamps[i]! >= timestamp) {
        const delta = firstOffsetDeltaAtOrAfter(this.batches[i]!, timestamp);
        return { offset: this.baseOffsets[i]! + (delta ?? 0), timestamp: this.maxTimestamps[i]! };
      }
    }
    return { offset: -1, timestamp: -1 };
  }

  close(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

/** A topic and its partitions. */
export interface Topic {
  readonly name: string;
  /** 16-byte topic id (newer Metadata and Fetch versions address topics by id). */
  readonly id: Buffer;
  readonly partitions: PartitionLog[];
}

/** One committed offset of a consumer group. */
export interface CommittedOffset {
  readonly offset: number;
  readonly metadata: string | null;
  readonly leaderEpoch: number;
}

interface TopicsFile {
  topics: { name: string; id: string; partitions: number }[];
  nextProducerId: number;
}

/** All topics and committed offsets of the broker, persisted when a data directory is given. */
export class BrokerStore {
  readonly topics = new Map<string, Topic>();
  readonly topicsById = new Map<string, Topic>();
  /** group -> "topic\0partition" -> committed offset */
  readonly offsets = new Map<string, Map<string, CommittedOffset>>();
  private nextProducerId = 1000;
  private offsetsFd: number | undefined;

  constructor(private readonly dataDir: string | undefined) {
    if (dataDir === undefined) return;
    mkdirSync(join(dataDir, 'logs'), { recursive: true });
    const topicsFile = join(dataDir, 'topics.json');
    if (existsSync(topicsFile)) {
      const saved = JSON.parse(readFileSync(topicsFile, 'utf8')) as TopicsFile;
      this.nextProducerId = saved.nextProducerId;
      for (const t of saved.topics) this.addTopic(t.name, t.partitions, Buffer.from(t.id, 'hex'));
    }
    const offsetsFile = join(dataDir, 'offsets.log');
    if (existsSync(offsetsFile)) {
      for (const line of readFileSync(offsetsFile, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        try {
          const e = JSON.parse(line) as { g: string; t: string; p: number; o: number; m: string | null; e: number };
          this.groupOffsets(e.g).set(`${e.t}\0${e.p}`, { offset: e.o, metadata: e.m, leaderEpoch: e.e });
        } catch {
          // A torn last line after a crash; the earlier commits stand.
        }
      }
    }
    // Compact: rewrite only the latest commit per group/partition.
    const lines: string[] = [];
    for (const [g, m] of this.offsets) {
      for (const [k, v] of m) {
        const [t, p] = k.split('\0') as [string, string];
        lines.push(JSON.stringify({ g, t, p: Number(p), o: v.offset, m: v.metadata, e: v.leaderEpoch }));
      }
    }
    writeFileSync(`${offsetsFile}.tmp`, lines.length ? `${lines.join('\n')}\n` : '');
    renameSync(`${offsetsFile}.tmp`, offsetsFile);
    this.offsetsFd = openSync(offsetsFile, 'a');
  }

  private saveTopics(): void {
    if (this.dataDir === undefined) return;
    const file: TopicsFile = {
      topics: [...this.topics.values()].map((t) => ({ name: t.name, id: t.id.toString('hex'), partitions: t.partitions.length })),
      nextProducerId: this.nextProducerId,
    };
    const path = join(this.dataDir, 'topics.json');
    writeFileSync(`${path}.tmp`, JSON.stringify(file, null, 1));
    renameSync(`${path}.tmp`, path);
  }

  private addTopic(name: string, partitions: number, id: Buffer): Topic {
    let dir: string | undefined;
    if (this.dataDir !== undefined) {
      dir = join(this.dataDir, 'logs', id.toString('hex'));
      mkdirSync(dir, { recursive: true });
    }
    const topic: Topic = {
      name,
      id,
      partitions: Array.from({ length: partitions }, (_, p) =>
        new PartitionLog(name, p, dir === undefined ? undefined : join(dir, `${p}.log`)),
      ),
    };
    this.topics.set(name, topic);
    this.topicsById.set(id.toString('hex'), topic);
    return topic;
  }

  createTopic(name: string, partitions: number): Topic {
    const topic = this.addTopic(name, partitions, randomBytes(16));
    this.saveTopics();
    return topic;
  }

  deleteTopic(name: string): boolean {
    const topic = this.topics.get(name);
    if (topic === undefined) return false;
    for (const p of topic.partitions) p.close();
    this.topics.delete(name);
    this.topicsById.delete(topic.id.toString('hex'));
    if (this.dataDir !== undefined) rmSync(join(this.dataDir, 'logs', topic.id.toString('hex')), { recursive: true, force: true });
    this.saveTopics();
    return true;
  }

  allocateProducerId(): number {
    const id = this.nextProducerId++;
    this.saveTopics();
    return id;
  }

  groupOffsets(group: string): Map<string, CommittedOffset> {
    let m = this.offsets.get(group);
    if (m === undefined) {
      m = new Map();
      this.offsets.set(group, m);
    }
    return m;
  }

  commitOffset(group: string, topic: string, partition: number, committed: CommittedOffset): void {
    this.groupOffsets(group).set(`${topic}\0${partition}`, committed);
    if (this.offsetsFd !== undefined) {
      writeSync(
        this.offsetsFd,
        `${JSON.stringify({ g: group, t: topic, p: partition, o: committed.offset, m: committed.metadata, e: committed.leaderEpoch })}\n`,
      );
    }
  }

  committed(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.offsets.get(group)?.get(`${topic}\0${partition}`);
  }

  close(): void {
    for (const t of this.topics.values()) for (const p of t.partitions) p.close();
    if (this.offsetsFd !== undefined) {
      closeSync(this.offsetsFd);
      this.offsetsFd = undefined;
    }
  }
}
