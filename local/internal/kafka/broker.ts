/**
 * The embedded Kafka-protocol broker: a TCP server on loopback that frames requests, decodes
 * the request header, dispatches to the API handlers and writes responses back in request
 * order (as Kafka guarantees per connection).
 */
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { LocalStackError } from '../errors.ts';
import { type ApiContext, type ApiSpec, ERROR, apiSpecs, apiVersionsUnsupported } from './apis.ts';
import { GroupCoordinator } from './groups.ts';
import { BrokerStore } from './log.ts';
import { MalformedRequestError, Reader, Writer } from './protocol.ts';

/** Options of {@link startKafkaBroker}. */
export interface KafkaBrokerOptions {
  /**
   * Interface to listen on.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * TCP port; 0 picks a free one.
   * @default 0
   */
  port?: number;
  /**
   * Directory for partition logs, topic metadata and committed offsets; they survive restarts.
   * @default undefined — everything in memory, lost on stop
   */
  dataDir?: string;
  /**
   * Create unknown topics, with `defaultPartitions` partitions, on Metadata requests that allow
   * it (Kafka's auto.create.topics.enable). A producer writing to an unknown topic asks Metadata
   * first, so it creates the topic; set false to make such writes fail with
   * UNKNOWN_TOPIC_OR_PARTITION, as on a cluster that turns auto-creation off.
   * @default true
   */
  autoCreateTopics?: boolean;
  /**
   * Partitions of auto-created topics and of CreateTopics with `num_partitions = -1`.
   * @default 1
   */
  defaultPartitions?: number;
  /**
   * Largest record batch, in bytes as sent (after compression), that Produce accepts (Kafka's
   * message.max.bytes); a larger one is refused with MESSAGE_TOO_LARGE and nothing of its
   * partition's records is stored.
   * @default 1048588
   */
  maxMessageBytes?: number;
  /**
   * Smallest session timeout a consumer may ask for (Kafka's group.min.session.timeout.ms).
   * @default 1000
   */
  groupMinSessionTimeoutMs?: number;
  /**
   * Largest session timeout a consumer may ask for (Kafka's group.max.session.timeout.ms).
   * @default 300000
   */
  groupMaxSessionTimeoutMs?: number;
  /**
   * Receives one line per notable event (topics created, group rebalances, refused requests).
   * @default undefined — silent
   */
  log?: (line: string) => void;
}

/** A running broker. */
export interface KafkaBroker {
  readonly kind: 'embedded';
  /** Host clients connect to. */
  readonly host: string;
  /** Port the broker listens on (the chosen one when `port` was 0). */
  readonly port: number;
  /** Bootstrap list for clients, e.g. `['127.0.0.1:40123']`. */
  readonly brokers: string[];
  /** Closes the listener and every connection, fails parked requests and flushes the files. */
  stop(): Promise<void>;
}

const DEFAULT_HOST = '127.0.0.1';
// Kafka's own default; a topic's partition count is normally chosen explicitly by CreateTopics.
const DEFAULT_PARTITIONS = 1;
// Kafka's default: code that writes to a topic nobody created works against a stock broker, so
// it works here too; a stricter cluster is one option away.
const DEFAULT_AUTO_CREATE_TOPICS = true;
// Kafka's default message.max.bytes (1 MiB plus the 12-byte log overhead of a batch): a record
// that a stock broker refuses must fail here too, not first in production.
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
// Low enough that tests may use short sessions to make failover fast; Kafka's default is 6 s.
const DEFAULT_MIN_SESSION_TIMEOUT_MS = 1000;
// Kafka's default group.max.session.timeout.ms (5 minutes).
const DEFAULT_MAX_SESSION_TIMEOUT_MS = 300_000;
// How often session and rebalance deadlines are checked; well below any session timeout.
const GROUP_TICK_MS = 100;
// A frame larger than this is treated as garbage rather than buffered (Kafka's default
// socket.request.max.bytes is 100 MiB).
const MAX_FRAME_BYTES = 100 * 1024 * 1024;

interface Slot {
  done: boolean;
  chunks: Buffer[] | null;
}

interface Waiter {
  check: () => boolean;
  timer: NodeJS.Timeout;
}

/**
 * Starts the embedded broker.
 *
 * @example
 * const broker = await startKafkaBroker({ dataDir: '.tributary/kafka' });
 * const kafka = new Kafka({ brokers: broker.brokers });
 * // ...
 * await broker.stop();
 */
export async function startKafkaBroker(options: KafkaBrokerOptions = {}): Promise<KafkaBroker> {
  const host = options.host ?? DEFAULT_HOST;
  const requestedPort = options.port ?? 0;
  const log = options.log ?? (() => {});
  const defaultPartitions = options.defaultPartitions ?? DEFAULT_PARTITIONS;
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new LocalStackError('INVALID_OPTION', `kafka broker port ${requestedPort} is invalid; use 0 (random) or 1-65535`, {
      context: { component: 'kafka', port: requestedPort },
    });
  }
  if (!Number.isInteger(defaultPartitions) || defaultPartitions < 1) {
    throw new LocalStackError('INVALID_OPTION', `defaultPartitions ${defaultPartitions} is invalid; use a positive integer`, {
      context: { component: 'kafka' },
    });
  }
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1) {
    throw new LocalStackError('INVALID_OPTION', `maxMessageBytes ${maxMessageBytes} is invalid; use a positive integer (Kafka's default is ${DEFAULT_MAX_MESSAGE_BYTES})`, {
      context: { component: 'kafka' },
    });
  }

  let store: BrokerStore;
  try {
    store = new BrokerStore(options.dataDir);
  } catch (cause) {
    throw new LocalStackError('INVALID_OPTION', `kafka broker could not open data directory ${options.dataDir}: ${String(cause)}; check that it is writable`, {
      context: { component: 'kafka', dataDir: options.dataDir },
      cause,
    });
  }
  const groups = new GroupCoordinator(
    {
      minSessionTimeoutMs: options.groupMinSessionTimeoutMs ?? DEFAULT_MIN_SESSION_TIMEOUT_MS,
      maxSessionTimeoutMs: options.groupMaxSessionTimeoutMs ?? DEFAULT_MAX_SESSION_TIMEOUT_MS,
    },
    log,
  );
  const waiters = new Set<Waiter>();
  let port = requestedPort;

  const ctx: ApiContext = {
    store,
    groups,
    host,
    port: () => port,
    autoCreateTopics: options.autoCreateTopics ?? DEFAULT_AUTO_CREATE_TOPICS,
    defaultPartitions,
    maxMessageBytes,
    log,
    notifyAppend: () => {
      for (const waiter of [...waiters]) {
        if (waiter.check()) {
          clearTimeout(waiter.timer);
          waiters.delete(waiter);
        }
      }
    },
    waitForData: (check, onTimeout, maxWaitMs) => {
      const waiter: Waiter = {
        check,
        timer: setTimeout(() => {
          waiters.delete(waiter);
          onTimeout();
        }, maxWaitMs),
      };
      waiters.add(waiter);
      return () => {
        clearTimeout(waiter.timer);
        waiters.delete(waiter);
      };
    },
  };

  const specs = apiSpecs();
  const byKey = new Map<number, ApiSpec>(specs.map((s) => [s.key, s]));
  const sockets = new Set<Socket>();

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const clientHost = socket.remoteAddress ?? host;
    const queue: Slot[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    // Bytes needed before the next frame can be handled (size prefix, then the whole frame).
    let needed = 4;
    let closed = false;
    const parked = new Set<() => void>();

    const flushQueue = (): void => {
      if (closed) return;
      let wrote = false;
      while (queue.length > 0 && queue[0]!.done) {
        const slot = queue.shift()!;
        if (slot.chunks !== null) {
          if (!wrote) socket.cork();
          wrote = true;
          for (const c of slot.chunks) socket.write(c);
        }
      }
      if (wrote) socket.uncork();
    };

    const fail = (why: string): void => {
      if (closed) return;
      closed = true;
      log(`kafka connection from ${clientHost}:${socket.remotePort} closed: ${why}`);
      socket.destroy();
    };

    const handleFrame = (frame: Buffer): void => {
      const r = new Reader(frame);
      const apiKey = r.int16();
      const version = r.int16();
      const correlationId = r.int32();
      const clientId = r.nullableString() ?? '';
      const spec = byKey.get(apiKey);
      const slot: Slot = { done: false, chunks: null };
      queue.push(slot);
      const finish = (w: Writer | null): void => {
        slot.done = true;
        slot.chunks = w === null ? null : w.finish();
        flushQueue();
      };
      if (spec === undefined || version < spec.minVersion || version > spec.maxVersion) {
        const w = new Writer(false).int32(correlationId);
        log(`kafka request with unsupported api key ${apiKey} version ${version} from client "${clientId}"`);
        finish(apiKey === 18 ? apiVersionsUnsupported(w, specs) : w.int16(ERROR.UNSUPPORTED_VERSION));
        return;
      }
      const flexible = version >= spec.firstFlexible;
      r.flexible = flexible;
      r.tags();
      const w = new Writer(false).int32(correlationId);
      // ApiVersions always answers with header v0, whatever the body version (KIP-511).
      if (flexible && apiKey !== 18) w.uvarint(0);
      w.flexible = flexible;
      const result = spec.handler(ctx, { version, clientId, clientHost, r, w, parked });
      if (result instanceof Promise) {
        result.then(finish, (err: unknown) => fail(`handler ${spec.name} failed: ${String(err)}`));
      } else finish(result);
    };

    socket.on('data', (data: Buffer) => {
      if (closed) return;
      pending.push(data);
      pendingBytes += data.length;
      // A large frame arrives in many chunks: join them only once the whole frame is here.
      if (pending.length > 1 && pendingBytes < needed) return;
      let buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      let pos = 0;
      try {
        while (buf.length - pos >= 4) {
          const size = buf.readInt32BE(pos);
          if (size < 8 || size > MAX_FRAME_BYTES) throw new MalformedRequestError(`frame size ${size} is out of range`);
          if (buf.length - pos - 4 < size) break;
          handleFrame(buf.subarray(pos + 4, pos + 4 + size));
          pos += 4 + size;
        }
      } catch (err) {
        fail(err instanceof MalformedRequestError ? `malformed request: ${err.message}` : `request failed: ${String(err)}`);
        return;
      }
      buf = buf.subarray(pos);
      pending = buf.length > 0 ? [buf] : [];
      pendingBytes = buf.length;
      needed = buf.length >= 4 ? 4 + Math.max(0, buf.readInt32BE(0)) : 4;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      for (const cancel of parked) cancel();
      parked.clear();
      sockets.delete(socket);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause) =>
      reject(
        new LocalStackError('INVALID_OPTION', `kafka broker could not listen on ${host}:${requestedPort}: ${String(cause)}; pick another port or 0`, {
          context: { component: 'kafka', port: requestedPort },
          cause,
        }),
      ),
    );
    server.listen(requestedPort, host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const tick = setInterval(() => groups.tick(), GROUP_TICK_MS);
  tick.unref();
  log(`kafka broker listening on ${host}:${port}${options.dataDir ? ` (data in ${options.dataDir})` : ' (in memory)'}`);

  let stopped: Promise<void> | undefined;
  return {
    kind: 'embedded',
    host,
    port,
    brokers: [`${host}:${port}`],
    stop(): Promise<void> {
      stopped ??= (async () => {
        clearInterval(tick);
        for (const w of waiters) clearTimeout(w.timer);
        waiters.clear();
        groups.close();
        const closing = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of sockets) s.destroy();
        await closing;
        store.close();
        log(`kafka broker on ${host}:${port} stopped`);
      })();
      return stopped;
    },
  };
}
