/**
 * `replayDeadLetters`: reads an app's dead-letter topic from the start (a throwaway group that
 * commits nothing), checks that each chosen view's version is the live one, and replays the
 * selected letters (replay.ts) against the views table, the trigger functions and the
 * dead-letter topic.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { Kafka, logLevel as kafkaLogLevel, Partitioners, type KafkaConfig } from 'kafkajs';
import type { App } from '../../sdk/index.ts';
import { createStorage, viewRegistryKey } from '../../sdk/contract/index.ts';
import type { ChangeOutcome, ChangeSink, DeadLetterSink } from './change-sink.ts';
import { DEFAULT_DEAD_LETTER_MAX_BYTES, encodeDeadLetter, groupDeadLetters } from './dead-letter.ts';
import { DEFAULT_READ_CONCURRENCY } from './config.ts';
import { DynamoItemStore } from './dynamodb-store.ts';
import { EngineError, errorInfo } from './errors.ts';
import { replayLetters, type ReplayProgress, type ReplaySummary, type StoredDeadLetter } from './replay.ts';
import { createTriggerChangeSink } from './triggers/sink.ts';

/** Options of {@link replayDeadLetters}. */
export interface ReplayDeadLettersOptions {
  /** The app, with the fixed code. */
  readonly app: App;
  /** The view (or views) whose letters to replay: poison records and its triggers' undelivered changes. */
  readonly view: string | readonly string[];
  /** Only letters of these codes. @default every code */
  readonly codes?: readonly string[];
  /** Only letters written up to this time (a prefix of each dead-letter partition). @default no limit */
  readonly until?: Date;
  /** The views table. */
  readonly tableName: string;
  /** How to reach the brokers (as the engine's `kafka` option). */
  readonly kafka: KafkaConfig;
  /** @default new DynamoDBClient({}) */
  readonly dynamodb?: DynamoDBClient;
  /** @default new LambdaClient({}) */
  readonly lambda?: LambdaClient;
  /** Trigger function name → deployed name (as the engine's `functionNames`). @default the names as written */
  readonly functionNames?: Readonly<Record<string, string>>;
  /** The dead-letter topic. @default app.deadLetterTopic */
  readonly deadLetterTopic?: string;
  /** Called after each batch with letters handled so far. */
  readonly onProgress?: (progress: ReplayProgress) => void;
  /** How long reading the dead-letter topic to its end may take. @default 60_000 */
  readonly readTimeoutMs?: number;
}

/** How long reading the dead-letter topic to its end may take by default. */
const DEFAULT_READ_TIMEOUT_MS = 60_000;

/**
 * Replays the dead letters of a view after its code was fixed: each poison record is folded into
 * that view only, exactly once (a second replay skips what the first applied), and its
 * triggers' undelivered changes are delivered again with their idempotency keys. Records still
 * poison are dead-lettered again with the new reason. Run one replay at a time per app.
 *
 * @example
 * const summary = await replayDeadLetters({ app, view: 'classAttendance', tableName: 'tributary-gym', kafka: { brokers: ['127.0.0.1:9092'] } });
 * console.log(`${summary.replayed} replayed, ${summary.alreadyApplied} already applied, ${summary.stillPoison} still poison`);
 */
export async function replayDeadLetters(options: ReplayDeadLettersOptions): Promise<ReplaySummary> {
  const { app } = options;
  const views = typeof options.view === 'string' ? [options.view] : [...options.view];
  const topic = options.deadLetterTopic ?? app.deadLetterTopic;
  const storage = createStorage({ dynamodb: options.dynamodb ?? new DynamoDBClient({}), tableName: options.tableName });
  for (const name of views) {
    const view = app.views.find((v) => v.name === name);
    if (view === undefined) continue; // replayLetters says which views there are
    const live = await liveVersion(storage.documentClient, options.tableName, name);
    if (live !== undefined && live !== view.version) {
      throw new EngineError(
        'REPLAY_VERSION_NOT_LIVE',
        `view "${name}" is at version ${view.version} in this code, but version ${live} is live on table "${options.tableName}"; ` +
          (view.version > live
            ? `start the engine with this code first: it builds version ${view.version} from the topic's history (which folds the dead-lettered records again with the new code) and swaps it in; replay afterwards only what that version dead-letters`
            : `replay with the code of version ${live}`),
        { context: { view: name } },
      );
    }
  }
  const kafka = new Kafka({ ...options.kafka, clientId: options.kafka.clientId ?? 'tributary-replay', logLevel: options.kafka.logLevel ?? kafkaLogLevel.NOTHING });
  const letters = await readTopic(kafka, topic, options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  const deadLetters: DeadLetterSink = {
    send: async (sent) => {
      const now = new Date();
      const messages = sent.map((letter) => encodeDeadLetter(app.name, letter, now, DEFAULT_DEAD_LETTER_MAX_BYTES));
      for (const group of groupDeadLetters(messages, DEFAULT_DEAD_LETTER_MAX_BYTES)) await producer.send({ topic, acks: -1, messages: group });
    },
  };
  const triggered = app.triggers.filter((t) => views.includes(t.view.name));
  const sink =
    triggered.length === 0
      ? undefined
      : createTriggerChangeSink({ lambda: options.lambda ?? new LambdaClient({}), functionNames: options.functionNames ?? {}, deadLetters });
  const changes: ChangeSink = sink ?? { deliver: async (_t, list) => list.map((): ChangeOutcome => 'delivered') };
  try {
    return await replayLetters(
      {
        app,
        store: new DynamoItemStore(storage, DEFAULT_READ_CONCURRENCY),
        deadLetters,
        changes,
        deadLetterTopic: topic,
        ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
      },
      letters,
      { views, ...(options.codes !== undefined ? { codes: options.codes } : {}), ...(options.until !== undefined ? { until: options.until } : {}) },
    );
  } finally {
    await sink?.close().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
  }
}

/** The live version of a view on the table (its registry's alias), undefined when it was never recorded. */
async function liveVersion(client: ReturnType<typeof createStorage>['documentClient'], tableName: string, view: string): Promise<number | undefined> {
  let item: Record<string, unknown> | undefined;
  try {
    ({ Item: item } = await client.send(new GetCommand({ TableName: tableName, Key: viewRegistryKey(view), ConsistentRead: true })));
  } catch (error) {
    throw new EngineError('STORAGE_FAILED', `reading the registry of view "${view}" in table "${tableName}" failed: ${errorInfo(error).message}`, { retriable: true, cause: error, context: { view } });
  }
  if (item === undefined) return undefined;
  if (typeof item.live === 'number') return item.live;
  // No swap yet: the first version recorded is the one live folding writes.
  const recorded = Object.keys((item.versions ?? {}) as Record<string, unknown>).map(Number).filter(Number.isInteger);
  return recorded.length === 0 ? undefined : Math.min(...recorded);
}

/** Every message of `topic` up to its end when the read started. */
async function readTopic(kafka: Kafka, topic: string, timeoutMs: number): Promise<StoredDeadLetter[]> {
  const admin = kafka.admin();
  const groupId = `tributary-replay-${randomUUID()}`;
  const letters: StoredDeadLetter[] = [];
  try {
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic);
    const remaining = new Map(ends.filter((p) => BigInt(p.high) > BigInt(p.low)).map((p) => [p.partition, BigInt(p.high)]));
    if (remaining.size === 0) return [];
    // A throwaway group that commits nothing and is deleted after: kafkajs reads only in a group.
    const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new EngineError('KAFKA_FAILED', `read ${letters.length} letters of "${topic}" in ${timeoutMs / 1000} s but it has more; raise readTimeoutMs`)),
          timeoutMs,
        );
        consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ partition, message }) => {
              const end = remaining.get(partition);
              if (end === undefined || BigInt(message.offset) >= end) return;
              let value: Record<string, unknown> | undefined;
              try {
                const parsed: unknown = JSON.parse(message.value?.toString('utf8') ?? 'null');
                value = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
              } catch {
                value = undefined;
              }
              letters.push({ partition, offset: message.offset, timestampMs: Number(message.timestamp), value });
              if (BigInt(message.offset) + 1n >= end) remaining.delete(partition);
              if (remaining.size === 0) {
                clearTimeout(timer);
                resolve();
              }
            },
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
  } catch (error) {
    if (error instanceof EngineError) throw error;
    throw new EngineError('KAFKA_FAILED', `cannot read the dead-letter topic "${topic}": ${errorInfo(error).message}`, { retriable: true, cause: error, context: { topic } });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  return letters;
}
