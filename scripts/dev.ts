/**
 * `npm run dev`: starts the embedded local stack (Kafka-protocol broker, DynamoDB Local, Lambda
 * Invoke API serving `functions/handlers`) with its data in `.tributary/` so topics, records
 * and tables survive a restart, prints where everything is, and stops cleanly on Ctrl-C or
 * SIGTERM. For development only, never production.
 *
 * Ports (env, 0 = random): TRIBUTARY_KAFKA_PORT (default 9092), TRIBUTARY_DYNAMODB_PORT
 * (default 8000), TRIBUTARY_LAMBDA_PORT (default 3001).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalStack, type LocalStack } from '../local/index.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Gitignored; delete it to start from empty topics and tables. */
const DATA_DIR = path.join(REPO_ROOT, '.tributary');
const FUNCTIONS_DIR = path.join(REPO_ROOT, 'functions', 'handlers');
/** The ports every Kafka and DynamoDB Local tutorial uses, so the printed env rarely changes. */
const DEFAULT_KAFKA_PORT = 9092;
const DEFAULT_DYNAMODB_PORT = 8000;
/** SAM CLI's local Lambda port. */
const DEFAULT_LAMBDA_PORT = 3001;

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`${name}=${JSON.stringify(raw)} is not a port; use an integer 0..65535 (0 = random) or unset it`);
  }
  return port;
}

/** Starts the dev stack; the lead's example-app wiring goes on top of this. */
export async function startDevStack(): Promise<LocalStack> {
  mkdirSync(DATA_DIR, { recursive: true });
  return startLocalStack({
    dataDir: DATA_DIR,
    ports: {
      kafka: portFromEnv('TRIBUTARY_KAFKA_PORT', DEFAULT_KAFKA_PORT),
      dynamodb: portFromEnv('TRIBUTARY_DYNAMODB_PORT', DEFAULT_DYNAMODB_PORT),
      lambda: portFromEnv('TRIBUTARY_LAMBDA_PORT', DEFAULT_LAMBDA_PORT),
    },
    ...(existsSync(FUNCTIONS_DIR) ? { functionsDir: FUNCTIONS_DIR } : {}),
    // Auto-create lets ad-hoc producers (kcat, scripts) write to new topics in dev.
    kafka: { autoCreateTopics: true },
    log: (line) => console.log(`[local] ${line}`),
  });
}

function printBanner(stack: LocalStack): void {
  const envFile = path.join(DATA_DIR, 'env');
  const exports = Object.entries(stack.env).map(([key, value]) => `export ${key}=${value}`);
  writeFileSync(envFile, `${exports.join('\n')}\n`);
  console.log(
    [
      '',
      'Tributary local stack is running — for DEVELOPMENT ONLY, not for production.',
      '',
      `  Kafka broker        ${stack.kafka.brokers.join(',')}`,
      `  DynamoDB Local      ${stack.dynamodb.endpoint}`,
      `  Lambda Invoke API   ${stack.lambda.endpoint}  (functions/handlers/<name>.ts)`,
      `  Data                ${stack.dataDir}  (delete it to start empty)`,
      '',
      `Point tools at it (also written to ${path.relative(process.cwd(), envFile) || envFile}, so \`source\` it):`,
      ...exports.map((line) => `  ${line}`),
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
}

async function main(): Promise<void> {
  const stack = await startDevStack();
  printBanner(stack);

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      console.log(`[local] ${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    console.log(`[local] ${signal}: stopping…`);
    stack.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`[local] stop failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  console.error(`[local] ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
