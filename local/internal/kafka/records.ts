/**
 * Record batch v2 (magic 2) handling. The broker never re-encodes records: it checks the
 * header and CRC32C, rewrites the base offset in place and stores the batch bytes as they came.
 */

// Slicing-by-8 tables for CRC32C (Castagnoli, reflected polynomial 0x82F63B78): Node 20 has no
// built-in CRC32C, and the benchmark pushes enough data that the byte-at-a-time loop shows.
const CRC_TABLES: Uint32Array[] = (() => {
  const tables: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t0[i] = c >>> 0;
  }
  tables.push(t0);
  for (let t = 1; t < 8; t++) {
    const prev = tables[t - 1]!;
    const next = new Uint32Array(256);
    for (let i = 0; i < 256; i++) next[i] = (prev[i]! >>> 8) ^ t0[prev[i]! & 0xff]!;
    tables.push(next);
  }
  return tables;
})();

/** CRC32C of `buf[start, end)`. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES as [
    Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array,
  ];
  let crc = 0xffffffff;
  let i = start;
  while (end - i >= 8) {
    const a = crc ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    crc =
      t7[a & 0xff]! ^
      t6[(a >>> 8) & 0xff]! ^
      t5[(a >>> 16) & 0xff]! ^
      t4[a >>> 24]! ^
      t3[buf[i + 4]!]! ^
      t2[buf[i + 5]!]! ^
      t1[buf[i + 6]!]! ^
      t0[buf[i + 7]!]!;
    i += 8;
  }
  while (i < end) crc = t0[(crc ^ buf[i++]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Byte offsets of the record batch v2 header fields. */
export const BATCH = {
  baseOffset: 0,
  batchLength: 8,
  partitionLeaderEpoch: 12,
  magic: 16,
  crc: 17,
  attributes: 21,
  lastOffsetDelta: 23,
  baseTimestamp: 27,
  maxTimestamp: 35,
  producerId: 43,
  producerEpoch: 51,
  baseSequence: 53,
  recordCount: 57,
  headerSize: 61,
} as const;

/** Header facts of one stored batch. */
export interface BatchInfo {
  /** The batch bytes (exactly one batch). */
  readonly buf: Buffer;
  readonly lastOffsetDelta: number;
  readonly recordCount: number;
  readonly maxTimestamp: number;
  readonly baseTimestamp: number;
  readonly producerId: bigint;
  readonly producerEpoch: number;
  readonly baseSequence: number;
  readonly attributes: number;
}

/** Why a produced records blob was refused, as a Kafka error code and a reason. */
export interface BatchRejection {
  readonly errorCode: number;
  readonly reason: string;
}

/** Kafka error codes the record checks return. */
export const CORRUPT_MESSAGE = 2;
export const UNSUPPORTED_FOR_MESSAGE_FORMAT = 43;
export const INVALID_RECORD = 87;

/**
 * Splits a produced records blob into batches and checks each: magic 2, sane lengths, CRC32C.
 * Returns the batches (views into `records`) or why they were refused.
 */
export function splitBatches(records: Buffer): BatchInfo[] | BatchRejection {
  const out: BatchInfo[] = [];
  let pos = 0;
  while (pos < records.length) {
    if (records.length - pos < BATCH.headerSize) {
      return { errorCode: CORRUPT_MESSAGE, reason: `truncated batch header at byte ${pos}` };
    }
    const batchLength = records.readInt32BE(pos + BATCH.batchLength);
    const size = batchLength + 12;
    if (batchLength < BATCH.headerSize - 12 || pos + size > records.length) {
      return { errorCode: CORRUPT_MESSAGE, reason: `bad batch length ${batchLength} at byte ${pos}` };
    }
    const magic = records.readInt8(pos + BATCH.magic);
    if (magic !== 2) {
      return { errorCode: UNSUPPORTED_FOR_MESSAGE_FORMAT, reason: `record batch magic ${magic}; only v2 is served` };
    }
    const expected = records.readUInt32BE(pos + BATCH.crc);
    const actual = crc32c(records, pos + BATCH.attributes, pos + size);
    if (expected !== actual) {
      return { errorCode: CORRUPT_MESSAGE, reason: `CRC32C mismatch: batch says ${expected}, bytes give ${actual}` };
    }
    const recordCount = records.readInt32BE(pos + BATCH.recordCount);
    const lastOffsetDelta = records.readInt32BE(pos + BATCH.lastOffsetDelta);
    if (recordCount <= 0 || lastOffsetDelta < 0) {
      return { errorCode: INVALID_RECORD, reason: `batch with ${recordCount} records, lastOffsetDelta ${lastOffsetDelta}` };
    }
    out.push(readBatchInfo(records.subarray(pos, pos + size)));
    pos += size;
  }
  return out;
}

/** Reads the header facts of one batch. */
export function readBatchInfo(buf: Buffer): BatchInfo {
  return {
    buf,
    lastOffsetDelta: buf.readInt32BE(BATCH.lastOffsetDelta),
    recordCount: buf.readInt32BE(BATCH.recordCount),
    maxTimestamp: Number(buf.readBigInt64BE(BATCH.maxTimestamp)),
    baseTimestamp: Number(buf.readBigInt64BE(BATCH.baseTimestamp)),
    producerId: buf.readBigInt64BE(BATCH.producerId),
    producerEpoch: buf.readInt16BE(BATCH.producerEpoch),
    baseSequence: buf.readInt32BE(BATCH.baseSequence),
    attributes: buf.readInt16BE(BATCH.attributes),
  };
}

function readVarint(buf: Buffer, pos: number): [value: number, next: number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  // zig-zag
  return [result % 2 === 1 ? -(result + 1) / 2 : result / 2, pos];
}

/**
 * Offset delta of the first record with timestamp >= `timestamp` in an uncompressed batch, or
 * undefined when the batch is compressed (then the caller uses the batch base offset).
 */
export function firstOffsetDeltaAtOrAfter(batch: Buffer, timestamp: number): number | undefined {
  const attributes = batch.readInt16BE(BATCH.attributes);
  if ((attributes & 0x07) !== 0) return undefined;
  const baseTimestamp = Number(batch.readBigInt64BE(BATCH.baseTimestamp));
  const count = batch.readInt32BE(BATCH.recordCount);
  let pos = BATCH.headerSize;
  for (let i = 0; i < count && pos < batch.length; i++) {
    const [length, afterLength] = readVarint(batch, pos);
    const [tsDelta, afterTs] = readVarint(batch, afterLength + 1);
    const [offsetDelta] = readVarint(batch, afterTs);
    if (baseTimestamp + tsDelta >= timestamp) return offsetDelta;
    pos = afterLength + length;
  }
  return undefined;
}
