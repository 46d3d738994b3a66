/**
 * Events of the gym-booking example app, as produced to Kafka.
 *
 * Topic {@link BOOKINGS_TOPIC}, Kafka key = `classId`, value = UTF-8 JSON of a {@link BookingEvent}.
 */
import { SdkError } from 'tributary/sdk';

/** The topic that carries booking events. */
export const BOOKINGS_TOPIC = 'bookings';

/**
 * Largest class capacity accepted. Attendees are listed inside one DynamoDB item; 500 entries of
 * ~80 bytes stay well under the view's 100 KB state cap.
 */
export const MAX_CAPACITY = 500;

/** A member booked a spot in a class, or cancelled a booking. */
export interface BookingEvent {
  readonly type: 'booked' | 'cancelled';
  /** Unique per booking; a cancellation names the booking it cancels. */
  readonly bookingId: string;
  readonly classId: string;
  readonly memberId: string;
  /** When the class starts, ISO-8601. */
  readonly classStartsAt: string;
  /** Spots in the class. */
  readonly capacity: number;
  /** When the booking or cancellation happened, ISO-8601. */
  readonly at: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function fail(message: string, value: unknown): never {
  throw new SdkError('INVALID_ARGUMENT', message, { context: { value } });
}

function requireId(event: Record<string, unknown>, field: string): void {
  const value = event[field];
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    fail(`booking event: ${field} must be a non-empty string up to 200 chars, received ${JSON.stringify(value)}`, value);
  }
}

function requireIso(event: Record<string, unknown>, field: string): void {
  const value = event[field];
  if (typeof value !== 'string' || !Number.isFinite(Date.parse(value))) {
    fail(`booking event: ${field} must be an ISO-8601 timestamp, received ${JSON.stringify(value)}`, value);
  }
}

/**
 * Checks that an unknown value is a well-formed {@link BookingEvent}; throws an `SdkError`
 * (`INVALID_ARGUMENT`) naming the bad field otherwise.
 *
 * @example
 * const event = parseBookingEvent(JSON.parse(text));
 */
export function parseBookingEvent(value: unknown): BookingEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`booking event must be a JSON object, received ${JSON.stringify(value)}`, value);
  }
  const event = value as Record<string, unknown>;
  if (event.type !== 'booked' && event.type !== 'cancelled') {
    fail(`booking event: type must be "booked" or "cancelled", received ${JSON.stringify(event.type)}`, event.type);
  }
  requireId(event, 'bookingId');
  requireId(event, 'classId');
  requireId(event, 'memberId');
  requireIso(event, 'classStartsAt');
  requireIso(event, 'at');
  if (!Number.isInteger(event.capacity) || (event.capacity as number) < 1 || (event.capacity as number) > MAX_CAPACITY) {
    fail(`booking event: capacity must be an integer from 1 to ${MAX_CAPACITY}, received ${JSON.stringify(event.capacity)}`, event.capacity);
  }
  return event as unknown as BookingEvent;
}

/**
 * Decoder for the views: UTF-8 JSON checked by {@link parseBookingEvent}, so a malformed record
 * goes to the dead-letter topic instead of corrupting a view.
 *
 * @example
 * defineView({ name: 'classAttendance', source: BOOKINGS_TOPIC, decode: decodeBookingEvent, ... })
 */
export function decodeBookingEvent(value: Buffer): BookingEvent {
  return parseBookingEvent(JSON.parse(utf8.decode(value)));
}

/**
 * Encodes an event as a Kafka message (key = classId), ready for a producer's `send`.
 *
 * @example
 * await producer.send({ topic: BOOKINGS_TOPIC, messages: events.map(toMessage) });
 */
export function toMessage(event: BookingEvent): { key: string; value: string } {
  return { key: event.classId, value: JSON.stringify(event) };
}
