/**
 * Start-up checks of an engine task, run before it joins its consumer group: the views table
 * exists with the key schema the engine writes, and every trigger's function exists. Found at
 * start, a wrong setting stops the task with a code and the setting to fix; found on the first
 * record, it cost retries and a half-processed batch.
 */
import { DescribeTableCommand, type TableDescription } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { classifyAwsError, TABLE_INDEXES, TABLE_KEY_SCHEMA } from '../../sdk/contract/index.ts';
import type { Trigger } from '../../sdk/index.ts';
import { EngineError, errorInfo } from './errors.ts';

/** The views table's keys, as the CDK stack and local ensureViewsTable create them (the shared contract). */
export const VIEWS_TABLE_KEYS = [
  { name: TABLE_KEY_SCHEMA.partitionKey, keyType: 'HASH', attributeType: 'S' },
  { name: TABLE_KEY_SCHEMA.sortKey, keyType: 'RANGE', attributeType: 'S' },
] as const;

function describeKeys(table: TableDescription): string {
  const types = new Map((table.AttributeDefinitions ?? []).map((a) => [a.AttributeName, a.AttributeType]));
  const keys = (table.KeySchema ?? []).map((k) => `${k.AttributeName} ${k.KeyType} ${types.get(k.AttributeName) ?? '?'}`);
  return keys.length === 0 ? 'no key schema' : keys.join(', ');
}

/**
 * What is wrong with a table's key schema for the engine, or undefined when it fits.
 *
 * @example
 * keySchemaProblem({ KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }] });
 * // 'key schema is id HASH ?; ...'
 */
export function keySchemaProblem(table: TableDescription): string | undefined {
  const types = new Map((table.AttributeDefinitions ?? []).map((a) => [a.AttributeName, a.AttributeType]));
  const schema = table.KeySchema ?? [];
  const fits =
    schema.length === VIEWS_TABLE_KEYS.length &&
    VIEWS_TABLE_KEYS.every((expected) =>
      schema.some((k) => k.AttributeName === expected.name && k.KeyType === expected.keyType && types.get(expected.name) === expected.attributeType),
    );
  if (fits) return undefined;
  const wanted = VIEWS_TABLE_KEYS.map((k) => `${k.name} ${k.keyType} ${k.attributeType}`).join(', ');
  return `key schema is ${describeKeys(table)}, the engine needs ${wanted}`;
}

/**
 * What is wrong with a table's global secondary indexes for the views layout (`TABLE_INDEXES`:
 * `byKey` and `closing`, KEYS_ONLY), or undefined when both are there. A table without them was
 * created for an earlier storage layout (or by hand): reads could not list its keys.
 *
 * @example
 * tableIndexProblem({ GlobalSecondaryIndexes: [] });
 * // 'index byKey (ixShard HASH S, ixKey RANGE S, KEYS_ONLY) is missing; ...'
 */
export function tableIndexProblem(table: TableDescription): string | undefined {
  const types = new Map((table.AttributeDefinitions ?? []).map((a) => [a.AttributeName, a.AttributeType]));
  const problems: string[] = [];
  for (const expected of Object.values(TABLE_INDEXES)) {
    const wanted = `${expected.partitionKey.name} HASH ${expected.partitionKey.type}, ${expected.sortKey.name} RANGE ${expected.sortKey.type}, ${expected.projection}`;
    const index = (table.GlobalSecondaryIndexes ?? []).find((i) => i.IndexName === expected.indexName);
    if (index === undefined) {
      problems.push(`index ${expected.indexName} (${wanted}) is missing`);
      continue;
    }
    const keys = index.KeySchema ?? [];
    const fits =
      keys.length === 2 &&
      keys.some((k) => k.AttributeName === expected.partitionKey.name && k.KeyType === 'HASH' && types.get(k.AttributeName) === expected.partitionKey.type) &&
      keys.some((k) => k.AttributeName === expected.sortKey.name && k.KeyType === 'RANGE' && types.get(k.AttributeName) === expected.sortKey.type) &&
      index.Projection?.ProjectionType === expected.projection;
    if (!fits) {
      const has = keys.map((k) => `${k.AttributeName} ${k.KeyType} ${types.get(k.AttributeName ?? '') ?? '?'}`).join(', ');
      problems.push(`index ${expected.indexName} is ${has}, ${index.Projection?.ProjectionType ?? '?'}, the layout needs ${wanted}`);
    }
  }
  if (problems.length === 0) return undefined;
  return `${problems.join('; ')} (a table created for an earlier storage layout cannot be read by this version: create a new table with the CDK stack or ensureViewsTable)`;
}

/** Checks the views table exists and has the engine's key schema and indexes; throws TABLE_NOT_FOUND or TABLE_SCHEMA_MISMATCH. */
export async function checkViewsTable(dynamodb: DynamoDBDocumentClient, tableName: string): Promise<void> {
  let table: TableDescription | undefined;
  try {
    table = (await dynamodb.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  } catch (error) {
    if (classifyAwsError(error).kind === 'not-found') {
      throw new EngineError(
        'TABLE_NOT_FOUND',
        `the views table "${tableName}" does not exist in this region/endpoint; set TRIBUTARY_TABLE to the table the CDK stack outputs (received ${JSON.stringify(tableName)}), or check AWS_REGION`,
        { cause: error, context: { tableName } },
      );
    }
    throw new EngineError('STORAGE_FAILED', `DescribeTable "${tableName}" failed at start-up: ${errorInfo(error).message}`, {
      retriable: true,
      cause: error,
      context: { tableName },
    });
  }
  const problem = table === undefined ? 'DescribeTable returned no table' : (keySchemaProblem(table) ?? tableIndexProblem(table));
  if (problem !== undefined) {
    throw new EngineError(
      'TABLE_SCHEMA_MISMATCH',
      `the table "${tableName}" is not a views table: ${problem}; set TRIBUTARY_TABLE to the views table the CDK stack outputs (received ${JSON.stringify(tableName)})`,
      { context: { tableName } },
    );
  }
}

/**
 * Checks every trigger's function exists, with a DryRun invocation (it validates the name and
 * the caller's permission without running the function); throws FUNCTION_NOT_FOUND. Other
 * failures are left to delivery, which retries them.
 */
export async function checkTriggerFunctions(
  lambda: LambdaClient,
  triggers: readonly Trigger<any>[],
  functionNames: Readonly<Record<string, string>>,
): Promise<void> {
  const deployed = new Map<string, Trigger<any>[]>();
  for (const trigger of triggers) {
    const name = functionNames[trigger.function] ?? trigger.function;
    deployed.set(name, [...(deployed.get(name) ?? []), trigger]);
  }
  const missing: { name: string; triggers: Trigger<any>[]; error: unknown }[] = [];
  await Promise.all(
    [...deployed].map(async ([name, users]) => {
      try {
        await lambda.send(new InvokeCommand({ FunctionName: name, InvocationType: 'DryRun' }));
      } catch (error) {
        if (classifyAwsError(error).kind === 'not-found') missing.push({ name, triggers: users, error });
      }
    }),
  );
  if (missing.length === 0) return;
  const list = missing
    .map((m) => `${m.triggers.map((t) => `trigger "${t.name}" -> function "${t.function}"`).join(', ')} is deployed as "${m.name}"`)
    .join('; ');
  throw new EngineError(
    'FUNCTION_NOT_FOUND',
    `trigger function(s) do not exist: ${list}; set TRIBUTARY_FUNCTION_NAMES to map each logical function name to its deployed name or ARN (received ${JSON.stringify(functionNames)})`,
    { cause: missing[0]!.error, context: { functions: missing.map((m) => m.name) } },
  );
}
