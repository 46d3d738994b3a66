/**
 * The view both contenders compute: per class, bookings, cancellations, net spots and the
 * latest event time. Simple enough that the naive pattern can fold it with one `UpdateItem`
 * (ADD/SET) per event, so the comparison is about the write pattern, not about the view.
 */
import { UpdateItemCommand, type UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import type { BookingEvent } from '../../functions/events.ts';
import { decodeBookingEvent } from '../../functions/events.ts';
import { count, defineApp, defineTrigger, defineView, type TriggerChanges } from '../../sdk/index.ts';

/** State of {@link classCounts}. */
export interface ClassCounts {
  readonly booked: number;
  readonly cancelled: number;
  readonly net: number;
  /**
   * Time of the last event applied, epoch ms. Last in partition order, not the maximum: the
   * naive `SET` can only express "last write wins", and this way the agreement check also
   * proves both contenders applied each key's events in the same order.
   */
  readonly lastEventAtMs: number;
}

/**
 * Builds the bench view over `topic`.
 *
 * @example
 * const view = classCountsView('bench-bookings');
 */
export function classCountsView(topic: string) {
  return defineView({
    name: 'classCounts',
    source: topic,
    decode: decodeBookingEvent,
    key: (e: BookingEvent) => e.classId,
    initial: (): ClassCounts => ({ booked: 0, cancelled: 0, net: 0, lastEventAtMs: 0 }),
    reduce: (s, e) => ({
      booked: count(s.booked, e.type === 'booked' ? 1 : 0),
      cancelled: count(s.cancelled, e.type === 'cancelled' ? 1 : 0),
      net: count(s.net, e.type === 'booked' ? 1 : -1),
      lastEventAtMs: Date.parse(e.at),
    }),
  });
}

/**
 * The bench app: the one view and, when `triggerFunction` is given, one trigger delivering
 * every change of the view to that function (`changes`: the SDK's default when undefined).
 */
export function classCountsApp(name: string, topic: string, triggerFunction?: string, changes?: TriggerChanges) {
  const view = classCountsView(topic);
  const triggers = triggerFunction
    ? [defineTrigger({ view, function: triggerFunction, name: 'benchChanges', ...(changes !== undefined ? { changes } : {}) })]
    : [];
  return defineApp({ name, views: [view], triggers, deadLetterTopic: `${topic}.dead-letter` });
}

/** Partition key of the naive contender's items (its own table, same key schema). */
export const NAIVE_PK = 'naive#classCounts';

/**
 * The naive fold of one event: the single `UpdateItem` a Kafka-triggered Lambda would send.
 *
 * @example
 * await ddb.send(naiveUpdate(table, event));
 */
export function naiveUpdate(tableName: string, event: BookingEvent, returnNewState = false): UpdateItemCommand {
  const booked = event.type === 'booked' ? 1 : 0;
  const input: UpdateItemCommandInput = {
    TableName: tableName,
    Key: { pk: { S: NAIVE_PK }, sk: { S: `key#${event.classId}` } },
    UpdateExpression: 'ADD booked :b, cancelled :c, net :n SET lastEventAtMs = :at',
    ExpressionAttributeValues: {
      ':b': { N: String(booked) },
      ':c': { N: String(1 - booked) },
      ':n': { N: booked ? '1' : '-1' },
      ':at': { N: String(Date.parse(event.at)) },
    },
    // The naive trigger pattern hands the new state to the function it invokes next.
    ...(returnNewState ? { ReturnValues: 'ALL_NEW' as const } : {}),
  };
  return new UpdateItemCommand(input);
}
