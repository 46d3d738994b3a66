/**
 * The "batched naive" contender: what a careful engineer writes without Tributary, as a
 * Lambda function on a Kafka event source. Each delivered batch is grouped by key and folded
 * into one `UpdateItem ADD` per key, so writes per event coalesce like the engine's; but the
 * offsets are committed after the writes, not with them: a batch delivered again (Lambda
 * retries a batch whose invocation timed out) is added again. At-least-once.
 *
 * Also the independent reference both contenders are checked against: the same fold over the
 * events as they were produced, with no Kafka and no DynamoDB involved.
 */
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { BookingEvent } from '../../functions/events.ts';
import { NAIVE_PK } from './class-counts.ts';

/** What a group of events adds to one key: counters, and the last event's time. */
export interface KeyDelta {
  booked: number;
  cancelled: number;
  net: number;
  /** Time of the last event of the group in delivery order, epoch ms. */
  lastEventAtMs: number;
}

/**
 * Folds `events` (in delivery order) into one delta per class: the bench view's reducer over a
 * batch. Used by the batched handler per batch and, over all produced events, as the reference.
 *
 * @example
 * groupByClass([booked('a'), booked('a'), cancelled('b')]).get('a') // { booked: 2, cancelled: 0, net: 2, ... }
 */
export function groupByClass(events: Iterable<BookingEvent>): Map<string, KeyDelta> {
  const out = new Map<string, KeyDelta>();
  for (const e of events) {
    let d = out.get(e.classId);
    if (!d) out.set(e.classId, (d = { booked: 0, cancelled: 0, net: 0, lastEventAtMs: 0 }));
    const booked = e.type === 'booked';
    d.booked += booked ? 1 : 0;
    d.cancelled += booked ? 0 : 1;
    d.net += booked ? 1 : -1;
    d.lastEventAtMs = Date.parse(e.at);
  }
  return out;
}

/** The one `UpdateItem` of a key per batch: ADD the batch's counters, SET the last event time. */
export function batchedUpdate(tableName: string, classId: string, delta: KeyDelta): UpdateItemCommand {
  return new UpdateItemCommand({
    TableName: tableName,
    Key: { pk: { S: NAIVE_PK }, sk: { S: `key#${classId}` } },
    UpdateExpression: 'ADD booked :b, cancelled :c, net :n SET lastEventAtMs = :at',
    ExpressionAttributeValues: {
      ':b': { N: String(delta.booked) },
      ':c': { N: String(delta.cancelled) },
      ':n': { N: String(delta.net) },
      ':at': { N: String(delta.lastEventAtMs) },
    },
  });
}

/** How a contender's stored counts compare with the reference. */
export interface ReferenceCheck {
  /** Keys whose booked, cancelled or net differ from the reference. */
  readonly keysWrong: number;
  /** Events counted (booked + cancelled) minus events produced: >0 double-counted, <0 lost. */
  readonly extraEvents: number;
}

/**
 * Compares stored counts (per class; a missing class counts as zero) with the reference.
 *
 * @example
 * checkAgainstReference(reference, stored) // { keysWrong: 0, extraEvents: 0 } when exact
 */
export function checkAgainstReference(
  reference: ReadonlyMap<string, KeyDelta>,
  stored: ReadonlyMap<string, { booked: number; cancelled: number; net: number }>,
): ReferenceCheck {
  let keysWrong = 0;
  let extraEvents = 0;
  const keys = new Set([...reference.keys(), ...stored.keys()]);
  for (const key of keys) {
    const r = reference.get(key) ?? { booked: 0, cancelled: 0, net: 0 };
    const s = stored.get(key) ?? { booked: 0, cancelled: 0, net: 0 };
    if (r.booked !== s.booked || r.cancelled !== s.cancelled || r.net !== s.net) keysWrong++;
    extraEvents += s.booked + s.cancelled - (r.booked + r.cancelled);
  }
  return { keysWrong, extraEvents };
}
