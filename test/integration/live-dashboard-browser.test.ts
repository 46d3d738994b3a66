/**
 * The dashboard in real headless Chromium (Debian's `chromium`, driven by playwright-core): the
 * Vite bundle of dashboard/ served by the dashboard server of `tributary dev`, an engine folding
 * the gym app's classAttendance (on a topic of its own) whose fan-out reaches the page through
 * the WebSocket API emulator and `tributary/client`. A booking produced to Kafka changes the
 * class's count on the page; a screenshot is written to test-artifacts/. Skipped, and says so,
 * where /usr/bin/chromium is missing (.ci/run installs it).
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { chromium, type Browser } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboardServer, type DashboardServer } from '../../cli/internal/dashboard.ts';
import { startEngine, type Engine } from '../../engine/index.ts';
import { decodeBookingEvent, reduceClassAttendance, toMessage, type BookingEvent, type ClassAttendance } from '../../functions/app.ts';
import { createLiveHandlers, registerLiveHandlers, signLiveToken } from '../../live/index.ts';
import { startLambdaEndpoint, startWebSocketApi, type LambdaEndpoint, type WebSocketApi } from '../../local/index.ts';
import { LIVE_FUNCTIONS, LIVE_ROUTES } from '../../sdk/contract/index.ts';
import { defineApp, defineView } from '../../sdk/index.ts';
import { connectProducer, testKafka } from './fixtures/engine-support.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, LOCAL_CREDENTIALS, stack, uniqueName, waitFor } from './helpers.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
const SECRET = 'live-dashboard-browser-test-secret';

const booking = (classId: string, memberId: string, capacity: number): BookingEvent => ({
  type: 'booked',
  bookingId: `${classId}-${memberId}`,
  classId,
  memberId,
  classStartsAt: '2026-12-24T18:00:00.000Z',
  capacity,
  at: new Date().toISOString(),
});

describe.skipIf(!existsSync(CHROMIUM))('the dashboard in headless Chromium', () => {
  const dynamodb = dynamoClient();
  let lambda: LambdaEndpoint;
  let api: WebSocketApi;
  let engine: Engine | undefined;
  let dashboard: DashboardServer;
  let browser: Browser | undefined;
  let topic: string;
  const outDir = path.join(REPO_ROOT, 'node_modules', '.cache', `dashboard-test-${process.pid}`);

  beforeAll(async () => {
    const table = await createTable(uniqueName('dash'));
    topic = await createTopic(stack().kafkaBrokers, uniqueName('dash-bookings'), 1);
    // The gym app's classAttendance, on a topic of this test's own.
    const classAttendance = defineView({
      name: 'classAttendance',
      source: topic,
      decode: decodeBookingEvent,
      key: (event: BookingEvent) => event.classId,
      initial: (): ClassAttendance => ({ classId: '', classStartsAt: '', capacity: 0, booked: 0, attendees: [], waitlist: [], cancellations: 0, turnedAway: 0 }),
      reduce: reduceClassAttendance,
      live: true,
    });
    const app = defineApp({ name: uniqueName('dash-app').slice(0, 40), views: [classAttendance] });
    const [bundled] = await Promise.all([
      build({ configFile: path.join(REPO_ROOT, 'dashboard', 'vite.config.ts'), build: { outDir, emptyOutDir: true, sourcemap: false }, logLevel: 'warn' }),
      (async () => {
        lambda = await startLambdaEndpoint();
        api = await startWebSocketApi({ lambdaEndpoint: lambda.endpoint, routes: LIVE_ROUTES, authorizer: LIVE_FUNCTIONS.authorizer, region: stack().region });
      })(),
    ]);
    void bundled;
    const management = new ApiGatewayManagementApiClient({ endpoint: api.managementEndpoint, region: stack().region, credentials: LOCAL_CREDENTIALS });
    registerLiveHandlers(lambda, createLiveHandlers(app, { dynamodb, tableName: table, management, auth: { hmacSecret: SECRET } }));
    const token = await signLiveToken({ secret: SECRET, claims: { sub: 'browser-test' } });
    dashboard = await startDashboardServer({ dir: outDir, config: () => ({ app: app.name, views: ['classAttendance'], live: { url: api.url, token } }) });
    engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'live-dashboard', brokers: stack().kafkaBrokers },
      dynamodb,
      lambda: lambdaClient(lambda.endpoint),
      groupId: uniqueName('dash-group'),
      healthPort: null,
      logLevel: 'warn',
      logSink: () => {},
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 1_000,
    });
    await engine.ready;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await engine?.stop();
    await dashboard?.stop();
    await api?.stop();
    await lambda?.stop();
  });

  it('shows a class\u2019s count change on the page when a booking arrives', async () => {
    const producer = await connectProducer(testKafka('live-dashboard-producer'));
    try {
      // One booking before the page opens (its snapshot), one after (a pushed change).
      await producer.send({ topic, messages: [toMessage(booking('class-07', 'member-1', 12))] });
      const page = await browser!.newPage({ viewport: { width: 1200, height: 700 } });
      await page.goto(dashboard.url);
      const booked = page.locator('tr[data-class="class-07"] [data-field="booked"]');
      await booked.waitFor({ timeout: 15_000 });
      await waitFor(async () => (await booked.getAttribute('data-booked')) === '1', { timeoutMs: 15_000, message: 'class-07 shows 1 booked' });
      expect(await booked.textContent()).toBe('1 / 12');

      await producer.send({ topic, messages: [toMessage(booking('class-07', 'member-2', 12))] });
      await waitFor(async () => (await booked.getAttribute('data-booked')) === '2', { timeoutMs: 15_000, message: 'class-07 shows 2 booked after the second booking' });
      expect(await booked.textContent()).toBe('2 / 12');
      expect(await page.locator('#status').textContent()).toBe('open');
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });
    } finally {
      await producer.disconnect();
    }
  });
});
