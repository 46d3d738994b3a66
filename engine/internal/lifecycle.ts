/**
 * The identity of a view's definition: its `version` and a fingerprint of what the engine can
 * see of its code, recorded per view in the table's bookkeeping (`viewRegistryKey`), and the
 * start-up check that compares them with what was deployed before.
 *
 * What the fingerprint covers, and what it cannot:
 * - covered: the source topic, the text of `decode`, `filter`, `key`, `reduce`, `merge` and the
 *   window's `timestamp` (for a table aggregation also the table's name and its own `key`,
 *   `filter`, `reduce` and `subtract`, which the compiled ones call), the output of `initial()`, `maxStateBytes` (a state past it is poison),
 *   whether a schema is set and its vendor, and the window's kind, sizes, `graceMs` and
 *   `idleCloseMs` (they decide which events apply);
 * - not covered: what a function calls or captures (a helper imported from another module, a
 *   constant it closes over), the schema's rules, library versions; a change there needs a
 *   `version` bump by hand;
 * - left out on purpose: `retentionMs`, `emit`, `onLate` and `onPoison`, which change when items
 *   expire, what triggers hear or what happens to a dead letter, not the state.
 * Function text is compared in a canonical form (canonical-code.ts): parsed and printed back
 * without whitespace, comments, parentheses, quote style, local names or the rewrites bundlers
 * make of imports, so the same source loaded through vitest, tsx or an esbuild bundle has one
 * fingerprint, and re-indenting or renaming a local is not a change.
 *
 * Fingerprints recorded before the canonical form (function text with whitespace collapsed) are
 * still recognised: when the code's fingerprint of that older form matches, the start-up check
 * records the canonical one in its place ({@link legacyViewFingerprint}). So is, for a table
 * aggregation, the fingerprint of engines that saw only its compiled wrappers
 * ({@link earlierViewFingerprints}): that form cannot tell its functions apart, so a change of them
 * deployed together with that engine upgrade is taken as the same definition, once.
 */
import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { stringifyState, viewRegistryKey } from '../../sdk/contract/index.ts';
import type { View } from '../../sdk/index.ts';
import { canonicalFunctionText } from './canonical-code.ts';
import { EngineError, errorInfo } from './errors.ts';

/** One recorded version of a view's definition. */
export interface RecordedVersion {
  readonly fingerprint: string;
  /** When the engine first saw this version (ISO). */
  readonly recordedAt: string;
}

/** A view's registry item as stored (pk `_tributary`, sk `view#<view>`). */
export interface ViewRegistryEntry {
  readonly view: string;
  /** Version number (decimal string) → what was recorded for it. */
  readonly versions: Readonly<Record<string, RecordedVersion>>;
  /** The live version, which reads resolve to (the alias); absent until the first build swapped. */
  readonly live?: number;
}

/** What the start-up check concludes for one view. */
export type DefinitionVerdict =
  /** The view was never deployed on this table: it needs a build from the source's history. */
  | { readonly kind: 'new' }
  /** The same version with the same fingerprint: nothing to do. */
  | { readonly kind: 'same' }
  /** A version higher than every recorded one: it needs a build. */
  | { readonly kind: 'upgrade'; readonly from: number }
  /** The same version with another fingerprint: the code changed without a version bump. */
  | { readonly kind: 'changed'; readonly recorded: string }
  /** A version lower than the newest recorded one (an older deployment, recorded before or not). */
  | { readonly kind: 'older'; readonly newest: number };

type FunctionText = (fn: unknown) => string;

/** A function's canonical text; its text with whitespace collapsed when it does not parse. */
const canonicalText: FunctionText = (fn) => {
  if (typeof fn !== 'function') return 'none';
  const text = Function.prototype.toString.call(fn);
  return canonicalFunctionText(text) ?? `text ${text.replace(/\s+/g, ' ').trim()}`;
};

/** The form fingerprints had before canonicalFunctionText: the printed text, whitespace collapsed. */
const collapsedText: FunctionText = (fn) =>
  typeof fn === 'function' ? Function.prototype.toString.call(fn).replace(/\s+/g, ' ').trim() : 'none';

function initialText(view: View<any, any>): string {
  try {
    return stringifyState(view.initial()) ?? 'undefined';
  } catch (error) {
    return `initial() threw: ${errorInfo(error).message}`;
  }
}

/**
 * The parts of a view's definition the fingerprint is made of (see the module header), by name.
 * Exposed for the error message that names what changed.
 */
export function fingerprintParts(view: View<any, any>, normalisedText: FunctionText = canonicalText, withAggregate = true): Record<string, string> {
  const window = view.window;
  const vendor = (view.schema as { '~standard'?: { vendor?: unknown } } | undefined)?.['~standard']?.vendor;
  const aggregate = withAggregate ? view.aggregate : undefined;
  return {
    // A table aggregation's own functions: its compiled key/filter/reduce only call them.
    ...(aggregate !== undefined
      ? {
          over: view.over?.name ?? 'none',
          rowKey: normalisedText(aggregate.key),
          rowFilter: normalisedText(aggregate.filter),
          add: normalisedText(aggregate.reduce),
          subtract: normalisedText(aggregate.subtract),
        }
      : {}),
    source: view.source,
    decode: normalisedText(view.decode),
    schema: view.schema === undefined ? 'none' : `vendor ${String(vendor)}`,
    filter: normalisedText(view.filter),
    key: normalisedText(view.key),
    initial: initialText(view),
    reduce: normalisedText(view.reduce),
    merge: normalisedText(view.merge),
    maxStateBytes: String(view.maxStateBytes),
    window:
      window === undefined
        ? 'none'
        : JSON.stringify({
            kind: window.kind,
            sizeMs: 'sizeMs' in window ? window.sizeMs : undefined,
            advanceMs: 'advanceMs' in window ? window.advanceMs : undefined,
            gapMs: 'gapMs' in window ? window.gapMs : undefined,
            graceMs: window.graceMs,
            idleCloseMs: window.idleCloseMs,
            timestamp: normalisedText(window.timestamp),
          }),
  };
}

/**
 * Fingerprint of a view's definition: `sha256:` and the hex SHA-256 of its parts
 * ({@link fingerprintParts}) as JSON.
 *
 * @example
 * viewFingerprint(classAttendance); // 'sha256:3f0c…'
 */
export function viewFingerprint(view: View<any, any>): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(fingerprintParts(view))).digest('hex')}`;
}

/**
 * The fingerprint as engines before the canonical form computed it (function text with runs of
 * whitespace collapsed), to recognise a registry entry they recorded.
 */
export function legacyViewFingerprint(view: View<any, any>): string {
  // Those engines did not see a table aggregation's own functions either.
  return `sha256:${createHash('sha256').update(JSON.stringify(fingerprintParts(view, collapsedText, false))).digest('hex')}`;
}

/**
 * The fingerprints engines recorded for this code before the current form: the whitespace-collapsed
 * one ({@link legacyViewFingerprint}) and, for a table aggregation, the canonical one without its
 * own functions (engines before they were covered saw only the compiled wrappers).
 */
export function earlierViewFingerprints(view: View<any, any>): string[] {
  const hash = (parts: Record<string, string>) => `sha256:${createHash('sha256').update(JSON.stringify(parts)).digest('hex')}`;
  const out = [legacyViewFingerprint(view)];
  if (view.aggregate !== undefined) out.push(hash(fingerprintParts(view, canonicalText, false)));
  return out;
}

/**
 * Compares a view's version and fingerprint with its registry entry (undefined when the view
 * was never deployed on the table).
 *
 * @example
 * judgeDefinition(2, 'sha256:b…', { view: 'v', versions: { '1': { fingerprint: 'sha256:a…', recordedAt } } });
 * // { kind: 'upgrade', from: 1 }
 */
export function judgeDefinition(version: number, fingerprint: string, entry: ViewRegistryEntry | undefined): DefinitionVerdict {
  const recorded = Object.keys(entry?.versions ?? {}).map(Number).filter(Number.isInteger);
  if (entry === undefined || recorded.length === 0) return { kind: 'new' };
  const newest = Math.max(...recorded);
  // Older first: once a higher version was deployed, the lower one's items are on their way out.
  if (version < newest) return { kind: 'older', newest };
  const same = entry.versions[String(version)];
  if (same !== undefined) return same.fingerprint === fingerprint ? { kind: 'same' } : { kind: 'changed', recorded: same.fingerprint };
  return { kind: 'upgrade', from: newest };
}

/** Result of {@link checkViewDefinitions} for one view. */
export interface DefinitionCheck {
  readonly view: string;
  readonly version: number;
  readonly fingerprint: string;
  readonly verdict: DefinitionVerdict;
  /** True when a changed fingerprint was accepted (`acceptDefinitionChanges`) and recorded. */
  readonly accepted: boolean;
  /** The live version at the check (the alias); undefined when none is yet. */
  readonly live: number | undefined;
}

function refusal(view: View<any, any>, verdict: DefinitionVerdict): string | undefined {
  if (verdict.kind === 'changed') {
    return (
      `view "${view.name}" version ${view.version} was deployed on this table with another definition (its reducer, key, initial state, ` +
      `filter, decoder or window changed: fingerprint ${verdict.recorded} recorded, this code has another); ` +
      `its items hold the old definition's states, so the engine does not mix new ones in. Bump the view's version ` +
      `(defineView({ name: '${view.name}', version: ${view.version + 1}, ... })) to build the new definition from the topic's history, ` +
      `or, if the change cannot alter any state (a refactoring), accept it with acceptDefinitionChanges: ['${view.name}'] ` +
      `(TRIBUTARY_ACCEPT_DEFINITION_CHANGES=${view.name} for engine/main.ts and npm run dev)`
    );
  }
  if (verdict.kind === 'older') {
    return (
      `view "${view.name}" is at version ${view.version} here, but version ${verdict.newest} was already deployed on this table; ` +
      `an older deployment does not take a view back. Deploy the code of version ${verdict.newest} or later, or give this definition version ${verdict.newest + 1}`
    );
  }
  return undefined;
}

async function readEntry(client: DynamoDBDocumentClient, tableName: string, view: string): Promise<ViewRegistryEntry | undefined> {
  try {
    const { Item } = await client.send(new GetCommand({ TableName: tableName, Key: viewRegistryKey(view), ConsistentRead: true }));
    return Item as ViewRegistryEntry | undefined;
  } catch (error) {
    throw new EngineError('STORAGE_FAILED', `GetItem (view registry of "${view}") failed: ${errorInfo(error).message}`, {
      retriable: true,
      cause: error,
      context: { view },
    });
  }
}

/** Records a version; false when another task changed the entry first (read it again). */
async function record(
  client: DynamoDBDocumentClient,
  tableName: string,
  view: string,
  version: number,
  fingerprint: string,
  entry: ViewRegistryEntry | undefined,
  replacing: string | undefined,
): Promise<boolean> {
  const recordedAt = new Date().toISOString();
  try {
    if (entry === undefined) {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: { ...viewRegistryKey(view), view, versions: { [String(version)]: { fingerprint, recordedAt } }, updatedAt: recordedAt },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } else {
      await client.send(
        new UpdateCommand({
          TableName: tableName,
          Key: viewRegistryKey(view),
          UpdateExpression: 'SET versions.#v = :recorded, updatedAt = :now',
          ConditionExpression:
            replacing === undefined ? 'attribute_not_exists(versions.#v)' : 'versions.#v.fingerprint = :replacing',
          ExpressionAttributeNames: { '#v': String(version) },
          ExpressionAttributeValues: {
            ':recorded': { fingerprint, recordedAt },
            ':now': recordedAt,
            ...(replacing === undefined ? {} : { ':replacing': replacing }),
          },
        }),
      );
    }
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException || (error as { name?: string }).name === 'ConditionalCheckFailedException') {
      return false;
    }
    throw new EngineError('STORAGE_FAILED', `recording version ${version} of view "${view}" failed: ${errorInfo(error).message}`, {
      retriable: true,
      cause: error,
      context: { view },
    });
  }
}

/**
 * The start-up check of the views' definitions: for each view, reads its registry entry,
 * judges the version and fingerprint ({@link judgeDefinition}) and records a new version (or
 * an accepted change). Throws `VIEW_DEFINITION_CHANGED` for a definition that changed without
 * a version bump (unless its view is in `accept`) and `VIEW_VERSION_OLDER` for a version below
 * a recorded one; several tasks starting at once agree through conditional writes.
 */
export async function checkViewDefinitions(
  client: DynamoDBDocumentClient,
  tableName: string,
  views: readonly View<any, any>[],
  accept: ReadonlySet<string>,
): Promise<DefinitionCheck[]> {
  const checks: DefinitionCheck[] = [];
  const refusals: { view: string; code: 'VIEW_DEFINITION_CHANGED' | 'VIEW_VERSION_OLDER'; message: string }[] = [];
  for (const view of views) {
    const fingerprint = viewFingerprint(view);
    for (let attempt = 0; ; attempt += 1) {
      const entry = await readEntry(client, tableName, view.name);
      let verdict = judgeDefinition(view.version, fingerprint, entry);
      // Recorded by an earlier engine from this same code (before the canonical form, or before
      // an aggregation's own functions were covered): not a change.
      const legacy = verdict.kind === 'changed' && earlierViewFingerprints(view).includes(verdict.recorded);
      const accepted = verdict.kind === 'changed' && (legacy || accept.has(view.name));
      const message = accepted ? undefined : refusal(view, verdict);
      if (message !== undefined) {
        refusals.push({ view: view.name, code: verdict.kind === 'older' ? 'VIEW_VERSION_OLDER' : 'VIEW_DEFINITION_CHANGED', message });
        break;
      }
      if (verdict.kind === 'same') {
        checks.push({ view: view.name, version: view.version, fingerprint, verdict, accepted: false, live: entry?.live });
        break;
      }
      const replacing = verdict.kind === 'changed' ? verdict.recorded : undefined;
      if (await record(client, tableName, view.name, view.version, fingerprint, entry, replacing)) {
        if (legacy) verdict = { kind: 'same' };
        checks.push({ view: view.name, version: view.version, fingerprint, verdict, accepted: accepted && !legacy, live: entry?.live });
        break;
      }
      if (attempt >= 5) {
        throw new EngineError('STORAGE_FAILED', `the registry entry of view "${view.name}" kept changing while this task recorded it`, {
          retriable: true,
          context: { view: view.name },
        });
      }
    }
  }
  if (refusals.length > 0) {
    throw new EngineError(refusals[0]!.code, refusals.map((r) => r.message).join('; '), {
      context: { views: refusals.map((r) => r.view) },
    });
  }
  return checks;
}
