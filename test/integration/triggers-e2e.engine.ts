/**
 * Engine child process of the end-to-end trigger test: the real engine (startEngine) on the
 * test app, with a short session timeout so a replacement task takes over a SIGKILLed one's
 * partitions in seconds rather than the production default of 30 s.
 */
import { startEngine } from '../../engine/index.ts';
import { app } from './triggers-e2e.app.ts';

const engine = startEngine({
  app,
  tableName: process.env.TRIBUTARY_TABLE,
  kafka: { clientId: 'e2e-engine', brokers: (process.env.KAFKA_BROKERS ?? '').split(',') },
  groupId: process.env.E2E_GROUP,
  sessionTimeoutMs: 3_000,
  heartbeatIntervalMs: 500,
  healthPort: null,
  logLevel: 'warn',
});
await engine.ready;
process.stdout.write('E2E_ENGINE_READY\n');
await engine.done;
