/**
 * A deterministic generator of realistic booking streams for the gym app, used by
 * `npm run dev` (to have something to look at) and `npm run bench` (the same events for the
 * engine and the naive baseline). Same options and seed, same events.
 */
import { MAX_CAPACITY, type BookingEvent } from './events.ts';

/** How the generator picks the class of a booking. */
export type ClassPick =
  /** Popular classes get most bookings (quadratic skew): classes fill up and waitlists form. */
  | 'skewed'
  /** Every class is equally likely. */
  | 'uniform'
  /** Event i books class i: every event has a distinct key (memory benchmarks). */
  | 'sequential';

/** Options of {@link createBookingGenerator}. */
export interface BookingGeneratorOptions {
  /** @default 1 */
  readonly seed?: number;
  /**
   * Distinct classes (view keys of `classAttendance`).
   * @default 200 — a week of classes in a mid-size gym
   */
  readonly classes?: number;
  /**
   * Distinct members (view keys of `memberBookings`).
   * @default 2_000
   */
  readonly members?: number;
  /**
   * Share of events that cancel an earlier booking (when one is active).
   * @default 0.15 — roughly what booking systems see
   */
  readonly cancelRate?: number;
  /** @default 'skewed' */
  readonly pick?: ClassPick;
  /**
   * Simulated time of the first event (ISO-8601); fixed so runs are reproducible.
   * @default '2026-01-05T06:00:00.000Z'
   */
  readonly startAt?: string;
  /**
   * Simulated time between two events.
   * @default 1_000
   */
  readonly eventSpacingMs?: number;
  /**
   * Prefix of class ids; tests pass a unique one.
   * @default 'class-'
   */
  readonly classPrefix?: string;
  /**
   * Prefix of member ids.
   * @default 'member-'
   */
  readonly memberPrefix?: string;
}

const DEFAULTS = {
  seed: 1,
  classes: 200,
  members: 2_000,
  cancelRate: 0.15,
  pick: 'skewed' as ClassPick,
  startAt: '2026-01-05T06:00:00.000Z',
  eventSpacingMs: 1_000,
  classPrefix: 'class-',
  memberPrefix: 'member-',
};

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Classes are spread over two weeks, starting a day after the first event. */
const SCHEDULE_SPAN_MS = 14 * DAY_MS;

/** mulberry32: tiny, fast, good enough for test data, and reproducible from a 32-bit seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** A stream of booking events; see {@link createBookingGenerator}. */
export interface BookingGenerator {
  /** The next event. */
  next(): BookingEvent;
  /** The next `n` events. */
  take(n: number): BookingEvent[];
}

/**
 * Creates a seeded generator of booking and cancellation events. Cancellations always name a
 * booking generated earlier and still active, so the stream is realistic end to end.
 *
 * @example
 * const gen = createBookingGenerator({ seed: 7, classes: 50 });
 * const events = gen.take(1_000);
 * await producer.send({ topic: BOOKINGS_TOPIC, messages: events.map(toMessage) });
 */
export function createBookingGenerator(options: BookingGeneratorOptions = {}): BookingGenerator {
  // Fields set to undefined keep their default, as documented.
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const o = { ...DEFAULTS, ...given } as typeof DEFAULTS;
  for (const field of ['classes', 'members'] as const) {
    if (!Number.isInteger(o[field]) || o[field] < 1) {
      throw new RangeError(`createBookingGenerator: ${field} must be a positive integer, received ${o[field]}`);
    }
  }
  if (!(o.cancelRate >= 0 && o.cancelRate < 1)) {
    throw new RangeError(`createBookingGenerator: cancelRate must be in [0, 1), received ${o.cancelRate}`);
  }
  const startMs = Date.parse(o.startAt);
  if (!Number.isFinite(startMs)) {
    throw new RangeError(`createBookingGenerator: startAt must be an ISO-8601 time, received ${o.startAt}`);
  }
  const random = mulberry32(o.seed);
  const classWidth = String(o.classes - 1).length;
  const memberWidth = String(o.members - 1).length;
  // Active bookings, for cancellations; swap-remove keeps picking O(1).
  const active: { bookingId: string; classIndex: number; memberIndex: number }[] = [];
  let sequence = 0;

  const classOf = (index: number) => {
    // Small studio classes (8) to big spin rooms (30); recomputed, not stored, so a million
    // classes cost no memory. Deterministic per class and seed.
    const capacity = Math.min(MAX_CAPACITY, 8 + Math.floor(mulberry32(o.seed ^ Math.imul(index, 2_654_435_761))() * 23));
    // Classes on the hour between 06:00 and 21:00, spread over the schedule.
    const slot = Math.floor((index / o.classes) * SCHEDULE_SPAN_MS);
    const day = Math.floor(slot / DAY_MS);
    const hour = 6 + (index % 16);
    const startsAt = new Date(startMs + DAY_MS + day * DAY_MS + hour * HOUR_MS - 6 * HOUR_MS).toISOString();
    return { classId: `${o.classPrefix}${pad(index, classWidth)}`, capacity, startsAt };
  };

  const pickClass = (): number => {
    if (o.pick === 'sequential') return sequence % o.classes;
    const r = random();
    return Math.min(o.classes - 1, Math.floor((o.pick === 'skewed' ? r * r : r) * o.classes));
  };

  const next = (): BookingEvent => {
    const at = new Date(startMs + sequence * o.eventSpacingMs).toISOString();
    let event: BookingEvent;
    if (o.cancelRate > 0 && active.length > 0 && random() < o.cancelRate) {
      const index = Math.floor(random() * active.length);
      const booking = active[index]!;
      active[index] = active[active.length - 1]!;
      active.pop();
      const c = classOf(booking.classIndex);
      event = {
        type: 'cancelled',
        bookingId: booking.bookingId,
        classId: c.classId,
        memberId: `${o.memberPrefix}${pad(booking.memberIndex, memberWidth)}`,
        classStartsAt: c.startsAt,
        capacity: c.capacity,
        at,
      };
    } else {
      const classIndex = pickClass();
      const memberIndex = Math.floor(random() * o.members);
      const c = classOf(classIndex);
      const bookingId = `b-${o.seed}-${sequence}`;
      if (o.cancelRate > 0) active.push({ bookingId, classIndex, memberIndex });
      event = {
        type: 'booked',
        bookingId,
        classId: c.classId,
        memberId: `${o.memberPrefix}${pad(memberIndex, memberWidth)}`,
        classStartsAt: c.startsAt,
        capacity: c.capacity,
        at,
      };
    }
    sequence++;
    return event;
  };

  return {
    next,
    take(n: number) {
      const events: BookingEvent[] = [];
      for (let i = 0; i < n; i++) events.push(next());
      return events;
    },
  };
}
