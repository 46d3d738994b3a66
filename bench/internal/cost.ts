/**
 * The DynamoDB cost model of the bench: capacity units per request from the sizes of the items
 * actually written and read, and what they cost on demand at AWS's list price.
 *
 * Units, as DynamoDB bills them:
 * - a write of an item of N bytes costs ⌈N / 1 KB⌉ write units (at least 1); inside
 *   `TransactWriteItems`, twice that; a `BatchWriteItem` is billed per item;
 * - a read costs ⌈N / 4 KB⌉ units strongly consistent, half that eventually consistent (a read
 *   that finds nothing still costs the minimum); a `Query` rounds the sum of the returned items,
 *   a `BatchGetItem` each key (a key not found costs the minimum, as a `GetItem` would).
 * Item size is the sum of attribute name and value sizes (DynamoDB's item size rules).
 */
import { BatchGetItemCommand, type BatchGetItemCommandOutput, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { percentile } from './metrics.ts';

/**
 * AWS's on-demand list price in us-east-1 (Standard table class), in USD per million request
 * units: in effect since 1 November 2024, when AWS halved on-demand throughput prices (from
 * $1.25 / $0.25), and still the published price when this bench was written (December 2026).
 */
export const ON_DEMAND_PRICE: OnDemandPrice = {
  region: 'us-east-1',
  effective: '2024-11-01',
  writePerMillionUnits: 0.625,
  readPerMillionUnits: 0.125,
};

/** An on-demand price list: region, the date it took effect, USD per million request units. */
export interface OnDemandPrice {
  readonly region: string;
  readonly effective: string;
  readonly writePerMillionUnits: number;
  readonly readPerMillionUnits: number;
}

/** A marshalled DynamoDB attribute value (`{ S: 'x' }`, `{ N: '1' }`, `{ M: {...} }`, ...). */
type AttributeValue = Record<string, unknown>;

const KB = 1024;

/**
 * Bytes of a number as DynamoDB stores it: about one byte per two significant digits, plus one.
 *
 * @example
 * numberSize('12345') // 4: five significant digits -> 3 bytes, + 1
 */
export function numberSize(text: string): number {
  const digits = text.replace(/^[-+]/, '').replace(/[eE].*$/, '').replace('.', '');
  const significant = digits.replace(/^0+/, '').replace(/0+$/, '');
  return Math.ceil(Math.max(1, significant.length) / 2) + 1;
}

/** Bytes of one marshalled attribute value, by DynamoDB's item size rules. */
export function attributeValueSize(value: AttributeValue): number {
  if (typeof value.S === 'string') return Buffer.byteLength(value.S, 'utf8');
  if (typeof value.N === 'string') return numberSize(value.N);
  if (value.B !== undefined) return byteSize(value.B);
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (Array.isArray(value.SS)) return value.SS.reduce((sum: number, s: string) => sum + Buffer.byteLength(s, 'utf8'), 0);
  if (Array.isArray(value.NS)) return value.NS.reduce((sum: number, n: string) => sum + numberSize(n), 0);
  if (Array.isArray(value.BS)) return value.BS.reduce((sum: number, b: unknown) => sum + byteSize(b), 0);
  // Maps and lists: 3 bytes, plus 1 byte per element, plus the elements (and a map's names).
  if (Array.isArray(value.L)) return 3 + value.L.reduce((sum: number, v: AttributeValue) => sum + 1 + attributeValueSize(v), 0);
  if (value.M !== undefined && typeof value.M === 'object') {
    return 3 + Object.entries(value.M as Record<string, AttributeValue>).reduce((sum, [name, v]) => sum + 1 + Buffer.byteLength(name, 'utf8') + attributeValueSize(v), 0);
  }
  return 0;
}

const ATTRIBUTE_TYPES = new Set(['S', 'N', 'B', 'BOOL', 'NULL', 'M', 'L', 'SS', 'NS', 'BS']);

/** Whether `item` is in DynamoDB's wire format (each value `{ S: ... }`, `{ N: ... }`, ...). */
function isMarshalled(item: Readonly<Record<string, unknown>>): boolean {
  return Object.values(item).every((v) => {
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return false;
    const keys = Object.keys(v);
    return keys.length === 1 && ATTRIBUTE_TYPES.has(keys[0]!);
  });
}

/**
 * Bytes of a value as a document client would store it (strings, numbers, booleans, null,
 * binary, arrays as lists, Sets as sets, objects as maps), by the same rules as {@link attributeValueSize}.
 */
export function nativeValueSize(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number' || typeof value === 'bigint') return numberSize(String(value));
  if (typeof value === 'boolean' || value === null || value === undefined) return 1;
  if (value instanceof Uint8Array) return value.byteLength;
  if (value instanceof Set) return [...value].reduce((sum: number, v) => sum + nativeValueSize(v), 0);
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, v) => sum + 1 + nativeValueSize(v), 0);
  if (typeof value === 'object') {
    return 3 + Object.entries(value as Record<string, unknown>).reduce((sum, [name, v]) => sum + 1 + Buffer.byteLength(name, 'utf8') + nativeValueSize(v), 0);
  }
  return 0;
}

/** Bytes of an item in either form: the wire format, or a document client's plain object. */
export function anyItemSize(item: Readonly<Record<string, unknown>>): number {
  if (isMarshalled(item)) return itemSize(item as Readonly<Record<string, AttributeValue>>);
  let size = 0;
  for (const [name, value] of Object.entries(item)) if (value !== undefined) size += Buffer.byteLength(name, 'utf8') + nativeValueSize(value);
  return size;
}

function byteSize(b: unknown): number {
  if (b instanceof Uint8Array) return b.byteLength;
  if (typeof b === 'string') return Buffer.byteLength(b, 'base64');
  return 0;
}

/**
 * Bytes of a marshalled item: each attribute's name plus its value.
 *
 * @example
 * itemSize({ pk: { S: 'ab' }, n: { N: '7' } }) // 2 + 2 + 1 + 2 = 7
 */
export function itemSize(item: Readonly<Record<string, AttributeValue>>): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) size += Buffer.byteLength(name, 'utf8') + attributeValueSize(value);
  return size;
}

/**
 * Write units of writing one item of `sizeBytes`: ⌈size / 1 KB⌉, at least 1, doubled in a transaction.
 *
 * @example
 * writeUnits(1025, false) // 2
 * writeUnits(300, true)   // 2
 */
export function writeUnits(sizeBytes: number, transactional: boolean): number {
  return Math.max(1, Math.ceil(sizeBytes / KB)) * (transactional ? 2 : 1);
}

/**
 * Read units of reading `sizeBytes` in one read: ⌈size / 4 KB⌉ (at least 1), half that when
 * eventually consistent.
 *
 * @example
 * readUnits(4097, true)  // 2
 * readUnits(100, false)  // 0.5
 */
export function readUnits(sizeBytes: number, consistent: boolean): number {
  return Math.max(1, Math.ceil(sizeBytes / (4 * KB))) * (consistent ? 1 : 0.5);
}

/**
 * On-demand cost in USD of one million events, given the units each event costs on average.
 *
 * @example
 * costPerMillionEvents(0.03, 0.01) // 0.03 * 0.625 + 0.01 * 0.125 = 0.020
 */
export function costPerMillionEvents(writeUnitsPerEvent: number, readUnitsPerEvent: number, price = ON_DEMAND_PRICE): number {
  return writeUnitsPerEvent * price.writePerMillionUnits + readUnitsPerEvent * price.readPerMillionUnits;
}

/** Kinds of item written, for the size distribution: the engine's view items, its checkpoints, the rest. */
export type ItemKind = 'view item' | 'checkpoint' | 'other';

/** What {@link meterCapacity} measured. */
export interface CapacityCounts {
  /** Write units of the writes whose item size the request carries (Put, in or out of transactions). */
  readonly writeUnits: number;
  readonly readUnits: number;
  /** Sizes of the items put, by kind (bytes), up to a bounded sample each. */
  readonly putSizes: Readonly<Record<ItemKind, readonly number[]>>;
  /** Items put, by kind (all of them, not only the sample). */
  readonly puts: Readonly<Record<ItemKind, number>>;
  /**
   * `UpdateItem`s and deletes, whose billed size is the stored item's, not in the request: per
   * `table\tpk\tsk`, how many. {@link resolveUpdateUnits} prices them from the table afterwards.
   */
  readonly updates: Readonly<Record<string, number>>;
}

/** Sizes kept per kind: enough for percentiles, bounded for a million-key run. */
const SIZE_SAMPLE_LIMIT = 100_000;

function kindOf(item: Readonly<Record<string, AttributeValue>>): ItemKind {
  const raw = item as Readonly<Record<string, unknown>>;
  const pk = typeof raw.pk === 'string' ? raw.pk : item.pk?.S;
  const sk = typeof raw.sk === 'string' ? raw.sk : item.sk?.S;
  if (typeof pk === 'string' && pk === '_tributary' && typeof sk === 'string' && sk.startsWith('checkpoint#')) return 'checkpoint';
  if (typeof pk === 'string' && pk.startsWith('v#')) return 'view item';
  return 'other';
}

/**
 * Adds a middleware to `client` that prices every request by the cost model above, from the
 * marshalled items it writes and the items it gets back. Returns a live snapshot function.
 *
 * @example
 * const capacity = meterCapacity(client);
 * // ... run ...
 * capacity().writeUnits
 */
export function meterCapacity(client: DynamoDBClient): () => CapacityCounts {
  let wu = 0;
  let ru = 0;
  const putSizes: Record<ItemKind, number[]> = { 'view item': [], checkpoint: [], other: [] };
  const puts: Record<ItemKind, number> = { 'view item': 0, checkpoint: 0, other: 0 };
  const updates: Record<string, number> = {};
  const put = (item: Record<string, AttributeValue>, transactional: boolean) => {
    const size = anyItemSize(item);
    const kind = kindOf(item);
    puts[kind]++;
    if (putSizes[kind].length < SIZE_SAMPLE_LIMIT) putSizes[kind].push(size);
    wu += writeUnits(size, transactional);
  };
  const update = (table: string, key: Record<string, AttributeValue>, transactional: boolean) => {
    const id = `${table}\t${String(key.pk?.S)}\t${String(key.sk?.S)}`;
    // A transactional update is counted twice: the resolved size is billed once per count.
    updates[id] = (updates[id] ?? 0) + (transactional ? 2 : 1);
  };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String((context as { commandName?: string }).commandName ?? '');
      const input = args.input as Record<string, any>;
      if (name === 'PutItemCommand') put(input.Item, false);
      else if (name === 'UpdateItemCommand' || name === 'DeleteItemCommand') update(input.TableName, input.Key, false);
      else if (name === 'BatchWriteItemCommand') {
        for (const [table, requests] of Object.entries(input.RequestItems ?? {})) {
          for (const r of requests as { PutRequest?: { Item: Record<string, AttributeValue> }; DeleteRequest?: { Key: Record<string, AttributeValue> } }[]) {
            if (r.PutRequest) put(r.PutRequest.Item, false);
            else if (r.DeleteRequest) update(table, r.DeleteRequest.Key, false);
          }
        }
      } else if (name === 'TransactWriteItemsCommand') {
        for (const t of input.TransactItems ?? []) {
          if (t.Put) put(t.Put.Item, true);
          else if (t.Update) update(t.Update.TableName, t.Update.Key, true);
          else if (t.Delete) update(t.Delete.TableName, t.Delete.Key, true);
        }
      }
      const result = await next(args);
      const output = result.output as Record<string, any>;
      if (name === 'GetItemCommand') ru += readUnits(output.Item ? anyItemSize(output.Item) : 0, input.ConsistentRead === true);
      else if (name === 'QueryCommand' || name === 'ScanCommand') {
        const size = (output.Items ?? []).reduce((sum: number, item: Record<string, AttributeValue>) => sum + anyItemSize(item), 0);
        ru += readUnits(size, input.ConsistentRead === true);
      } else if (name === 'BatchGetItemCommand') {
        // Each key is read as its own GetItem: found items by size, keys not found at the minimum.
        for (const [table, request] of Object.entries(input.RequestItems ?? {}) as [string, { Keys?: unknown[]; ConsistentRead?: boolean }][]) {
          const consistent = request.ConsistentRead === true;
          const items = (output.Responses?.[table] ?? []) as Record<string, AttributeValue>[];
          for (const item of items) ru += readUnits(anyItemSize(item), consistent);
          const unprocessed = output.UnprocessedKeys?.[table]?.Keys?.length ?? 0;
          ru += Math.max(0, (request.Keys?.length ?? 0) - items.length - unprocessed) * readUnits(0, consistent);
        }
      } else if (name === 'TransactGetItemsCommand') {
        for (const r of output.Responses ?? []) ru += 2 * readUnits(r.Item ? anyItemSize(r.Item) : 0, true);
      }
      return result;
    },
    // At 'build' the input is in the wire format (a document client marshals it just before the
    // serializer); the output a document client unmarshals inside: its items are sized either way.
    { step: 'build', name: 'benchCapacityMeter', priority: 'high' },
  );
  return () => ({
    writeUnits: wu,
    readUnits: ru,
    putSizes: { 'view item': [...putSizes['view item']], checkpoint: [...putSizes.checkpoint], other: [...putSizes.other] },
    puts: { ...puts },
    updates: { ...updates },
  });
}

/**
 * Write units of the updates and deletes in `updates` (see {@link CapacityCounts.updates}),
 * priced at the size of each item as it is stored now (`sizeOf`; an item gone counts 1 unit):
 * for items that only grow, as the bench's counters do, the billed size of every update.
 */
export function resolveUpdateUnits(updates: Readonly<Record<string, number>>, sizeOf: (id: string) => number | undefined): number {
  let units = 0;
  for (const [id, count] of Object.entries(updates)) units += count * writeUnits(sizeOf(id) ?? 0, false);
  return units;
}

/** Distribution of one kind of item's sizes: count and percentiles in bytes. */
export interface SizeDistribution {
  readonly kind: ItemKind;
  readonly writes: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Write units of the median item outside a transaction. */
  readonly unitsAtP50: number;
}

/** The size distribution of what `counts` saw put, one row per kind that was written. */
export function sizeDistributions(counts: CapacityCounts): SizeDistribution[] {
  const rows: SizeDistribution[] = [];
  for (const kind of ['view item', 'checkpoint', 'other'] as const) {
    const sizes = counts.putSizes[kind];
    if (sizes.length === 0) continue;
    const p50 = percentile(sizes, 50)!;
    rows.push({ kind, writes: counts.puts[kind], p50, p99: percentile(sizes, 99)!, max: sizes.reduce((a, b) => Math.max(a, b), 0), unitsAtP50: writeUnits(p50, false) });
  }
  return rows;
}

/**
 * Write units of `updates` priced at the sizes the items have in the table now (one consistent
 * `BatchGetItem` per 100 items, sent on `ddb`, which should not be a metered client).
 */
export async function priceUpdates(ddb: DynamoDBClient, updates: Readonly<Record<string, number>>): Promise<number> {
  const sizes = new Map<string, number>();
  const byTable = new Map<string, { pk: string; sk: string }[]>();
  for (const id of Object.keys(updates)) {
    const [table, pk, sk] = id.split('\t') as [string, string, string];
    let list = byTable.get(table);
    if (!list) byTable.set(table, (list = []));
    list.push({ pk, sk });
  }
  for (const [table, keys] of byTable) {
    for (let i = 0; i < keys.length; i += 100) {
      let request: Record<string, AttributeValue>[] | undefined = keys.slice(i, i + 100).map((k) => ({ pk: { S: k.pk }, sk: { S: k.sk } }));
      while (request && request.length > 0) {
        const out: BatchGetItemCommandOutput = await ddb.send(new BatchGetItemCommand({ RequestItems: { [table]: { Keys: request as never, ConsistentRead: true } } }));
        for (const item of out.Responses?.[table] ?? []) sizes.set(`${table}\t${String(item.pk?.S)}\t${String(item.sk?.S)}`, itemSize(item as unknown as Record<string, AttributeValue>));
        request = out.UnprocessedKeys?.[table]?.Keys as Record<string, AttributeValue>[] | undefined;
      }
    }
  }
  return resolveUpdateUnits(updates, (id) => sizes.get(id));
}

/** A contender's cost per event by the model, and per million events on demand. */
export interface ContenderCost {
  readonly writeUnitsPerEvent: number;
  readonly readUnitsPerEvent: number;
  readonly usdPerMillionEvents: number;
}

/** Cost per event of `events` events from what was metered (`updateUnits`: {@link priceUpdates} of its updates). */
export function contenderCost(capacity: CapacityCounts, updateUnits: number, events: number): ContenderCost {
  const writeUnitsPerEvent = (capacity.writeUnits + updateUnits) / events;
  const readUnitsPerEvent = capacity.readUnits / events;
  return { writeUnitsPerEvent, readUnitsPerEvent, usdPerMillionEvents: costPerMillionEvents(writeUnitsPerEvent, readUnitsPerEvent) };
}

/** The note printed under cost figures: the price used, its date and region. */
export function priceNote(): string {
  return (
    `cost model: a write of N KB = ceil(N) write units (x2 in a transaction), a read = ceil(N/4 KB) units strongly consistent, half eventually; ` +
    `priced at AWS's on-demand list price, ${ON_DEMAND_PRICE.region}, Standard table class: $${ON_DEMAND_PRICE.writePerMillionUnits} per million write units, ` +
    `$${ON_DEMAND_PRICE.readPerMillionUnits} per million read units (in effect since ${ON_DEMAND_PRICE.effective}); storage and Kafka not included`
  );
}
