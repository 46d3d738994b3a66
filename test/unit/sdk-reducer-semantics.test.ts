/**
 * The built-in reducers' SQL semantics through the engine's own fold (the in-memory driver):
 * nulls, ordered types, first/last values, set-like lists, distinct counts, histograms, spread
 * and the empty-string key. Every expected state is computed in the test, and every test replays
 * its records to show nothing is applied twice.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver, type TestDriver } from '../../engine/index.ts';
import {
  collect,
  count,
  countDistinct,
  countDistinctValue,
  defineApp,
  defineTrigger,
  defineView,
  earliest,
  earliestByTime,
  histogram,
  latest,
  latestByTime,
  max,
  min,
  stddev,
  stddevValue,
  sum,
  topK,
  varianceValue,
  type DistinctState,
  type LatestState,
  type StddevState,
} from '../../sdk/index.ts';

/** Replays partition 0 from the start and checks the fence made it a no-op. */
async function expectReplayIsNoOp(driver: TestDriver, topic: string, views: readonly [string, string][]): Promise<void> {
  const before = views.map(([view, key]) => structuredClone(driver.item(view, key)));
  const changes = driver.changes.length;
  const deadLetters = driver.deadLetters.length;
  driver.restart();
  const result = await driver.redeliver(topic, 0, 0);
  expect(result.writes).toBe(0);
  expect(views.map(([view, key]) => driver.item(view, key))).toEqual(before);
  expect(driver.changes).toHaveLength(changes);
  // Dead letters are at-least-once: a poison record of a key with no item has no fence, so a
  // replay may send it again, but never a new one.
  const seen = new Set(driver.deadLetters.slice(0, deadLetters).map(letterId));
  expect(driver.deadLetters.slice(deadLetters).filter((d) => !seen.has(letterId(d)))).toEqual([]);
}

type Poison = Extract<TestDriver['deadLetters'][number], { kind: 'poison' }>;

/** The driver's poison dead letters (these tests deliver every trigger change). */
function poisonOf(driver: TestDriver): Poison[] {
  return driver.deadLetters.filter((d): d is Poison => d.kind === 'poison');
}

function letterId(letter: TestDriver['deadLetters'][number]): string {
  return letter.kind === 'poison' ? `${letter.view}/${letter.code}/${letter.record.offset}` : `${letter.kind}/${letter.code}`;
}

describe('nulls: skipped like SQL aggregates, so the other aggregates keep the record', () => {
  type Sale = { shop: string; price?: number | null };
  const sales = defineView({
    name: 'sales',
    source: 'sales',
    key: (e: Sale) => e.shop,
    initial: () => ({ n: 0, lo: null as number | null, hi: null as number | null, total: null as number | null }),
    reduce: (s, e) => ({ n: count(s.n), lo: min(s.lo, e.price), hi: max(s.hi, e.price), total: sum(s.total, e.price) }),
  });
  const strict = defineView({
    name: 'strictSales',
    source: 'sales',
    key: (e: Sale) => e.shop,
    initial: () => ({ n: 0, lo: null as number | null }),
    reduce: (s, e) => ({ n: count(s.n), lo: min(s.lo, e.price, { nulls: 'error' }) }),
  });
  const audit = defineTrigger({ view: sales, function: 'audit', changes: 'coalesced' });
  const app = defineApp({ name: 'nulls', views: [sales, strict], triggers: [audit] });
  const records = [
    { value: { shop: 'a', price: 5 } },
    { value: { shop: 'a', price: null } },
    { value: { shop: 'a' } },
    { value: { shop: 'a', price: 3 } },
    { value: { shop: 'b', price: null } },
  ];

  it('count is COUNT(*) and min/max/sum skip the null prices; an all-null key has a row with null results', async () => {
    const driver = createTestDriver(app);
    await driver.send('sales', records);
    const prices = [5, null, undefined, 3];
    const present = prices.filter((p): p is number => typeof p === 'number');
    expect(driver.state('sales', 'a')).toEqual({
      n: prices.length,
      lo: Math.min(...present),
      hi: Math.max(...present),
      total: present.reduce((a, b) => a + b, 0),
    });
    expect(driver.state('sales', 'b')).toEqual({ n: 1, lo: null, hi: null, total: null });
    expect(poisonOf(driver).filter((d) => d.view === 'sales')).toEqual([]);
    // One change per key and batch (coalesced), from no item to the final state; one version per event.
    expect(driver.changes.map((c) => [c.change.key, c.change.before, c.change.after, c.change.version])).toEqual([
      ['a', undefined, { n: 4, lo: 3, hi: 5, total: 8 }, 4],
      ['b', undefined, { n: 1, lo: null, hi: null, total: null }, 1],
    ]);
    await expectReplayIsNoOp(driver, 'sales', [
      ['sales', 'a'],
      ['sales', 'b'],
    ]);
  });

  it("{ nulls: 'error' } makes each null-priced record poison (NULL_VALUE), so that view counts only the others", async () => {
    const driver = createTestDriver(app);
    await driver.send('sales', records);
    const poison = poisonOf(driver).filter((d) => d.view === 'strictSales');
    expect(poison.map((d) => [d.code, d.record.offset])).toEqual([
      ['REDUCE_FAILED', '1'],
      ['REDUCE_FAILED', '2'],
      ['REDUCE_FAILED', '4'],
    ]);
    // The letter carries the reducer error's code, to match on instead of the message.
    expect(poison.map((d) => [d.error?.type, d.error?.code])).toEqual([
      ['SdkError', 'NULL_VALUE'],
      ['SdkError', 'NULL_VALUE'],
      ['SdkError', 'NULL_VALUE'],
    ]);
    expect(driver.state('strictSales', 'a')).toEqual({ n: 2, lo: 3 });
    expect(driver.state('strictSales', 'b')).toBeUndefined();
    await expectReplayIsNoOp(driver, 'sales', [['strictSales', 'a']]);
  });
});

describe('ordered types: min / max / topK on strings, Dates and mixed-up types', () => {
  type Visit = { page: string; user: string; at: string; score?: unknown };
  const visits = defineView({
    name: 'visits',
    source: 'visits',
    key: (e: Visit) => e.page,
    initial: () => ({ firstUser: null as string | null, lastUser: null as string | null, firstAtMs: null as number | null, top: [] as Visit[] }),
    reduce: (s, e) => ({
      firstUser: min(s.firstUser, e.user),
      lastUser: max(s.lastUser, e.user),
      // A Date is stored as its epoch ms: JSON has no Date, and the stored value is compared next.
      firstAtMs: min(s.firstAtMs, new Date(e.at)),
      top: topK(s.top, e, { k: 2, score: (v) => v.at }),
    }),
  });
  const scores = defineView({
    name: 'scores',
    source: 'visits',
    key: (e: Visit) => e.page,
    initial: () => ({ best: null as number | null }),
    reduce: (s, e) => ({ best: max(s.best, e.score as number | null | undefined) }),
  });
  const app = defineApp({ name: 'ordered', views: [visits, scores] });

  it('orders strings by code unit and Dates by epoch ms; a string among numbers is poison and leaves the state as it was', async () => {
    const driver = createTestDriver(app);
    const events: Visit[] = [
      { page: 'home', user: 'mia', at: '2026-03-02T10:00:00Z', score: 4 },
      { page: 'home', user: 'bob', at: '2026-03-01T09:00:00+02:00', score: 'high' },
      { page: 'home', user: 'zed', at: '2026-03-03T00:00:00Z', score: 7 },
    ];
    await driver.send('visits', events.map((value) => ({ value })));
    const users = events.map((e) => e.user).sort();
    const times = events.map((e) => Date.parse(e.at));
    const byIsoDesc = [...events].sort((a, b) => (a.at < b.at ? 1 : -1));
    expect(driver.state('visits', 'home')).toEqual({
      firstUser: users[0],
      lastUser: users[users.length - 1],
      firstAtMs: Math.min(...times),
      top: byIsoDesc.slice(0, 2),
    });
    expect(driver.state('scores', 'home')).toEqual({ best: 7 });
    expect(poisonOf(driver).map((d) => [d.view, d.code, d.record.offset])).toEqual([
      ['scores', 'REDUCE_FAILED', '1'],
    ]);
    await expectReplayIsNoOp(driver, 'visits', [
      ['visits', 'home'],
      ['scores', 'home'],
    ]);
  });
});

describe('first and last values: by offset and by time', () => {
  type Plan = { user: string; plan: string | null; at: number };
  const plans = defineView({
    name: 'plans',
    source: 'plans',
    key: (e: Plan) => e.user,
    initial: () => ({
      last: null as string | null,
      lastKeepNull: null as string | null,
      first: null as string | null,
      newest: null as LatestState<string | null> | null,
      oldest: null as LatestState<string | null> | null,
    }),
    reduce: (s, e) => ({
      last: latest(s.last, e.plan),
      lastKeepNull: latest(s.lastKeepNull, e.plan, { nulls: 'keep' }),
      first: earliest(s.first, e.plan),
      newest: latestByTime(s.newest, e.plan, e.at),
      oldest: earliestByTime(s.oldest, e.plan, e.at),
    }),
  });
  const app = defineApp({ name: 'plans', views: [plans] });

  it('latest is the last applied event, latestByTime the newest timestamp (ties: the later event), earliest* their mirrors', async () => {
    const driver = createTestDriver(app);
    // Offsets 0..4; timestamps out of order, with ties at 300 and 100.
    const events: Plan[] = [
      { user: 'u', plan: 'silver', at: 300 },
      { user: 'u', plan: 'gold', at: 100 },
      { user: 'u', plan: 'bronze', at: 300 },
      { user: 'u', plan: 'tin', at: 100 },
      { user: 'u', plan: null, at: 500 },
    ];
    await driver.send('plans', events.slice(0, 3).map((value) => ({ value })));
    await driver.send('plans', events.slice(3).map((value) => ({ value })));
    const nonNull = events.filter((e) => e.plan !== null);
    const maxAt = Math.max(...nonNull.map((e) => e.at));
    const minAt = Math.min(...nonNull.map((e) => e.at));
    const lastAtMax = nonNull.filter((e) => e.at === maxAt).at(-1)!;
    const firstAtMin = nonNull.find((e) => e.at === minAt)!;
    expect(driver.state('plans', 'u')).toEqual({
      last: nonNull.at(-1)!.plan,
      lastKeepNull: null,
      first: nonNull[0]!.plan,
      newest: { value: lastAtMax.plan, atMs: maxAt },
      oldest: { value: firstAtMin.plan, atMs: minAt },
    });
    expect(driver.state('plans', 'u')).toMatchObject({ last: 'tin', newest: { value: 'bronze' }, oldest: { value: 'gold' } });
    await expectReplayIsNoOp(driver, 'plans', [['plans', 'u']]);
  });
});

describe('collect: set semantics with dedupeBy and an explicit cap policy', () => {
  type Join = { room: string; member: string; nick: string | null };
  const rooms = defineView({
    name: 'rooms',
    source: 'joins',
    key: (e: Join) => e.room,
    initial: () => ({ members: [] as Join[], firstTwo: [] as string[], lastTwo: [] as string[], nicks: [] as (string | null)[] }),
    reduce: (s, e) => ({
      members: collect(s.members, e, { dedupeBy: (j) => j.member }),
      firstTwo: collect(s.firstTwo, e.member, { max: 2, keep: 'first', dedupeBy: (m) => m }),
      lastTwo: collect(s.lastTwo, e.member, { max: 2, dedupeBy: (m) => m }),
      nicks: collect(s.nicks, e.nick, { nulls: 'keep' }),
    }),
  });
  const app = defineApp({ name: 'rooms', views: [rooms] });

  it('a repeated member keeps its first position and takes the newest value; keep first/last bound the list', async () => {
    const driver = createTestDriver(app);
    const joins: Join[] = [
      { room: 'r', member: 'ann', nick: 'a1' },
      { room: 'r', member: 'bob', nick: null },
      { room: 'r', member: 'ann', nick: 'a2' },
      { room: 'r', member: 'cy', nick: 'c' },
    ];
    await driver.send('joins', joins.map((value) => ({ value })));
    // Independent model: first-seen order of members, newest copy of each.
    const order = [...new Set(joins.map((j) => j.member))];
    const newest = order.map((m) => joins.filter((j) => j.member === m).at(-1)!);
    expect(driver.state('rooms', 'r')).toEqual({
      members: newest,
      firstTwo: order.slice(0, 2),
      lastTwo: order.slice(-2),
      nicks: joins.map((j) => j.nick),
    });
    await expectReplayIsNoOp(driver, 'rooms', [['rooms', 'r']]);
  });
});

describe('countDistinct, histogram, stddev', () => {
  type Request = { route: string; user: string | null; ms: number | null };
  const BOUNDARIES = [100, 500];
  const MAX_USERS = 3;
  const routes = defineView({
    name: 'routes',
    source: 'requests',
    key: (e: Request) => e.route,
    initial: () => ({ users: null as DistinctState<string> | null, latency: null as number[] | null, spread: null as StddevState | null }),
    reduce: (s, e) => ({
      users: countDistinct(s.users, e.user, { max: MAX_USERS }),
      latency: histogram(s.latency, e.ms, { boundaries: BOUNDARIES }),
      spread: stddev(s.spread, e.ms),
    }),
  });
  const app = defineApp({ name: 'routes', views: [routes] });

  it('match values computed directly; a distinct value past max is poison (DISTINCT_CAP_EXCEEDED) and repeats still count', async () => {
    const driver = createTestDriver(app);
    const requests: Request[] = [
      { route: '/', user: 'ann', ms: 80 },
      { route: '/', user: 'bob', ms: 100 },
      { route: '/', user: null, ms: 499 },
      { route: '/', user: 'ann', ms: 500 },
      { route: '/', user: 'cy', ms: null },
      { route: '/', user: 'dee', ms: 2000 }, // the 4th distinct user: over max 3
      { route: '/', user: 'bob', ms: 120 },
    ];
    await driver.send('requests', requests.map((value) => ({ value })));
    const applied = requests.filter((r) => r.user !== 'dee');
    const users = [...new Set(applied.map((r) => r.user).filter((u) => u !== null))];
    const ms = applied.map((r) => r.ms).filter((m): m is number => m !== null);
    const buckets = [ms.filter((m) => m < 100).length, ms.filter((m) => m >= 100 && m < 500).length, ms.filter((m) => m >= 500).length];
    const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
    const m2 = ms.reduce((a, m) => a + (m - mean) ** 2, 0);
    const state = driver.state<{ users: string[]; latency: number[]; spread: StddevState }>('routes', '/')!;
    expect(state.users).toEqual(users);
    expect(countDistinctValue(state.users)).toBe(3);
    expect(state.latency).toEqual(buckets);
    expect(state.spread.count).toBe(ms.length);
    expect(state.spread.mean).toBeCloseTo(mean, 10);
    expect(stddevValue(state.spread)).toBeCloseTo(Math.sqrt(m2 / ms.length), 10);
    expect(varianceValue(state.spread, 'sample')).toBeCloseTo(m2 / (ms.length - 1), 8);
    expect(driver.deadLetters).toHaveLength(1);
    expect(poisonOf(driver).map((d) => [d.code, d.record.offset, d.error?.type])).toEqual([['REDUCE_FAILED', '5', 'SdkError']]);
    await expectReplayIsNoOp(driver, 'requests', [['routes', '/']]);
  });

  it("with overflow: 'approximate' the state becomes a sketch past max, no record is poison, and a replay does not count twice", async () => {
    const visitors = defineView({
      name: 'visitors',
      source: 'visits',
      key: (e: { page: string; user: string }) => e.page,
      initial: () => ({ users: null as DistinctState<string> | null }),
      reduce: (s, e) => ({ users: countDistinct(s.users, e.user, { max: 5, overflow: 'approximate' }) }),
    });
    const driver = createTestDriver(defineApp({ name: 'visitors', views: [visitors] }));
    const users = Array.from({ length: 60 }, (_, i) => `u${i % 40}`); // 40 distinct, 20 repeats
    await driver.send('visits', users.slice(0, 30).map((user) => ({ value: { page: 'p', user } })));
    await driver.send('visits', users.slice(30).map((user) => ({ value: { page: 'p', user } })));
    expect(driver.deadLetters).toEqual([]);
    const state = driver.state<{ users: DistinctState<string> }>('visitors', 'p')!;
    expect(state.users).toEqual({ hll: expect.any(String) });
    const estimate = countDistinctValue(state.users);
    expect(Math.abs(estimate - new Set(users).size)).toBeLessThanOrEqual(3);
    await expectReplayIsNoOp(driver, 'visits', [['visitors', 'p']]);
    expect(countDistinctValue(driver.state<{ users: DistinctState<string> }>('visitors', 'p')!.users)).toBe(estimate);
  });
});

describe("the empty-string key ''", () => {
  type Tagged = { tag: string; n: number };
  const tags = defineView({
    name: 'tags',
    source: 'tagged',
    key: (e: Tagged) => e.tag,
    initial: () => ({ n: 0 }),
    reduce: (s, e) => ({ n: sum(s.n, e.n) }),
  });
  const audit = defineTrigger({ view: tags, function: 'audit', changes: 'coalesced' });
  const app = defineApp({ name: 'tags', views: [tags], triggers: [audit] });

  it("is a key like any other: item pk 'v#tags#', read back by driver.state, changes carry key ''", async () => {
    const driver = createTestDriver(app);
    await driver.send('tagged', [{ value: { tag: '', n: 2 } }, { value: { tag: 'x', n: 1 } }, { value: { tag: '', n: 5 } }]);
    await driver.send('tagged', [{ value: { tag: '', n: 1 } }]);
    expect(driver.deadLetters).toEqual([]);
    expect(driver.state('tags', '')).toEqual({ n: 2 + 5 + 1 });
    expect(driver.state('tags', 'x')).toEqual({ n: 1 });
    expect(driver.item('tags', '')).toMatchObject({ pk: 'v#tags#', sk: '_', key: '', version: 3 });
    expect(driver.changes.map((c) => [c.change.key, c.change.before, c.change.after, c.change.version])).toEqual([
      ['', undefined, { n: 7 }, 2],
      ['x', undefined, { n: 1 }, 1],
      ['', { n: 7 }, { n: 8 }, 3],
    ]);
    await expectReplayIsNoOp(driver, 'tagged', [
      ['tags', ''],
      ['tags', 'x'],
    ]);
  });
});
