/**
 * Exact numbers past 2^53: the tagged form that carries a `bigint` through JSON and DynamoDB,
 * and the JSON decoders that refuse to round.
 *
 * A state's `bigint` is stored as `{ "$bigint": "<decimal>" }`: JSON has no bigint, and a plain
 * DynamoDB number comes back without saying whether it was a bigint or a double, so a reducer
 * doing `s.total + 1n` would meet a number after a cache miss. The tag is the same in the
 * engine's state cache, in the views table and in trigger payloads; reads turn it back into a
 * `bigint`. Pure; no I/O.
 */
import { getUnsafeNumberReason, isInteger, parse as parseLossless } from 'lossless-json';
import { SdkError } from './errors.ts';

/** The one key of the object a `bigint` is stored as. Reserved: a state may not use it. */
export const BIGINT_TAG = '$bigint';

/** The tagged form of a `bigint` in JSON and in the views table. */
export interface TaggedBigint {
  readonly [BIGINT_TAG]: string;
}

const TAG_IN_JSON = `"${BIGINT_TAG}"`;

function isTaggedBigint(value: unknown): value is TaggedBigint {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const tag = (value as Record<string, unknown>)[BIGINT_TAG];
  return typeof tag === 'string' && Object.keys(value).length === 1 && /^-?\d+$/.test(tag);
}

function tagReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? { [BIGINT_TAG]: value.toString() } : value;
}

function tagReviver(_key: string, value: unknown): unknown {
  return isTaggedBigint(value) ? BigInt(value[BIGINT_TAG]) : value;
}

/**
 * `JSON.stringify` of a state, with every `bigint` in its tagged form. Throws what
 * `JSON.stringify` throws (e.g. on a cycle); undefined for a value JSON cannot hold.
 *
 * @example
 * stringifyState({ total: 9007199254740993n }); // '{"total":{"$bigint":"9007199254740993"}}'
 */
export function stringifyState(state: unknown): string | undefined {
  try {
    // Most states hold no bigint: plain stringify is several times faster than with a replacer.
    return JSON.stringify(state);
  } catch (error) {
    if (!(error instanceof TypeError) || !/BigInt/i.test(error.message)) throw error;
    return JSON.stringify(state, tagReplacer);
  }
}

/**
 * Parses what {@link stringifyState} produced, turning tagged bigints back into `bigint`.
 *
 * @example
 * parseState('{"total":{"$bigint":"9007199254740993"}}'); // { total: 9007199254740993n }
 */
export function parseState(json: string): unknown {
  return json.includes(TAG_IN_JSON) ? JSON.parse(json, tagReviver) : JSON.parse(json);
}

/**
 * Turns tagged bigints of a stored state (as read from the views table or received in a
 * trigger's change) back into `bigint`; returns `value` itself when it holds none.
 *
 * @example
 * decodeState({ total: { $bigint: '9007199254740993' } }); // { total: 9007199254740993n }
 */
export function decodeState<S = unknown>(value: unknown): S {
  if (isTaggedBigint(value)) return BigInt(value[BIGINT_TAG]) as S;
  if (value === null || typeof value !== 'object') return value as S;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const decoded = decodeState(value[i]);
      if (decoded !== value[i]) (out ??= [...value])[i] = decoded;
    }
    return (out ?? value) as S;
  }
  let out: Record<string, unknown> | undefined;
  for (const [name, field] of Object.entries(value)) {
    const decoded = decodeState(field);
    if (decoded !== field) (out ??= { ...value })[name] = decoded;
  }
  return (out ?? value) as S;
}

/** Why `value` is ambiguous under the tagged form (an object that looks like a tag), or undefined. */
export function reservedTagReason(value: object): string | undefined {
  return Object.prototype.hasOwnProperty.call(value, BIGINT_TAG)
    ? `has the key "${BIGINT_TAG}", which is reserved for storing bigints`
    : undefined;
}

/**
 * The error of a JSON number a double cannot hold exactly: an {@link SdkError}
 * `INVALID_ARGUMENT` with the number's text in `context.number` (a decoder's throw, so the
 * record becomes poison `DECODE_FAILED` with this message).
 */
function inexactNumber(text: string, why: string, fix: string): SdkError {
  const shown = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return new SdkError('INVALID_ARGUMENT', `the number ${shown} ${why}; ${fix}`, { context: { number: shown } });
}

/** Any integer past 2^53 has at least 16 digits; shorter texts need no lossless pass. */
const LONG_DIGIT_RUN = /\d{16}/;

function keepLast(info: { newValue: unknown }): unknown {
  return info.newValue;
}

/**
 * The number of an integer text, unless a double cannot stand for it: 9007199254740993 would
 * silently become ...992. Accepted are texts a double holds exactly (2^60 as
 * 1152921504606846976) and a double's own shortest form (JavaScript writes 2^60 as
 * 1152921504606847000), so a JSON round trip of any JavaScript number decodes.
 */
function checkExactInteger(text: string): number {
  const number = Number(text);
  if (!isInteger(text) || Number.isSafeInteger(number) || String(number) === text || BigInt(text) === BigInt(number)) return number;
  throw inexactNumber(
    text,
    `is past 2^53 and would be rounded to ${BigInt(number)}`,
    `give the view decode: 'json-bigint' to read it as a bigint, or send it as a string`,
  );
}

/**
 * UTF-8 JSON, as `JSON.parse`, except that an integer a double cannot hold exactly (past 2^53,
 * e.g. 9007199254740993) throws an {@link SdkError} `INVALID_ARGUMENT` instead of being rounded. Integers
 * past 2^53 that are a double's exact value or its shortest form (2^60 written as
 * 1152921504606846976 or 1152921504606847000) and non-integers decode as `JSON.parse` does.
 *
 * @example
 * parseJsonStrict('{"n":9007199254740992}'); // { n: 9007199254740992 }
 * parseJsonStrict('{"n":9007199254740993}'); // throws SdkError INVALID_ARGUMENT
 */
export function parseJsonStrict(text: string): unknown {
  const value = JSON.parse(text);
  // JSON.parse reports the syntax errors; the lossless pass only checks the numbers.
  if (LONG_DIGIT_RUN.test(text)) parseLossless(text, null, { parseNumber: checkExactInteger, onDuplicateKey: keepLast });
  return value;
}

function exactNumber(text: string): number | bigint {
  if (isInteger(text)) {
    const number = Number(text);
    return Number.isSafeInteger(number) ? number : BigInt(text);
  }
  const reason = getUnsafeNumberReason(text);
  if (reason === undefined) return Number(text);
  const why =
    reason === 'overflow'
      ? 'is beyond the largest double (about 1.8e308)'
      : reason === 'underflow'
        ? 'is below the smallest double (about 5e-324) and would become 0'
        : `has more digits than a double holds and would become ${Number(text)}`;
  throw inexactNumber(text, why, 'send it as a string (or as an integer, which decodes to a bigint past 2^53)');
}

/**
 * UTF-8 JSON with exact numbers: integers within ±(2^53−1) decode to `number`, integers past it
 * to `bigint`; a non-integer a double cannot hold without losing digits (overflow, underflow,
 * digits past a double's 17) throws an {@link SdkError} `INVALID_ARGUMENT`.
 *
 * @example
 * parseJsonExact('{"id":9007199254740993,"price":1.5}'); // { id: 9007199254740993n, price: 1.5 }
 */
export function parseJsonExact(text: string): unknown {
  return parseLossless(text, null, { parseNumber: exactNumber, onDuplicateKey: keepLast });
}
