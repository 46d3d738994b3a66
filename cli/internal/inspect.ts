/**
 * `tributary views get|query` and `tributary dead-letters list|show`: look inside a running
 * app — its views through the SDK's reads, its dead-letter topic through a Kafka consumer that
 * reads it from the start and commits nothing.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel as kafkaLogLevel } from 'kafkajs';
import { createViewReader, type App, type ViewKeyRange, type ViewSnapshot } from '../../sdk/index.ts';
import { CliError } from './errors.ts';
import { findView, firstLine, toJson } from './project.ts';

/** Longest state shown on one line of `views query` (human form); `--json` shows all. */
const STATE_PREVIEW_CHARS = 160;
/** How long reading the dead-letter topic may take before giving up. */
const DEAD_LETTER_READ_TIMEOUT_MS = 20_000;

function describeState(item: ViewSnapshot<unknown>, full: boolean): string {
  const json = toJson(item.state, full ? 2 : undefined);
  return full || json.length <= STATE_PREVIEW_CHARS ? json : `${json.slice(0, STATE_PREVIEW_CHARS - 1)}…`;
}

async function readWith<T>(table: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw new CliError('NOT_CONFIGURED', `cannot read table "${table}": ${firstLine(error)}; is \`tributary dev\` running in this folder (or AWS_ENDPOINT_URL_DYNAMODB / TRIBUTARY_TABLE set)?`, { cause: error });
  }
}

/** `views get <view> <key>`: the lines to print. */
export async function viewGet(app: App, table: string, viewName: string, key: string, json: boolean): Promise<string[]> {
  const view = findView(app, viewName);
  const reader = createViewReader({ tableName: table });
  const item = await readWith(table, () => reader.get(view, key));
  if (!item) {
    if (json) return ['null'];
    throw new CliError('NOT_FOUND', `view "${view.name}" has no key ${JSON.stringify(key)} in table "${table}" (no event has reached it yet); \`tributary views query ${view.name}\` lists the keys there are`);
  }
  if (json) return [toJson(item, 2)];
  return [`${view.name}[${item.key}]  version ${item.version}, updated ${item.updatedAt}`, describeState(item, true)];
}

/** `views query <view> [--prefix p]`: the lines to print (every page). */
export async function viewQuery(app: App, table: string, viewName: string, range: ViewKeyRange | undefined, limit: number | undefined, json: boolean): Promise<string[]> {
  const view = findView(app, viewName);
  const reader = createViewReader({ tableName: table });
  const items: ViewSnapshot<unknown>[] = [];
  let cursor: string | undefined;
  do {
    const page = await readWith(table, () => reader.query(view, range, { ...(cursor ? { cursor } : {}), limit: 1_000 }));
    items.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined && (limit === undefined || items.length < limit));
  const shown = limit === undefined ? items : items.slice(0, limit);
  if (json) return [toJson(shown, 2)];
  if (shown.length === 0) return [`view "${view.name}": no keys${range && 'prefix' in range ? ` starting with ${JSON.stringify(range.prefix)}` : ''}`];
  return [...shown.map((item) => `${item.key}  v${item.version}  ${describeState(item, false)}`), `${shown.length} key${shown.length === 1 ? '' : 's'}`];
}

/** A dead letter as read back from the topic. */
export interface ReadDeadLetter {
  readonly partition: number;
  readonly offset: string;
  readonly timestamp: string;
  readonly letter: Record<string, unknown>;
}

/** Every message of the dead-letter topic, up to its end when the read started. */
export async function readDeadLetters(brokers: readonly string[], topic: string): Promise<ReadDeadLetter[]> {
  const kafka = new Kafka({ clientId: 'tributary-cli', brokers: [...brokers], logLevel: kafkaLogLevel.NOTHING, retry: { retries: 2 } });
  const admin = kafka.admin();
  const groupId = `tributary-cli-${randomUUID()}`;
  const letters: ReadDeadLetter[] = [];
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
        const timer = setTimeout(() => reject(new Error(`read ${letters.length} dead letters in ${DEAD_LETTER_READ_TIMEOUT_MS / 1000} s but the topic has more`)), DEAD_LETTER_READ_TIMEOUT_MS);
        consumer.run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            const end = remaining.get(partition);
            if (end === undefined || BigInt(message.offset) >= end) return;
            let letter: Record<string, unknown>;
            try {
              letter = JSON.parse(message.value?.toString('utf8') ?? 'null') as Record<string, unknown>;
            } catch {
              letter = { unreadable: message.value?.toString('utf8') };
            }
            letters.push({ partition, offset: message.offset, timestamp: new Date(Number(message.timestamp)).toISOString(), letter });
            if (BigInt(message.offset) + 1n >= end) remaining.delete(partition);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        }).catch(reject);
      });
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
  } catch (error) {
    throw new CliError('NOT_CONFIGURED', `cannot read dead-letter topic "${topic}" at ${brokers.join(',')}: ${firstLine(error)}; is \`tributary dev\` running in this folder (or KAFKA_BROKERS set)?`, { cause: error });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  return letters.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
}

/** One line per dead letter: where, when, what and why. */
export function deadLetterLine(entry: ReadDeadLetter): string {
  const l = entry.letter;
  const what = l.kind === 'trigger'
    ? `trigger ${String(l.trigger)} → ${String(l.function)}, view ${String(l.view)}[${String(l.key)}]`
    : `view ${String(l.view)}${l.key === undefined ? '' : `[${String(l.key)}]`}`;
  return `${entry.partition}:${entry.offset}  ${entry.timestamp}  ${String(l.kind ?? '?')} ${String(l.code ?? '?')}  ${what}: ${String(l.reason ?? '')}`;
}

/** `dead-letters show <partition:offset>`: the one asked for. */
export function findDeadLetter(letters: readonly ReadDeadLetter[], position: string, topic: string): ReadDeadLetter {
  const match = /^(\d+):(\d+)$/.exec(position);
  if (!match) throw new CliError('USAGE', `dead-letters show ${JSON.stringify(position)}: expected partition:offset, e.g. 0:12 (as \`tributary dead-letters list\` prints)`);
  const found = letters.find((l) => l.partition === Number(match[1]) && l.offset === match[2]);
  if (!found) throw new CliError('NOT_FOUND', `no dead letter at ${position} in "${topic}" (it holds ${letters.length}); \`tributary dead-letters list\` shows where they are`);
  return found;
}
