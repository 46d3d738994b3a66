import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient, GetItemCommand, ListTablesCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { InvokeCommand } from '@aws-sdk/client-lambda';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local/index.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, stack, stackEnv, uniqueName } from './helpers.ts';

const quiet = (): void => {};

function kafkaOf(brokers: string[]): Kafka {
  return new Kafka({ clientId: 'stack-test', brokers, logLevel: logLevel.NOTHING });
}

async function produce(brokers: string[], topic: string, values: string[]): Promise<void> {
  const producer = kafkaOf(brokers).producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, messages: values.map((value) => ({ key: 'class-7', value })) });
  } finally {
    await producer.disconnect();
  }
}

async function highWatermark(brokers: string[], topic: string): Promise<string | undefined> {
  const admin = kafkaOf(brokers).admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic))[0]?.high;
  } finally {
    await admin.disconnect();
  }
}

function dynamoFor(s: LocalStack): DynamoDBClient {
  return new DynamoDBClient({
    endpoint: s.env.AWS_ENDPOINT_URL_DYNAMODB,
    region: s.env.AWS_REGION,
    credentials: { accessKeyId: s.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s.env.AWS_SECRET_ACCESS_KEY! },
    maxAttempts: 1,
  });
}

/** Resolves true if something accepts TCP connections on host:port. */
function isListening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('shared stack from global setup', () => {
  it('serves Kafka, DynamoDB and Lambda at the provided endpoints, and stackEnv() names them', async () => {
    const env = stackEnv();
    expect(env).toEqual({
      KAFKA_BROKERS: stack().kafkaBrokers.join(','),
      AWS_REGION: stack().region,
      AWS_ENDPOINT_URL_DYNAMODB: stack().dynamodbEndpoint,
      AWS_ENDPOINT_URL_LAMBDA: stack().lambdaEndpoint,
      AWS_ACCESS_KEY_ID: expect.any(String),
      AWS_SECRET_ACCESS_KEY: expect.any(String),
    });

    const topic = await createTopic(stack().kafkaBrokers, uniqueName('bookings'), 2);
    await produce(stack().kafkaBrokers, topic, ['booked', 'booked', 'cancelled']);
    const admin = kafkaOf(stack().kafkaBrokers).admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      expect(offsets.reduce((sum, p) => sum + Number(p.high), 0)).toBe(3);
    } finally {
      await admin.disconnect();
    }

    const ddb = dynamoClient();
    const table = await createTable(uniqueName('views'));
    expect((await ddb.send(new ListTablesCommand({}))).TableNames).toContain(table);
    ddb.destroy();

    const lambda = lambdaClient();
    const error = await lambda.send(new InvokeCommand({ FunctionName: uniqueName('missing') })).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'ResourceNotFoundException' });
    lambda.destroy();
  });
});

describe('startLocalStack', () => {
  it('with dataDir keeps topics, records and tables across a restart', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'tributary-dev-'));
    const topic = uniqueName('bookings');
    const table = uniqueName('views');
    try {
      const first = await startLocalStack({ dataDir, log: quiet });
      expect(first.ephemeral).toBe(false);
      try {
        const brokers = first.env.KAFKA_BROKERS!.split(',');
        await createTopic(brokers, topic, 1);
        await produce(brokers, topic, ['a', 'b', 'c']);
        const ddb = dynamoFor(first);
        await createTable(table, ddb);
        await ddb.send(new PutItemCommand({ TableName: table, Item: { pk: { S: 'view#v' }, sk: { S: 'key#k' }, version: { N: '7' } } }));
        ddb.destroy();
      } finally {
        await first.stop();
      }
      expect(await isListening('127.0.0.1', Number(first.kafka.brokers[0]!.split(':')[1]))).toBe(false);
      expect(await isListening('127.0.0.1', first.dynamodb.port)).toBe(false);
      expect(await isListening('127.0.0.1', first.lambda.port)).toBe(false);
      expect(existsSync(dataDir)).toBe(true);

      const second = await startLocalStack({ dataDir, log: quiet });
      try {
        expect(await highWatermark(second.env.KAFKA_BROKERS!.split(','), topic)).toBe('3');
        const ddb = dynamoFor(second);
        const got = await ddb.send(new GetItemCommand({ TableName: table, Key: { pk: { S: 'view#v' }, sk: { S: 'key#k' } } }));
        expect(got.Item?.version).toEqual({ N: '7' });
        ddb.destroy();
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('without dataDir uses a temporary directory that stop() removes; stop() is idempotent', async () => {
    const s = await startLocalStack({ log: quiet });
    expect(s.ephemeral).toBe(true);
    expect(existsSync(s.dataDir)).toBe(true);
    expect(Object.keys(s.env).sort()).toEqual([
      'AWS_ACCESS_KEY_ID',
      'AWS_ENDPOINT_URL_DYNAMODB',
      'AWS_ENDPOINT_URL_LAMBDA',
      'AWS_REGION',
      'AWS_SECRET_ACCESS_KEY',
      'KAFKA_BROKERS',
      'TRIBUTARY_LIVE_ENDPOINT',
    ]);
    expect(s.env.TRIBUTARY_LIVE_ENDPOINT).toBe(s.live?.managementEndpoint);
    await Promise.all([s.stop(), s.stop()]);
    await s.stop();
    expect(existsSync(s.dataDir)).toBe(false);
  });

  it('when one part cannot start, stops the parts that did and says which one failed', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const lambdaPort = (blocker.address() as { port: number }).port;
    const kafkaPort = await freePort();
    const dynamodbPort = await freePort();
    try {
      const error = await startLocalStack({
        ports: { kafka: kafkaPort, dynamodb: dynamodbPort, lambda: lambdaPort },
        log: quiet,
      }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'STACK_START_FAILED', context: { failed: ['lambda'] } });
      expect((error as Error).message).toMatch(/lambda: .*EADDRINUSE/);
      expect(await isListening('127.0.0.1', kafkaPort)).toBe(false);
      expect(await isListening('127.0.0.1', dynamodbPort)).toBe(false);
      expect(existsSync((error as { context: { dataDir: string } }).context.dataDir)).toBe(false);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
