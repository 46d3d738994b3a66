import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { ensureViewsTable, startDynamoDbLocal, viewsTableInput } from '../../local/index.ts';
import { createTable, dynamoClient, stack, uniqueName } from './helpers.ts';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

describe('DynamoDB Local of the shared stack', () => {
  it('creates a views table (pk/sk, both KEYS_ONLY indexes, on demand) and round-trips an item, for any region and credentials', async () => {
    const ddb = dynamoClient();
    const table = await createTable(uniqueName('views'));
    const described = await ddb.send(new DescribeTableCommand({ TableName: table }));
    expect(described.Table?.TableStatus).toBe('ACTIVE');
    expect(described.Table?.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(described.Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    const indexes = (described.Table?.GlobalSecondaryIndexes ?? []).map((i) => [i.IndexName, i.KeySchema, i.Projection?.ProjectionType]);
    expect(indexes.sort((a, b) => String(a[0]).localeCompare(String(b[0])))).toEqual([
      ['byKey', [{ AttributeName: 'ixShard', KeyType: 'HASH' }, { AttributeName: 'ixKey', KeyType: 'RANGE' }], 'KEYS_ONLY'],
      ['closing', [{ AttributeName: 'closeShard', KeyType: 'HASH' }, { AttributeName: 'closeAt', KeyType: 'RANGE' }], 'KEYS_ONLY'],
    ]);

    await ddb.send(
      new PutItemCommand({
        TableName: table,
        Item: { pk: { S: 'v#attendance#spin-7' }, sk: { S: '_' }, version: { N: '3' } },
      }),
    );
    // -sharedDb: a client with another region and other dummy keys sees the same table.
    const other = new DynamoDBClient({
      endpoint: stack().dynamodbEndpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'someoneElse', secretAccessKey: 'x' },
    });
    try {
      const got = await other.send(
        new GetItemCommand({ TableName: table, Key: { pk: { S: 'v#attendance#spin-7' }, sk: { S: '_' } } }),
      );
      expect(got.Item?.version).toEqual({ N: '3' });
    } finally {
      other.destroy();
      ddb.destroy();
    }
  });
});

describe('ensureViewsTable', () => {
  it('accepts an existing views table as it is, and refuses one made for the earlier layout (no indexes)', async () => {
    const ddb = dynamoClient();
    try {
      const table = await createTable(uniqueName('again'));
      await ensureViewsTable(ddb, table);
      const earlier = uniqueName('v1-layout');
      const { GlobalSecondaryIndexes: _indexes, ...withoutIndexes } = viewsTableInput(earlier);
      await ddb.send(new CreateTableCommand({ ...withoutIndexes, AttributeDefinitions: withoutIndexes.AttributeDefinitions!.filter((a) => a.AttributeName === 'pk' || a.AttributeName === 'sk') }));
      const error = await ensureViewsTable(ddb, earlier).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'TABLE_CREATE_FAILED', context: { missing: ['byKey', 'closing'] } });
      expect((error as Error).message).toMatch(/earlier storage layout.*\.tributary/);
    } finally {
      ddb.destroy();
    }
  });
});

describe('startDynamoDbLocal', () => {
  it('keeps tables in dataDir across a restart, and stop() really stops the JVM', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'tributary-ddb-'));
    const table = uniqueName('persisted');
    try {
      const first = await startDynamoDbLocal({ dataDir });
      const client1 = new DynamoDBClient({ endpoint: first.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
      try {
        await createTable(table, client1);
        await client1.send(new PutItemCommand({ TableName: table, Item: { pk: { S: 'p' }, sk: { S: 's' }, n: { N: '1' } } }));
      } finally {
        await first.stop();
      }
      const afterStop = await client1.send(new ListTablesCommand({})).catch((e: unknown) => e);
      client1.destroy();
      expect(afterStop).toBeInstanceOf(Error);
      expect(String((afterStop as NodeJS.ErrnoException).code)).toBe('ECONNREFUSED');

      const second = await startDynamoDbLocal({ dataDir });
      const client2 = new DynamoDBClient({ endpoint: second.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
      try {
        const got = await client2.send(new GetItemCommand({ TableName: table, Key: { pk: { S: 'p' }, sk: { S: 's' } } }));
        expect(got.Item?.n).toEqual({ N: '1' });
      } finally {
        client2.destroy();
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('fails with DYNAMODB_START_FAILED when a fixed port is taken', async () => {
    // A listener that accepts and never answers, like a foreign process on the port.
    const blocker: Server = createServer();
    const sockets = new Set<Socket>();
    blocker.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => blocker.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const error = await startDynamoDbLocal({ port }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'DYNAMODB_START_FAILED', context: { port, portInUse: true } });
      expect((error as Error).message).toContain('in use');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('says how to install Java when it is missing, and validates the port', async () => {
    await expect(startDynamoDbLocal({ javaCommand: 'java-that-is-not-installed' })).rejects.toMatchObject({
      code: 'JAVA_NOT_FOUND',
      message: expect.stringContaining('apt-get install -y default-jre-headless'),
    });
    await expect(startDynamoDbLocal({ javaCommand: '/nonexistent/bin/java' })).rejects.toMatchObject({ code: 'JAVA_NOT_FOUND' });
    await expect(startDynamoDbLocal({ port: -1 })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
  });
});
