import { describe, expect, it } from 'vitest';
import { encodeDeadLetter } from '../../engine/internal/dead-letter.ts';
import type { TriggerDeadLetter } from '../../engine/internal/triggers/dispatcher.ts';
import { toDeadLetterEntry } from '../../engine/internal/triggers/sink.ts';

const letter = (type: string, message: string, keys = ['classAttendance#yoga-3##7']): TriggerDeadLetter => ({
  trigger: 'classNearlyFull',
  view: 'classAttendance',
  function: 'notifyInstructor',
  functionName: 'gym-notifyInstructor',
  change: {
    view: 'classAttendance',
    key: 'yoga-3',
    before: { booked: 17 },
    after: { booked: 18 },
    version: 7,
    offsets: { 'bookings/0': '41' },
    idempotencyKey: 'classAttendance#yoga-3##7',
  },
  idempotencyKeys: keys,
  attempts: 5,
  error: { type, message },
});

describe('toDeadLetterEntry', () => {
  it('turns an undeliverable change into a TRIGGER_DELIVERY_FAILED dead letter naming function, attempts and error', () => {
    const entry = toDeadLetterEntry(letter('TypeError', 'x is undefined', ['classAttendance#yoga-3##6', 'classAttendance#yoga-3##7']));
    expect(entry).toMatchObject({
      kind: 'trigger',
      code: 'TRIGGER_DELIVERY_FAILED',
      trigger: 'classNearlyFull',
      view: 'classAttendance',
      key: 'yoga-3',
      function: 'notifyInstructor',
      attempts: 5,
      error: { type: 'TypeError', message: 'x is undefined' },
    });
    expect(entry.reason).toBe(
      'trigger "classNearlyFull": function gym-notifyInstructor failed 5 attempt(s) for key "yoga-3" version 7 (coalesced from 2 changes): TypeError: x is undefined; fix the function, then replay this change from the dead-letter topic',
    );
    const message = encodeDeadLetter('gym', entry, new Date('2026-01-05T00:00:00Z'));
    expect(message.headers['tributary-code']).toBe('TRIGGER_DELIVERY_FAILED');
    expect(JSON.parse(message.value).change.idempotencyKey).toBe('classAttendance#yoga-3##7');
  });

  it('marks a change whose when() threw as TRIGGER_WHEN_FAILED', () => {
    const entry = toDeadLetterEntry({ ...letter('WhenThrew', 'trigger "classNearlyFull": when() threw TypeError: boom'), attempts: 0 });
    expect(entry.code).toBe('TRIGGER_WHEN_FAILED');
    expect(entry.reason).toMatch(/when\(\) threw TypeError: boom; make when\(\) return a boolean/);
  });
});
