/**
 * Numbers past 2^53 stay exact through the in-memory driver: bigint keys stay distinct items,
 * bigint state folds and is stored exactly (tagged in the table and the cache), the default
 * decoder refuses to round, and a replay changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { decodeState, defineApp, defineView, parseJsonExact, parseJsonStrict, SdkError } from '../../sdk/index.ts';
import { encodeViewKey, MAX_VIEW_KEY_BYTES, parseState, stringifyState } from '../../sdk/contract/index.ts';
import type { PoisonDeadLetter } from '../../engine/internal/dead-letter.ts';

type Payment = { account: number | bigint; amount: number | bigint };

// Independently computed: 2^53 = 9007199254740992; the JSON texts below are what a Java or SQL
// producer writes for BIGINT columns.
const K0 = 9007199254740992n;
const K1 = 9007199254740993n;

function paymentsView(decode: 'json' | 'json-bigint') {
  return defineView({
    name: 'payments',
    source: 'payments',
    decode,
    key: (e: Payment) => e.account,
    initial: () => ({ n: 0, total: 0n }),
    reduce: (s, e) => ({ n: s.n + 1, total: s.total + BigInt(e.amount) }),
  });
}

const text = (account: string, amount: string) => ({ value: `{"account":${account},"amount":${amount}}` });

function poisonCodes(letters: readonly unknown[]): [string, string][] {
  return (letters as PoisonDeadLetter[]).map((l) => [l.record.offset, l.code]);
}

describe('bigint keys and state', () => {
  it("keeps keys 2^53 and 2^53+1 apart and sums past 2^53 exactly with decode: 'json-bigint'", async () => {
    const view = paymentsView('json-bigint');
    const driver = createTestDriver(defineApp({ name: 'bank', views: [view] }));
    await driver.send('payments', [
      text(String(K0), '9007199254740993'),
      text(String(K1), '1'),
      text(String(K0), '9007199254740993'),
      text(String(K1), '2'),
    ]);
    expect(driver.deadLetters).toEqual([]);
    const sum0 = K1 + K1; // 18014398509481986
    expect(driver.state('payments', K0)).toEqual({ n: 2, total: sum0 });
    expect(driver.state('payments', K1)).toEqual({ n: 2, total: 3n });
    expect(driver.state('payments', '9007199254740993')).toEqual({ n: 2, total: 3n });
    // Stored tagged: a DynamoDB number could not say it was a bigint.
    expect(driver.item('payments', K0)!.state).toEqual({ n: 2, total: { $bigint: '18014398509481986' } });
    expect(driver.item('payments', K0)!.key).toBe('9007199254740992');

    // A replay of the same records applies nothing; a restarted engine (no cache) reads the
    // stored state back as bigint and keeps adding exactly.
    const versions = [driver.item('payments', K0)!.version, driver.item('payments', K1)!.version];
    const replay = await driver.redeliver('payments', 0, 0);
    expect(replay).toMatchObject({ applied: 0, writes: 0 });
    driver.restart();
    await driver.redeliver('payments', 0, 0);
    expect([driver.item('payments', K0)!.version, driver.item('payments', K1)!.version]).toEqual(versions);
    expect(driver.state('payments', K0)).toEqual({ n: 2, total: sum0 });
    await driver.send('payments', [text(String(K0), '99999999999999999999999999999999999999999')]);
    expect(driver.state('payments', K0)).toEqual({ n: 3, total: sum0 + 99999999999999999999999999999999999999999n });
  });

  it("refuses instead of merging with the default decoder: 2^53+1 cannot be decoded, 2^53 cannot be a key", async () => {
    const driver = createTestDriver(defineApp({ name: 'bank', views: [paymentsView('json')] }));
    await driver.send('payments', [
      text(String(K0), '1'),
      text(String(K1), '1'),
      text('7', '2'),
      text('7', '1152921504606846976'),
      text('7', '1152921504606847000'),
      text('7', '1152921504606846977'),
    ]);
    expect(poisonCodes(driver.deadLetters)).toEqual([
      ['0', 'KEY_NOT_EXACT'],
      ['1', 'DECODE_FAILED'],
      ['5', 'DECODE_FAILED'],
    ]);
    const [keyLetter, decodeLetter] = driver.deadLetters as PoisonDeadLetter[];
    expect(keyLetter!.reason).toContain('return the key as a bigint or a string');
    expect(decodeLetter!.reason).toContain('9007199254740993');
    expect(decodeLetter!.reason).toContain("decode: 'json-bigint'");
    // 2^60, written exactly or as JavaScript writes it, is a double: the default decoder accepts it.
    expect(driver.state('payments', 7)).toEqual({ n: 3, total: 2n + 2n * 1152921504606846976n });
    expect(driver.state('payments', K0)).toBeUndefined();
  });

  it("refuses a non-integer 'json-bigint' cannot hold exactly, and state using the reserved $bigint key", async () => {
    const tagged = defineView({
      name: 'tagged',
      source: 'payments',
      decode: 'json-bigint',
      key: (e: { k: string }) => e.k,
      initial: () => ({}) as Record<string, unknown>,
      reduce: (s, e: { k: string; v?: unknown; raw?: boolean }) => (e.raw ? { ...s, x: { $bigint: '1' } } : { ...s, v: e.v }),
    });
    const driver = createTestDriver(defineApp({ name: 'bank', views: [tagged] }));
    await driver.send('payments', [
      { value: '{"k":"a","v":0.30000000000000001}' }, // 17 digits a double rounds to 0.3
      { value: '{"k":"a","v":1e400}' },
      { value: '{"k":"a","raw":true}' },
      { value: '{"k":"a","v":[0.1,-12345678901234567890123]}' },
    ]);
    expect(poisonCodes(driver.deadLetters)).toEqual([
      ['0', 'DECODE_FAILED'],
      ['1', 'DECODE_FAILED'],
      ['2', 'STATE_NOT_STORABLE'],
    ]);
    expect((driver.deadLetters[2] as PoisonDeadLetter).reason).toContain('state.x has the key "$bigint"');
    expect(driver.state('tagged', 'a')).toEqual({ v: [0.1, -12345678901234567890123n] });
  });

  it('dead-letters a key() that returns a number past 2^53 (KEY_NOT_EXACT)', async () => {
    const computed = defineView({
      name: 'computed',
      source: 'payments',
      key: (e: { id: number }) => e.id * 2 ** 40,
      initial: () => 0,
      reduce: (s: number) => s + 1,
    });
    const driver = createTestDriver(defineApp({ name: 'bank', views: [computed] }));
    await driver.send('payments', [{ value: { id: 1 } }, { value: { id: 2 ** 14 } }]);
    expect(poisonCodes(driver.deadLetters)).toEqual([['1', 'KEY_NOT_EXACT']]);
    expect(driver.state('computed', 2 ** 40)).toBe(1);
  });
});

describe('encodeViewKey and the tagged state form', () => {
  it('encodes bigints in decimal and refuses numbers past 2^53', () => {
    expect(encodeViewKey(K1)).toBe('9007199254740993');
    expect(encodeViewKey(5n)).toBe(encodeViewKey(5));
    expect(encodeViewKey(Number.MAX_SAFE_INTEGER)).toBe('9007199254740991');
    for (const key of [2 ** 53, -(2 ** 53), 1e21]) {
      expect(() => encodeViewKey(key)).toThrow(SdkError);
      expect(() => encodeViewKey(key)).toThrow(/pass the key as a bigint or a string/);
    }
    try {
      encodeViewKey(2 ** 53);
    } catch (error) {
      expect((error as SdkError).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('round-trips bigints through JSON and decodes stored tags', () => {
    const state = { a: [1n, -(2n ** 70n)], b: { c: 2 ** 60 }, d: 'x' };
    const json = stringifyState(state)!;
    expect(json).toBe('{"a":[{"$bigint":"1"},{"$bigint":"-1180591620717411303424"}],"b":{"c":1152921504606847000},"d":"x"}');
    expect(parseState(json)).toEqual(state);
    expect(decodeState(JSON.parse(json))).toEqual(state);
    const plain = { a: 1, b: [2] };
    expect(decodeState(plain)).toBe(plain);
  });

  it('decodes JSON exactly or refuses with INVALID_ARGUMENT, never rounds', () => {
    expect(parseJsonExact('{"a":9007199254740993,"b":-9223372036854775807,"c":12,"d":1.5}')).toEqual({
      a: 9007199254740993n,
      b: -9223372036854775807n,
      c: 12,
      d: 1.5,
    });
    expect(parseJsonStrict('{"a":9007199254740992,"b":"9007199254740993"}')).toEqual({ a: 2 ** 53, b: '9007199254740993' });
    for (const parse of [() => parseJsonStrict('[9007199254740993]'), () => parseJsonExact('[1e400]')]) {
      expect(parse).toThrow(SdkError);
      try {
        parse();
      } catch (error) {
        expect((error as SdkError).code).toBe('INVALID_ARGUMENT');
      }
    }
  });
});

describe('key length', () => {
  it('dead-letters a key() longer than MAX_VIEW_KEY_BYTES (KEY_TOO_LONG) and keeps the rest', async () => {
    const byText = defineView({
      name: 'byText',
      source: 'notes',
      key: (e: { text: string }) => e.text,
      initial: () => 0,
      reduce: (s: number) => s + 1,
    });
    const driver = createTestDriver(defineApp({ name: 'notes', views: [byText] }));
    const atLimit = 'é'.repeat(MAX_VIEW_KEY_BYTES / 2); // 2 bytes each: exactly the limit
    await driver.send('notes', [{ value: { text: atLimit } }, { value: { text: `${atLimit}x` } }, { value: { text: 'short' } }]);
    expect(poisonCodes(driver.deadLetters)).toEqual([['1', 'KEY_TOO_LONG']]);
    expect((driver.deadLetters[0] as PoisonDeadLetter).reason).toMatch(/1001 UTF-8 bytes.*longer than 1000 bytes/);
    expect(driver.state('byText', atLimit)).toBe(1);
    expect(driver.state('byText', 'short')).toBe(1);
    expect(() => encodeViewKey('x'.repeat(MAX_VIEW_KEY_BYTES + 1))).toThrowError(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
