/**
 * Windowed reads on DynamoDB Local: window, windows (time order, pagination), latestWindow,
 * windowsAt (every key of one window through the key index), and retention (an item past its
 * ttl is reported expired, never returned, although DynamoDB has not deleted it). Items are
 * written directly in the v2 layout, as the engine writes them; the expected results are
 * computed from the generation rule, not read back.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { PutItemCommand } from 'dynamodb-toolbox/entity/actions/put';
import { beforeAll, describe, expect, it } from 'vitest';
import { createViewReader, defineView, SdkError, type View, type ViewReader, type WindowsPage } from '../../sdk/index.ts';
import { createStorage, MAX_VIEW_KEY_BYTES, offsetsKey, viewIndexKey, viewItemKey, type Storage } from '../../sdk/contract/index.ts';
import { createTable, dynamoClient, uniqueName, waitFor } from './helpers.ts';

const HOUR = 3_600_000;
const RETENTION_MS = 48 * HOUR;

interface Visits {
  visits: number;
}

/** What reads need of a window; the rest as defineView's defaults. */
type ReadWindow = { kind: 'tumbling'; sizeMs: number; graceMs: number; retentionMs: number } | { kind: 'session'; gapMs: number; graceMs: number; retentionMs: number };

function windowed(name: string, shape: ReadWindow): View<{ id: string }, Visits> {
  const window = { ...shape, emit: 'changes', onLate: 'dead-letter', idleCloseMs: undefined, timestamp: undefined } as NonNullable<View['window']>;
  const view = defineView({
    name,
    source: 'windowed-reads-events',
    key: (e: { id: string }) => e.id,
    initial: (): Visits => ({ visits: 0 }),
    reduce: (s) => ({ visits: s.visits + 1 }),
  });
  return { ...view, window };
}

const hourly = windowed('hourly', { kind: 'tumbling', sizeMs: HOUR, graceMs: 0, retentionMs: RETENTION_MS });
const sessions = windowed('sessions', { kind: 'session', gapMs: 10 * 60_000, graceMs: 0, retentionMs: RETENTION_MS });

let storage: Storage;
let reader: ViewReader;
/** The current hour, aligned: windows start at or before it. */
const base = Math.floor(Date.now() / HOUR) * HOUR;
/** Hours back of each key's windows: 24 hours, a key has a window where the rule says so. */
const HOURS = 24;
const KEYS = Array.from({ length: 30 }, (_, i) => `member-${String(i).padStart(2, '0')}`);
const hasWindow = (key: number, hoursBack: number) => (hoursBack * 7 + key) % 3 !== 0;
const visitsOf = (key: number, hoursBack: number) => key * 100 + hoursBack;
/** The reference: key -> window starts, ascending. */
const reference = new Map<string, number[]>(
  KEYS.map((key, i) => [
    key,
    Array.from({ length: HOURS }, (_, h) => HOURS - 1 - h)
      .filter((h) => hasWindow(i, h))
      .map((h) => base - h * HOUR),
  ]),
);

async function putWindow(
  view: View<any, any>,
  key: string,
  bounds: { start: number; end: number },
  state: Visits,
  ttl = Math.ceil((bounds.end + RETENTION_MS) / 1000),
): Promise<void> {
  await storage.viewItems
    .build(PutItemCommand)
    .item({
      ...viewItemKey(view.name, key, bounds),
      ...viewIndexKey(view.name, key, bounds),
      view: view.name,
      key,
      state,
      version: 1,
      offsets: { [offsetsKey('windowed-reads-events', 0)]: '0' },
      updatedAt: new Date().toISOString(),
      windowStart: bounds.start,
      windowEnd: bounds.end,
      ttl,
    })
    .send();
}

const hour = (start: number) => ({ start, end: start + HOUR });
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

function expectExpired(error: unknown, context: Record<string, unknown>): void {
  expect(error).toBeInstanceOf(SdkError);
  expect((error as SdkError).code).toBe('WINDOW_EXPIRED');
  expect((error as SdkError).context).toMatchObject({ retentionMs: RETENTION_MS, ...context });
  expect((error as Error).message).toMatch(/retentionMs/);
}

beforeAll(async () => {
  const tableName = await createTable(uniqueName('windowed-reads'));
  storage = createStorage({ dynamodb: dynamoClient(), tableName });
  reader = createViewReader({ dynamodb: dynamoClient(), tableName });
  const writes: (() => Promise<void>)[] = [];
  KEYS.forEach((key, i) => {
    for (let h = 0; h < HOURS; h++) {
      if (hasWindow(i, h)) writes.push(() => putWindow(hourly, key, hour(base - h * HOUR), { visits: visitsOf(i, h) }));
    }
  });
  for (let i = 0; i < writes.length; i += 64) await Promise.all(writes.slice(i, i + 64).map((write) => write()));
  // The index behind windowsAt is eventually consistent: wait until the newest window lists every key it has.
  const newest = KEYS.filter((_, i) => hasWindow(i, 0)).length;
  await waitFor(async () => (await reader.windowsAt(hourly, base, { limit: 1_000 })).items.length === newest, {
    timeoutMs: 10_000,
    message: `the key index lists the ${newest} keys of window ${base}`,
  });
});

describe('window', () => {
  it('reads one window of a key with its bounds, and undefined for a window no event reached', async () => {
    const i = KEYS.findIndex((_, k) => hasWindow(k, 3));
    const got = await reader.window(hourly, KEYS[i]!, base - 3 * HOUR, { consistent: true });
    expect(got).toMatchObject({ key: KEYS[i], state: { visits: visitsOf(i, 3) }, version: 1, window: { start: base - 3 * HOUR, end: base - 2 * HOUR } });
    const j = KEYS.findIndex((_, k) => !hasWindow(k, 3));
    expect(await reader.window(hourly, KEYS[j]!, base - 3 * HOUR)).toBeUndefined();
    expect(await reader.window(hourly, 'nobody', base)).toBeUndefined();
  });
});

describe('the longest key', () => {
  it('stores and reads a windowed item of a key of MAX_VIEW_KEY_BYTES (its index sort key near the 1,024-byte limit)', async () => {
    const longest = 'é'.repeat(MAX_VIEW_KEY_BYTES / 2);
    const start = base - 7 * HOUR;
    await putWindow(hourly, longest, hour(start), { visits: 5 });
    expect((await reader.window(hourly, longest, start, { consistent: true }))?.state).toEqual({ visits: 5 });
    await waitFor(async () => (await reader.windowsAt(hourly, start, { prefix: 'é' })).items.length === 1, {
      timeoutMs: 10_000,
      message: 'the key index lists the longest key',
    });
  });
});

describe('windows', () => {
  it("lists a key's windows in time order through cursors, both directions", async () => {
    for (const [key, starts] of [...reference].slice(0, 6)) {
      const pages: number[][] = [];
      let cursor: string | undefined;
      do {
        const page = await reader.windows(hourly, key, { limit: 5, cursor });
        pages.push(page.items.map((w) => w.window.start));
        expect(page.items.every((w) => w.key === key && w.window.end === w.window.start + HOUR)).toBe(true);
        cursor = page.cursor;
      } while (cursor !== undefined);
      expect(pages.flat(), key).toEqual(starts);
      expect(pages.slice(0, -1).every((p) => p.length === 5)).toBe(true);
      const desc: number[] = [];
      cursor = undefined;
      do {
        const page: WindowsPage<Visits> = await reader.windows(hourly, key, { limit: 4, cursor, order: 'desc', consistent: true });
        desc.push(...page.items.map((w) => w.window.start));
        cursor = page.cursor;
      } while (cursor !== undefined);
      expect(desc, key).toEqual([...starts].reverse());
    }
  });

  it('selects window starts in [from, to) and states match', async () => {
    const i = 7;
    const key = KEYS[i]!;
    const from = base - 17 * HOUR;
    const to = base - 4 * HOUR;
    const expected = reference.get(key)!.filter((s) => s >= from && s < to);
    expect(expected.length).toBeGreaterThan(3);
    const page = await reader.windows(hourly, key, { from, to, limit: 100 });
    expect(page.items.map((w) => [w.window.start, w.state.visits])).toEqual(expected.map((s) => [s, visitsOf(i, (base - s) / HOUR)]));
    expect(page.cursor).toBeUndefined();
    // An empty range and a range of one window.
    expect((await reader.windows(hourly, key, { from, to: from })).items).toEqual([]);
    expect((await reader.windows(hourly, key, { from: expected[0]!, to: expected[0]! + 1 })).items.map((w) => w.window.start)).toEqual([expected[0]]);
  });

  it('reports where retained data starts when the range reaches past retention, and only then', async () => {
    const before = Date.now();
    const all = await reader.windows(hourly, KEYS[1]!);
    expect(all.retention?.retentionMs).toBe(RETENTION_MS);
    expect(all.retention!.expiredBefore).toBeGreaterThanOrEqual(before - RETENTION_MS);
    expect(all.retention!.expiredBefore).toBeLessThanOrEqual(Date.now() - RETENTION_MS);
    const recent = await reader.windows(hourly, KEYS[1]!, { from: base - 5 * HOUR });
    expect(recent.retention).toBeUndefined();
    expect(recent.items.map((w) => w.window.start)).toEqual(reference.get(KEYS[1]!)!.filter((s) => s >= base - 5 * HOUR));
  });

  it('rejects a cursor of another key or range', async () => {
    const page = await reader.windows(hourly, KEYS[2]!, { limit: 2 });
    expect(page.cursor).toBeDefined();
    for (const read of [reader.windows(hourly, KEYS[3]!, { limit: 2, cursor: page.cursor }), reader.windows(hourly, KEYS[2]!, { from: 5, cursor: page.cursor })]) {
      const error = await read.catch((e: unknown) => e);
      expect((error as SdkError).code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('latestWindow', () => {
  it("returns each key's newest window", async () => {
    for (const [key, starts] of reference) {
      const latest = await reader.latestWindow(hourly, key);
      expect(latest?.window.start, key).toBe(starts[starts.length - 1]);
    }
    expect(await reader.latestWindow(hourly, 'nobody')).toBeUndefined();
  });
});

describe('windowsAt', () => {
  it('lists every key of one window in key order through cursors, with a prefix, both directions', async () => {
    for (const h of [0, 1, 5]) {
      const start = base - h * HOUR;
      const expected = KEYS.filter((_, i) => hasWindow(i, h)).sort(byBytes);
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await reader.windowsAt(hourly, start, { limit: 7, cursor });
        seen.push(...page.items.map((w) => w.key));
        expect(page.items.every((w) => w.window.start === start && w.window.end === start + HOUR)).toBe(true);
        cursor = page.cursor;
      } while (cursor !== undefined);
      expect(seen, `window -${h}h`).toEqual(expected);
      const desc = await reader.windowsAt(hourly, start, { limit: 1_000, order: 'desc', consistent: true });
      expect(desc.items.map((w) => w.key)).toEqual([...expected].reverse());
      expect(desc.items.map((w) => w.state.visits)).toEqual([...expected].reverse().map((k) => visitsOf(KEYS.indexOf(k), h)));
      const prefixed = await reader.windowsAt(hourly, start, { prefix: 'member-1' });
      expect(prefixed.items.map((w) => w.key)).toEqual(expected.filter((k) => k.startsWith('member-1')));
    }
    // A window no key reached.
    expect((await reader.windowsAt(hourly, base + HOUR)).items).toEqual([]);
  });
});

describe('retention', () => {
  it('reports a window past retention as expired, never as missing or live, although its item is still stored', async () => {
    const old = hour(base - RETENTION_MS - 5 * HOUR);
    // As the engine writes it: ttl = end + retention, already past; DynamoDB deletes it lazily.
    await putWindow(hourly, 'lapsed', old, { visits: 9 });
    const stored = await storage.documentClient.send(new GetCommand({ TableName: storage.tableName, Key: viewItemKey('hourly', 'lapsed', old), ConsistentRead: true }));
    expect(stored.Item?.state).toEqual({ visits: 9 });
    expectExpired(await reader.window(hourly, 'lapsed', old.start).catch((e: unknown) => e), { key: 'lapsed', windowStart: old.start });
    // Also a window with no item left at all.
    expectExpired(await reader.window(hourly, 'never', old.start).catch((e: unknown) => e), { key: 'never', windowStart: old.start });
    expectExpired(await reader.windowsAt(hourly, old.start).catch((e: unknown) => e), { windowStart: old.start });
    const page = await reader.windows(hourly, 'lapsed');
    expect(page.items).toEqual([]);
    expect(page.retention?.expiredBefore).toBeGreaterThan(old.end);
    expect(await reader.latestWindow(hourly, 'lapsed')).toBeUndefined();
  });

  it('treats an item whose ttl has passed as expired even when its window is recent (a lowered retention)', async () => {
    const live = hour(base - 6 * HOUR);
    const stale = hour(base - 2 * HOUR);
    await putWindow(hourly, 'lowered', live, { visits: 1 });
    await putWindow(hourly, 'lowered', stale, { visits: 2 }, Math.floor(Date.now() / 1000) - 60);
    expectExpired(await reader.window(hourly, 'lowered', stale.start, { consistent: true }).catch((e: unknown) => e), { key: 'lowered', windowStart: stale.start });
    expect((await reader.windows(hourly, 'lowered', { from: base - 10 * HOUR, consistent: true })).items.map((w) => w.window.start)).toEqual([live.start]);
    expect((await reader.latestWindow(hourly, 'lowered', { consistent: true }))?.window).toEqual(live);
    await waitFor(async () => (await reader.windowsAt(hourly, live.start, { prefix: 'lowered' })).items.length === 1, {
      timeoutMs: 10_000,
      message: 'the key index lists "lowered" in its live window',
    });
    expect((await reader.windowsAt(hourly, stale.start, { prefix: 'lowered', consistent: true })).items).toEqual([]);
  });

  it('session windows: bounds from the item, expiry from its ttl', async () => {
    const session = { start: base - 3 * HOUR, end: base - 3 * HOUR + 25 * 60_000 };
    await putWindow(sessions, 'ann', session, { visits: 3 });
    expect(await reader.window(sessions, 'ann', session.start, { consistent: true })).toMatchObject({ state: { visits: 3 }, window: session });
    expect((await reader.latestWindow(sessions, 'ann', { consistent: true }))?.window).toEqual(session);
    const old = { start: base - RETENTION_MS - 2 * HOUR, end: base - RETENTION_MS - HOUR };
    await putWindow(sessions, 'ann', old, { visits: 1 });
    expectExpired(await reader.window(sessions, 'ann', old.start).catch((e: unknown) => e), { key: 'ann', windowStart: old.start });
    expect((await reader.windows(sessions, 'ann', { consistent: true })).items.map((w) => w.window)).toEqual([session]);
  });
});
