/**
 * The dashboard server of `tributary dev --dashboard <dir>`: serves a static bundle (the
 * example app's `dashboard/`, built by Vite) on loopback, with two dev-only endpoints beside it:
 * - `GET /config.json`: where the live WebSocket API is and a token for it, the app's views;
 * - `GET /events`: a Server-Sent Events stream of what the engine does, pushed as it happens:
 *   trigger deliveries (each invocation of a function on the local Lambda endpoint), dead
 *   letters (read from the dead-letter topic), and once a second the engine's counters (events
 *   per second, lag per view, changes delivered per view).
 * View states never come from here: the page subscribes to them through `tributary/client`, as
 * any client of the deployed app would. This feed is a development aid with no AWS counterpart.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Kafka, logLevel as kafkaLogLevel } from 'kafkajs';
import type { EngineStats } from '../../engine/index.ts';
import type { LocalHandler } from '../../local/index.ts';
import type { App } from '../../sdk/index.ts';
import { deadLetterLine } from './inspect.ts';

/** One invocation of a function by a trigger, as the Lambda endpoint ran it. */
export interface DeliveryEvent {
  readonly type: 'delivery';
  readonly at: number;
  readonly function: string;
  readonly trigger?: string;
  readonly view?: string;
  readonly changes: number;
  /** Keys of the changes (at most {@link MAX_KEYS_SHOWN}). */
  readonly keys: readonly string[];
  readonly ok: boolean;
  readonly error?: string;
  readonly durationMs: number;
}

/** One dead letter, as `tributary dead-letters list` prints it. */
export interface DeadLetterEvent {
  readonly type: 'deadLetter';
  readonly at: number;
  readonly line: string;
}

/** The engine's counters, sampled once a second. */
export interface StatsEvent {
  readonly type: 'stats';
  readonly at: number;
  /** Events folded per second since the last sample (all views). */
  readonly eventsPerSecond: number;
  readonly views: readonly { readonly name: string; readonly lag: number; readonly changesPerSecond: number }[];
}

/** What `/events` streams. */
export type DashboardEvent = DeliveryEvent | DeadLetterEvent | StatsEvent;

/** What `/config.json` answers. */
export interface DashboardConfig {
  readonly app: string;
  readonly views: readonly string[];
  /** The live WebSocket API, and a token its authorizer accepts; undefined without one. */
  readonly live?: { readonly url: string; readonly token?: string };
}

/** Options of {@link startDashboardServer}. */
export interface DashboardServerOptions {
  /** Folder of the built bundle (its `index.html` is `/`). */
  readonly dir: string;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Read for each `/config.json` request (the app may be reloaded). */
  readonly config: () => DashboardConfig;
}

/** A running dashboard server. */
export interface DashboardServer {
  readonly url: string;
  /** Sends an event to every open `/events` stream, and keeps it for streams opened later. */
  publish(event: DashboardEvent): void;
  stop(): Promise<void>;
}

/** Deliveries and dead letters a page opened later still gets. */
const RETAINED_EVENTS = 50;
/** Keys listed per delivery in the feed. */
export const MAX_KEYS_SHOWN = 5;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
};

/** Starts the dashboard server on loopback. */
export async function startDashboardServer(options: DashboardServerOptions): Promise<DashboardServer> {
  const root = path.resolve(options.dir);
  if (!existsSync(path.join(root, 'index.html'))) {
    throw new Error(`dashboard: ${path.join(root, 'index.html')} not found; build the dashboard first (npm run dashboard:build)`);
  }
  const streams = new Set<ServerResponse>();
  const retained: DashboardEvent[] = [];
  let latestStats: StatsEvent | undefined;

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://dashboard');
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url.pathname === '/config.json') {
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(options.config()));
      return;
    }
    if (url.pathname === '/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      for (const event of latestStats === undefined ? retained : [...retained, latestStats]) response.write(`data: ${JSON.stringify(event)}\n\n`);
      streams.add(response);
      request.on('close', () => streams.delete(response));
      return;
    }
    const file = path.resolve(root, `.${decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname)}`);
    if (!file.startsWith(`${root}${path.sep}`) || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${url.pathname}`);
      return;
    }
    response.writeHead(200, { 'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream' });
    if (request.method === 'HEAD') response.end();
    else createReadStream(file).pipe(response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.address}:${address.port}/`,
    publish(event) {
      if (event.type === 'stats') latestStats = event;
      else {
        retained.push(event);
        if (retained.length > RETAINED_EVENTS) retained.shift();
      }
      const frame = `data: ${JSON.stringify(event)}\n\n`;
      for (const stream of streams) stream.write(frame);
    },
    async stop() {
      for (const stream of streams) stream.end();
      streams.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}

/**
 * Wraps a function served on the local Lambda endpoint so each invocation by a trigger is
 * reported (`publish`) with its trigger, view, keys, outcome and duration; the handler's result
 * and errors pass through unchanged.
 */
export function reportDeliveries(name: string, handler: LocalHandler, publish: (event: DeliveryEvent) => void): LocalHandler {
  return async (event, context, callback) => {
    const started = Date.now();
    const payload = (event ?? {}) as { trigger?: unknown; view?: unknown; changes?: unknown };
    const changes = Array.isArray(payload.changes) ? (payload.changes as { key?: unknown }[]) : [];
    const base = {
      type: 'delivery' as const,
      function: name,
      ...(typeof payload.trigger === 'string' ? { trigger: payload.trigger } : {}),
      ...(typeof payload.view === 'string' ? { view: payload.view } : {}),
      changes: changes.length,
      keys: [...new Set(changes.map((c) => String(c.key)))].slice(0, MAX_KEYS_SHOWN),
    };
    try {
      const result = await handler(event, context, callback);
      const failures = (result as { batchItemFailures?: unknown[] } | undefined)?.batchItemFailures?.length ?? 0;
      publish({ ...base, at: Date.now(), ok: failures === 0, ...(failures > 0 ? { error: `${failures} change(s) failed` } : {}), durationMs: Date.now() - started });
      return result;
    } catch (error) {
      publish({ ...base, at: Date.now(), ok: false, error: (error as Error)?.message ?? String(error), durationMs: Date.now() - started });
      throw error;
    }
  };
}

/** What {@link startDevDashboard} reads of `tributary dev`. */
export interface DevDashboardOptions {
  readonly dir: string;
  readonly port: number;
  /** The current app (reloaded apps included). */
  readonly app: () => App;
  /** The running engine's counters; undefined while it restarts. */
  readonly stats: () => EngineStats | undefined;
  /** The live WebSocket API for the page, with a token its authorizer accepts; undefined without one. */
  readonly live: () => DashboardConfig['live'];
  /** Brokers, to follow the dead-letter topic. */
  readonly brokers: readonly string[];
  readonly print: (line: string) => void;
}

/** The dashboard of `tributary dev`: its server, the handler wrapper, the once-a-second sampler. */
export interface DevDashboard {
  readonly url: string;
  /** Wraps a handler served on the Lambda endpoint so its invocations are in the feed. */
  wrap(name: string, handler: LocalHandler): LocalHandler;
  /** Starts following the dead-letter topic (once it exists). */
  followDeadLetters(): void;
  stop(): Promise<void>;
}

/** How often the engine's counters are sampled for the charts. */
const STATS_INTERVAL_MS = 1_000;

/**
 * Starts the dashboard server of `tributary dev` and what feeds it: deliveries (through
 * {@link DevDashboard.wrap}), dead letters (a consumer of the dead-letter topic from its end, in
 * a throwaway group), and the engine's counters once a second.
 */
export async function startDevDashboard(options: DevDashboardOptions): Promise<DevDashboard> {
  const server = await startDashboardServer({
    dir: options.dir,
    port: options.port,
    config: () => {
      const app = options.app();
      const live = options.live();
      return { app: app.name, views: app.views.map((v) => v.name), ...(live === undefined ? {} : { live }) };
    },
  });
  const changesByView = new Map<string, number>();
  const publishDelivery = (event: DeliveryEvent) => {
    if (event.view !== undefined && event.ok) changesByView.set(event.view, (changesByView.get(event.view) ?? 0) + event.changes);
    server.publish(event);
  };

  let last = { at: Date.now(), events: 0, changes: new Map<string, number>() };
  const timer = setInterval(() => {
    const stats = options.stats();
    if (stats === undefined) return;
    const now = Date.now();
    const seconds = Math.max(0.001, (now - last.at) / 1000);
    const lagByTopic = new Map<string, number>();
    for (const [topicPartition, records] of Object.entries(stats.lag)) {
      const topic = topicPartition.slice(0, topicPartition.lastIndexOf('/'));
      lagByTopic.set(topic, (lagByTopic.get(topic) ?? 0) + records);
    }
    // A restarted engine counts from 0 again: never a negative rate.
    const events = Math.max(0, stats.eventsApplied - last.events);
    server.publish({
      type: 'stats',
      at: now,
      eventsPerSecond: events / seconds,
      views: options.app().views.map((view) => ({
        name: view.name,
        lag: lagByTopic.get(view.source) ?? 0,
        changesPerSecond: ((changesByView.get(view.name) ?? 0) - (last.changes.get(view.name) ?? 0)) / seconds,
      })),
    });
    last = { at: now, events: stats.eventsApplied, changes: new Map(changesByView) };
  }, STATS_INTERVAL_MS);
  timer.unref();

  // Dead letters as they are written: a group of its own that starts at the topic's end.
  const kafka = new Kafka({ clientId: 'tributary-dev-dashboard', brokers: [...options.brokers], logLevel: kafkaLogLevel.NOTHING });
  const groupId = `tributary-dev-dashboard-${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, sessionTimeout: 10_000 });
  let following: Promise<void> = Promise.resolve();
  const follow = () => (async () => {
    await consumer.connect();
    await consumer.subscribe({ topic: options.app().deadLetterTopic, fromBeginning: false });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        let letter: Record<string, unknown>;
        try {
          letter = JSON.parse(message.value?.toString('utf8') ?? 'null') as Record<string, unknown>;
        } catch {
          letter = { unreadable: message.value?.toString('utf8') };
        }
        const timestamp = new Date(Number(message.timestamp)).toISOString();
        server.publish({ type: 'deadLetter', at: Date.now(), line: deadLetterLine({ partition, offset: message.offset, timestamp, letter }) });
      },
    });
  })().catch((error: unknown) => options.print(`[dev] dashboard: not following dead letters: ${(error as Error).message}`));
  let followed = false;

  return {
    url: server.url,
    wrap: (name, handler) => reportDeliveries(name, handler, publishDelivery),
    followDeadLetters() {
      if (followed) return;
      followed = true;
      following = follow();
    },
    async stop() {
      clearInterval(timer);
      await following;
      if (followed) await consumer.disconnect().catch(() => undefined);
      const admin = kafka.admin();
      await admin.connect().then(() => admin.deleteGroups([groupId])).catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
      await server.stop();
    },
  };
}
