/**
 * Kafka wire primitives: a bounds-checked reader and a chunked writer that handle both the
 * classic encodings and the "flexible" ones (compact strings/arrays, tagged fields) that
 * newer API versions use. One `flexible` flag per message switches between them, so each
 * API handler is written once for all of its versions.
 */

/** Thrown when a request does not decode; the connection that sent it is closed. */
export class MalformedRequestError extends Error {
  override readonly name = 'MalformedRequestError';
}

/** Reads Kafka primitives from one request frame. */
export class Reader {
  offset: number;
  constructor(
    readonly buf: Buffer,
    offset = 0,
    public flexible = false,
  ) {
    this.offset = offset;
  }

  private need(n: number): void {
    if (n < 0 || this.offset + n > this.buf.length) {
      throw new MalformedRequestError(
        `request ends early: needed ${n} bytes at ${this.offset} of ${this.buf.length}`,
      );
    }
  }
  remaining(): number {
    return this.buf.length - this.offset;
  }
  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.offset++);
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  /** int64 as a JS number; offsets and timestamps stay well below 2^53. */
  int64n(): number {
    return Number(this.int64());
  }
  uuid(): Buffer {
    this.need(16);
    const v = this.buf.subarray(this.offset, this.offset + 16);
    this.offset += 16;
    return v;
  }
  uvarint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      this.need(1);
      const b = this.buf[this.offset++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new MalformedRequestError('varint longer than 5 bytes');
    }
  }
  /** Length prefix of a string/bytes/array: -1 means null. */
  private len(classic: 'int16' | 'int32'): number {
    if (this.flexible) return this.uvarint() - 1;
    return classic === 'int16' ? this.int16() : this.int32();
  }
  nullableString(): string | null {
    const n = this.len('int16');
    if (n < 0) return null;
    this.need(n);
    const s = this.buf.toString('utf8', this.offset, this.offset + n);
    this.offset += n;
    return s;
  }
  string(): string {
    return this.nullableString() ?? '';
  }
  nullableBytes(): Buffer | null {
    const n = this.len('int32');
    if (n < 0) return null;
    this.need(n);
    const b = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }
  bytes(): Buffer {
    return this.nullableBytes() ?? Buffer.alloc(0);
  }
  nullableArray<T>(item: (r: Reader) => T): T[] | null {
    const n = this.len('int32');
    if (n < 0) return null;
    if (n > this.remaining()) throw new MalformedRequestError(`array length ${n} exceeds the frame`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item(this));
    return out;
  }
  array<T>(item: (r: Reader) => T): T[] {
    return this.nullableArray(item) ?? [];
  }
  /** Skips a tagged-field section (flexible versions only); the broker knows no request tags it needs. */
  tags(): void {
    if (!this.flexible) return;
    const count = this.uvarint();
    for (let i = 0; i < count; i++) {
      this.uvarint();
      const size = this.uvarint();
      this.need(size);
      this.offset += size;
    }
  }
}

const SMALL_CHUNK = 512;

/** Builds a response as a list of chunks; large buffers (record batches) are referenced, not copied. */
export class Writer {
  private chunks: Buffer[] = [];
  private cur: Buffer;
  private pos = 0;
  private total = 0;
  constructor(public flexible = false) {
    this.cur = Buffer.allocUnsafe(1024);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.flushCurrent();
    this.cur = Buffer.allocUnsafe(Math.max(4096, n));
  }
  private flushCurrent(): void {
    if (this.pos > 0) {
      this.chunks.push(this.cur.subarray(0, this.pos));
      this.cur = this.cur.subarray(this.pos);
      this.pos = 0;
    }
  }
  get length(): number {
    return this.total;
  }
  int8(v: number): this {
    this.ensure(1);
    this.cur.writeInt8(v, this.pos);
    this.pos += 1;
    this.total += 1;
    return this;
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  int16(v: number): this {
    this.ensure(2);
    this.cur.writeInt16BE(v, this.pos);
    this.pos += 2;
    this.total += 2;
    return this;
  }
  int32(v: number): this {
    this.ensure(4);
    this.cur.writeInt32BE(v, this.pos);
    this.pos += 4;
    this.total += 4;
    return this;
  }
  int64(v: number | bigint): this {
    this.ensure(8);
    this.cur.writeBigInt64BE(BigInt(v), this.pos);
    this.pos += 8;
    this.total += 8;
    return this;
  }
  uvarint(v: number): this {
    this.ensure(5);
    while (v >= 0x80) {
      this.cur[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
      this.total++;
    }
    this.cur[this.pos++] = v;
    this.total++;
    return this;
  }
  raw(b: Buffer): this {
    if (b.length >= SMALL_CHUNK) {
      this.flushCurrent();
      this.chunks.push(b);
    } else {
      this.ensure(b.length);
      b.copy(this.cur, this.pos);
      this.pos += b.length;
    }
    this.total += b.length;
    return this;
  }
  uuid(b: Buffer | null): this {
    return this.raw(b ?? Buffer.alloc(16));
  }
  private len(n: number, classic: 'int16' | 'int32'): this {
    if (this.flexible) return this.uvarint(n + 1);
    return classic === 'int16' ? this.int16(n) : this.int32(n);
  }
  nullableString(s: string | null | undefined): this {
    if (s === null || s === undefined) return this.len(-1, 'int16');
    const b = Buffer.from(s, 'utf8');
    return this.len(b.length, 'int16').raw(b);
  }
  string(s: string): this {
    return this.nullableString(s);
  }
  nullableBytes(b: Buffer | null | undefined): this {
    if (b === null || b === undefined) return this.len(-1, 'int32');
    return this.len(b.length, 'int32').raw(b);
  }
  bytes(b: Buffer): this {
    return this.nullableBytes(b);
  }
  /** Records field made of several stored batches, written back to back without copying. */
  records(batches: readonly Buffer[] | null): this {
    if (batches === null) return this.len(-1, 'int32');
    let size = 0;
    for (const b of batches) size += b.length;
    this.len(size, 'int32');
    for (const b of batches) this.raw(b);
    return this;
  }
  array<T>(items: readonly T[] | null, item: (w: Writer, v: T) => void): this {
    if (items === null) return this.len(-1, 'int32');
    this.len(items.length, 'int32');
    for (const v of items) item(this, v);
    return this;
  }
  /** An empty tagged-field section (flexible versions only). */
  tags(): this {
    if (this.flexible) this.uvarint(0);
    return this;
  }
  /** The frame: 4-byte size prefix followed by every chunk. */
  finish(): Buffer[] {
    this.flushCurrent();
    const size = Buffer.allocUnsafe(4);
    size.writeInt32BE(this.total, 0);
    return [size, ...this.chunks];
  }
}
