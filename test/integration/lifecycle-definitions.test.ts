/**
 * Definition identity on the real stack: the engine records each view's version and the
 * fingerprint of its definition in the table's bookkeeping, starts with the same definition
 * again, refuses a definition changed without a version bump (`VIEW_DEFINITION_CHANGED`, the
 * message says to bump `version` or to accept the change) and an older version
 * (`VIEW_VERSION_OLDER`), and records an accepted change or a higher version.
 */
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import { startEngine, viewFingerprint, type Engine } from '../../engine/index.ts';
import { legacyViewFingerprint } from '../../engine/internal/lifecycle.ts';
import { defineApp, defineView, type App } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName } from './helpers.ts';

interface Event {
  readonly k: string;
  readonly n: number;
}

describe('view definition identity', () => {
  const dynamodb = dynamoClient();
  const documents = DynamoDBDocumentClient.from(dynamodb);
  const running: Engine[] = [];

  afterAll(async () => {
    await Promise.all(running.map((e) => e.stop().catch(() => {})));
    dynamodb.destroy();
  });

  function app(name: string, topic: string, version: number | undefined, step: number): App {
    const totals = defineView({
      name: 'totals',
      source: topic,
      ...(version !== undefined ? { version } : {}),
      key: (e: Event) => e.k,
      initial: () => ({ sum: 0 }),
      // `step` is part of the reducer's text only through the literal each variant spells out.
      reduce: step === 1 ? (s, e) => ({ sum: s.sum + e.n }) : (s, e) => ({ sum: s.sum + 2 * e.n }),
    });
    return defineApp({ name, views: [totals] });
  }

  /** Starts an engine; resolves with undefined once ready and stopped, or with the start-up error. */
  async function start(target: App, tableName: string, acceptDefinitionChanges?: string[]) {
    const engine = startEngine({
      app: target,
      tableName,
      kafka: { clientId: 'lifecycle-definitions', brokers: stack().kafkaBrokers },
      dynamodb,
      logLevel: 'error',
      logSink: () => {},
      ...(acceptDefinitionChanges !== undefined ? { acceptDefinitionChanges } : {}),
    });
    running.push(engine);
    const error = await engine.ready.then(
      () => undefined,
      (e: unknown) => e as { code?: string; message: string },
    );
    if (error === undefined) await engine.stop();
    else {
      await expect(engine.done).rejects.toMatchObject({ code: error.code });
      expect(engine.state()).toBe('failed');
    }
    return error;
  }

  async function registry(tableName: string) {
    const { Item } = await documents.send(
      new GetCommand({ TableName: tableName, Key: { pk: '_tributary', sk: 'view#totals' }, ConsistentRead: true }),
    );
    return Item as { versions: Record<string, { fingerprint: string }> } | undefined;
  }

  it('records, restarts, refuses a changed reducer without a version bump, accepts on request, refuses an older version', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-def'), 1);
    const table = await createTable(uniqueName('life-def'), dynamodb);
    const name = uniqueName('life-def');

    expect(await start(app(name, topic, undefined, 1), table)).toBeUndefined();
    const first = await registry(table);
    expect(Object.keys(first?.versions ?? {})).toEqual(['1']);
    const firstFingerprint = first!.versions['1']!.fingerprint;
    expect(firstFingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);

    // The same code again: starts.
    expect(await start(app(name, topic, 1, 1), table)).toBeUndefined();

    // The reducer changed, the version did not: refused, with what to do.
    const refused = await start(app(name, topic, 1, 2), table);
    expect(refused?.code).toBe('VIEW_DEFINITION_CHANGED');
    expect(refused?.message).toContain('view "totals" version 1');
    expect(refused?.message).toContain('Bump the view\'s version');
    expect(refused?.message).toContain('version: 2');
    expect(refused?.message).toContain("acceptDefinitionChanges: ['totals']");
    expect((await registry(table))!.versions['1']!.fingerprint).toBe(firstFingerprint);

    // Accepted explicitly: recorded as version 1's definition from now on.
    expect(await start(app(name, topic, 1, 2), table, ['totals'])).toBeUndefined();
    const accepted = (await registry(table))!.versions['1']!.fingerprint;
    expect(accepted).not.toBe(firstFingerprint);
    expect(await start(app(name, topic, 1, 2), table)).toBeUndefined();

    // A version bump is recorded next to the old one.
    expect(await start(app(name, topic, 2, 1), table)).toBeUndefined();
    expect(Object.keys((await registry(table))!.versions).sort()).toEqual(['1', '2']);

    // An older deployment does not take the view back.
    const older = await start(app(name, topic, 1, 2), table);
    expect(older?.code).toBe('VIEW_VERSION_OLDER');
    expect(older?.message).toContain('version 2 was already deployed');
  });

  it('recognises a fingerprint recorded in the older form (whitespace-collapsed text) and records the canonical one', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-def'), 1);
    const table = await createTable(uniqueName('life-def'), dynamodb);
    const target = app(uniqueName('life-def'), topic, 1, 1);
    const view = target.views[0]!;
    const legacy = legacyViewFingerprint(view);
    expect(legacy).not.toBe(viewFingerprint(view));
    await documents.send(
      new PutCommand({
        TableName: table,
        Item: { pk: '_tributary', sk: 'view#totals', view: 'totals', versions: { '1': { fingerprint: legacy, recordedAt: new Date().toISOString() } } },
      }),
    );
    expect(await start(target, table)).toBeUndefined();
    expect((await registry(table))!.versions['1']!.fingerprint).toBe(viewFingerprint(view));
    // Another reducer is still refused against the older form.
    await documents.send(
      new PutCommand({
        TableName: table,
        Item: { pk: '_tributary', sk: 'view#totals', view: 'totals', versions: { '1': { fingerprint: legacy, recordedAt: new Date().toISOString() } } },
      }),
    );
    expect((await start(app(uniqueName('life-def'), topic, 1, 2), table))?.code).toBe('VIEW_DEFINITION_CHANGED');
  });
});
