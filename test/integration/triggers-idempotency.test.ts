/**
 * The idempotency helper against DynamoDB Local, and an example trigger function
 * (functions/handlers/notifyInstructor.ts) run by the real Lambda endpoint, fed by the
 * dispatcher, with a redelivery: the side effect runs once per idempotency key.
 */
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TriggerDispatcher, type TriggerDeadLetter } from '../../engine/internal/triggers/dispatcher.ts';
import { classNearlyFull } from '../../functions/triggers.ts';
import type { ClassAttendance } from '../../functions/views.ts';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { createHighWaterMark, createIdempotency, HIGH_WATER_MARK_SK_PREFIX, IDEMPOTENCY_PK, SdkError, type Change } from '../../sdk/index.ts';
import { createTable, dynamoClient, lambdaClient, LOCAL_CREDENTIALS, stack, uniqueName, waitFor } from './helpers.ts';

let table: string;
const dynamodb = dynamoClient();
const documents = DynamoDBDocumentClient.from(dynamodb);

beforeAll(async () => {
  table = await createTable(uniqueName('idem'));
});

afterAll(() => {
  dynamodb.destroy();
});

describe('once()', () => {
  it('runs the side effect once per key and returns the stored result to duplicates', async () => {
    const idempotency = createIdempotency({ dynamodb, table });
    let runs = 0;
    const key = uniqueName('k');
    const first = await idempotency.once(key, async () => ({ run: ++runs }));
    const second = await idempotency.once(key, async () => ({ run: ++runs }));
    expect(first).toEqual({ run: 1 });
    expect(second).toEqual({ run: 1 });
    expect(runs).toBe(1);
    const { Item } = await documents.send(new GetCommand({ TableName: table, Key: { pk: IDEMPOTENCY_PK, sk: key } }));
    expect(Item).toMatchObject({ pk: '_idempotency', sk: key, status: 'completed' });
    const nowSeconds = Math.floor(Date.now() / 1000);
    expect(Item!.ttl).toBeGreaterThan(nowSeconds + 6 * 24 * 3600);
    expect(Item!.ttl).toBeLessThanOrEqual(nowSeconds + 7 * 24 * 3600 + 5);
  });

  it('lets exactly one of several concurrent runs execute; the others see IDEMPOTENCY_IN_PROGRESS', async () => {
    const idempotency = createIdempotency({ dynamodb, table });
    const key = uniqueName('race');
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const refused: SdkError[] = [];
    const attempts = Array.from({ length: 5 }, () => {
      const attempt = idempotency.once(key, async () => {
        runs++;
        await gate;
        return 'done';
      });
      attempt.catch((error: SdkError) => refused.push(error));
      return attempt;
    });
    // The four losers settle while the winner is still holding the key.
    const settledLosers = await waitFor(() => (refused.length === 4 ? refused : undefined), {
      message: 'four runs refused while one holds the key',
    });
    expect(settledLosers.every((e) => e.code === 'IDEMPOTENCY_IN_PROGRESS' && e.retriable)).toBe(true);
    release();
    const results = await Promise.allSettled(attempts);
    expect(results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<string>).value)).toEqual(['done']);
    expect(runs).toBe(1);
    expect(await idempotency.once(key, () => 'again')).toBe('done');
  });

  it('releases the key when the side effect throws, so a retry runs it', async () => {
    const idempotency = createIdempotency({ dynamodb, table });
    const key = uniqueName('fail');
    await expect(idempotency.once(key, () => Promise.reject(new Error('smtp down')))).rejects.toThrow('smtp down');
    expect(await idempotency.once(key, () => 'sent')).toBe('sent');
  });

  it('retries a side effect whose run crashed midway once its lease expired; completed ones stay skipped', async () => {
    const crashed = createIdempotency({ dynamodb, table, inProgressTimeoutMs: 300 });
    const key = uniqueName('crash');
    // A run that never finishes stands for a process killed mid-side-effect: its marker stays in-progress.
    void crashed.once(key, () => new Promise<never>(() => {}));
    await waitFor(async () => (await documents.send(new GetCommand({ TableName: table, Key: { pk: IDEMPOTENCY_PK, sk: key }, ConsistentRead: true }))).Item, {
      message: 'the in-progress marker',
    });
    const retry = createIdempotency({ dynamodb, table });
    let runs = 0;
    const result = await waitFor(
      () => retry.once(key, () => `run ${++runs}`).catch((e: SdkError) => (e.code === 'IDEMPOTENCY_IN_PROGRESS' ? undefined : Promise.reject(e))),
      { timeoutMs: 5_000, message: 'the lease to expire and the retry to run' },
    );
    expect(result).toBe('run 1');
    expect(await retry.once(key, () => `run ${++runs}`)).toBe('run 1');
    expect(runs).toBe(1);
  });

  it('says what is missing when no table is configured', async () => {
    const previous = process.env.TRIBUTARY_TABLE;
    delete process.env.TRIBUTARY_TABLE;
    try {
      await expect(createIdempotency({ dynamodb }).once('k', () => 1)).rejects.toMatchObject({ code: 'CONFIG_MISSING' });
    } finally {
      if (previous !== undefined) process.env.TRIBUTARY_TABLE = previous;
    }
  });
});

describe('notifyInstructor through the Lambda endpoint', () => {
  let endpoint: LambdaEndpoint;
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    // The endpoint runs handlers in this process: give them the standard environment, as Lambda would.
    const env = {
      TRIBUTARY_TABLE: table,
      AWS_REGION: stack().region,
      AWS_ENDPOINT_URL_DYNAMODB: stack().dynamodbEndpoint,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    };
    for (const [name, value] of Object.entries(env)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
    endpoint = await startLambdaEndpoint({ functionsDir: new URL('../../functions/handlers', import.meta.url).pathname });
  });

  afterAll(async () => {
    await endpoint?.stop();
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it('notifies once per crossing even when the change is redelivered', async () => {
    const log = vi.spyOn(console, 'log');
    const lambda = lambdaClient(endpoint.endpoint);
    try {
      const classId = uniqueName('yoga');
      const state = (booked: number): ClassAttendance => ({
        classId,
        classStartsAt: '2026-01-06T18:00:00.000Z',
        capacity: 20,
        booked,
        attendees: [],
        waitlist: [],
        cancellations: 0,
        turnedAway: 0,
      });
      const change: Change<ClassAttendance> = {
        view: 'classAttendance',
        key: classId,
        before: state(17),
        after: state(18),
        version: 18,
        offsets: { 'bookings/0': '99' },
        idempotencyKey: `classAttendance#${classId}##18`,
      };
      const deadLetters: TriggerDeadLetter[] = [];
      const dispatcher = new TriggerDispatcher({ lambda, deadLetter: async (d) => void deadLetters.push(d) });
      // First delivery, then a redelivery of the same change (as after an engine crash before commit).
      const first = await dispatcher.deliver(classNearlyFull, [change]);
      const again = await dispatcher.deliver(classNearlyFull, [change]);
      expect(deadLetters).toEqual([]);
      expect([...first, ...again].map((o) => o.status)).toEqual(['delivered', 'delivered']);
      const lines = log.mock.calls.map((args) => String(args[0])).filter((line) => line.includes(classId));
      expect(lines).toEqual([`[notifyInstructor] class ${classId} is 90% full (18/20)`]);
      const markers = await documents.send(
        new QueryCommand({
          TableName: table,
          KeyConditionExpression: 'pk = :pk AND sk = :sk',
          ExpressionAttributeValues: { ':pk': IDEMPOTENCY_PK, ':sk': `notifyInstructor:${change.idempotencyKey}` },
        }),
      );
      expect(markers.Items?.map((i) => i.status)).toEqual(['completed']);
    } finally {
      log.mockRestore();
      lambda.destroy();
    }
  });
});

describe('createHighWaterMark()', () => {
  it('accepts a key\'s versions at or above its mark and refuses older ones, with the mark stored beside the once() markers', async () => {
    const marks = createHighWaterMark({ dynamodb, table });
    const key = uniqueName('class');
    const at = (version: number) => ({ view: 'classAttendance', key, version });
    expect(await marks.accept('notify', at(40))).toBe(true);
    expect(await marks.accept('notify', at(42))).toBe(true);
    // The paused task's v41 after the new owner's v42; a redelivery of v42 passes.
    expect(await marks.accept('notify', at(41))).toBe(false);
    expect(await marks.accept('notify', at(42))).toBe(true);
    // Another trigger on the same item keeps its own mark.
    expect(await marks.accept('audit', at(41))).toBe(true);

    const { Items } = await documents.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': IDEMPOTENCY_PK, ':prefix': `${HIGH_WATER_MARK_SK_PREFIX}notify#classAttendance##${key}` },
        ConsistentRead: true,
      }),
    );
    expect(Items).toHaveLength(1);
    expect(Items![0]).toMatchObject({ pk: '_idempotency', version: 42 });
    expect(Items![0]!.ttl).toBeGreaterThan(Math.floor(Date.now() / 1000) + 6 * 24 * 3600);
  });

  it('fails with HIGH_WATER_MARK_FAILED, not retriable, when the table does not exist', async () => {
    const marks = createHighWaterMark({ dynamodb, table: uniqueName('missing') });
    await expect(marks.accept('notify', { view: 'v', key: 'k', version: 1 })).rejects.toMatchObject({
      code: 'HIGH_WATER_MARK_FAILED',
      retriable: false,
    });
  });
});
