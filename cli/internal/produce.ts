/**
 * `tributary produce <topic>`: sends JSON events, one per line (JSON Lines), from a file or
 * stdin to a topic of the local (or any) broker.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Kafka, logLevel as kafkaLogLevel } from 'kafkajs';
import { CliError } from './errors.ts';
import { firstLine } from './project.ts';

/** Events sent per produce request. */
const PRODUCE_BATCH = 500;

/** Options of {@link produce}. */
export interface ProduceOptions {
  readonly topic: string;
  readonly brokers: readonly string[];
  /** Field of each event whose value is the Kafka key; undefined = no key. */
  readonly keyField: string | undefined;
  readonly input: Readable;
  /** Shown in errors: the file name or `stdin`. */
  readonly inputName: string;
}

/** The Kafka key of `event` from `field`: a string, number or bigint field, as a string. */
export function keyOf(event: unknown, field: string, where: string): string {
  const value = event !== null && typeof event === 'object' ? (event as Record<string, unknown>)[field] : undefined;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return String(value);
  throw new CliError('INVALID_INPUT', `${where}: --key ${field}, but the event's "${field}" is ${value === undefined ? 'missing' : JSON.stringify(value)}; give every event a string or number "${field}", or drop --key`);
}

/** Produces every line of the input; resolves with the number of events sent. */
export async function produce(options: ProduceOptions): Promise<number> {
  const lines = createInterface({ input: options.input, crlfDelay: Infinity });
  const messages: { key: string | null; value: string }[] = [];
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber += 1;
    if (line.trim() === '') continue;
    const where = `${options.inputName} line ${lineNumber}`;
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch (error) {
      throw new CliError('INVALID_INPUT', `${where} is not JSON (${firstLine(error)}): ${JSON.stringify(line.slice(0, 80))}; write one JSON event per line`);
    }
    messages.push({ key: options.keyField === undefined ? null : keyOf(event, options.keyField, where), value: line });
  }
  if (messages.length === 0) return 0;
  const kafka = new Kafka({ clientId: 'tributary-cli', brokers: [...options.brokers], logLevel: kafkaLogLevel.NOTHING, retry: { retries: 2 } });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  try {
    await producer.connect();
    for (let i = 0; i < messages.length; i += PRODUCE_BATCH) {
      await producer.send({ topic: options.topic, acks: -1, messages: messages.slice(i, i + PRODUCE_BATCH) });
    }
  } catch (error) {
    throw new CliError('NOT_CONFIGURED', `cannot produce to "${options.topic}" at ${options.brokers.join(',')}: ${firstLine(error)}; is \`tributary dev\` running, and is "${options.topic}" a source topic of the app?`, { cause: error });
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
  return messages.length;
}

/** The input of `--file f` or stdin. */
export function inputOf(file: string | undefined): { input: Readable; inputName: string } {
  if (file === undefined) return { input: process.stdin, inputName: 'stdin' };
  const input = createReadStream(file);
  return { input, inputName: file };
}
