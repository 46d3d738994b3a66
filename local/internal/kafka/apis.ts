/**
 * Request handlers, one per Kafka API, each written once for every version it advertises;
 * version gates follow Apache Kafka's message schemas
 * (clients/src/main/resources/common/message/*.json).
 */
import type { BrokerStore, Topic } from './log.ts';
import type { GroupCoordinator } from './groups.ts';
import { Reader, Writer } from './protocol.ts';
import { splitBatches } from './records.ts';

/** Kafka error codes used by the handlers. */
export const ERROR = {
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  MESSAGE_TOO_LARGE: 10,
  INVALID_TOPIC_EXCEPTION: 17,
  INVALID_REQUIRED_ACKS: 21,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REQUEST: 42,
  UNKNOWN_TOPIC_ID: 100,
} as const;

/** Everything a handler may use. */
export interface ApiContext {
  readonly store: BrokerStore;
  readonly groups: GroupCoordinator;
  readonly host: string;
  readonly port: () => number;
  readonly autoCreateTopics: boolean;
  readonly defaultPartitions: number;
  /** Largest record batch Produce accepts, in bytes (Kafka's message.max.bytes). */
  readonly maxMessageBytes: number;
  readonly log: (line: string) => void;
  /** Wakes fetch long-polls waiting on this partition. */
  readonly notifyAppend: (topic: string, partition: number) => void;
  /** Registers a parked fetch; returns a cancel function. */
  readonly waitForData: (check: () => boolean, onTimeout: () => void, maxWaitMs: number) => () => void;
}

/** One decoded request as handlers see it. */
export interface ApiRequest {
  readonly version: number;
  readonly clientId: string;
  readonly clientHost: string;
  readonly r: Reader;
  /** Response writer with the response header already written. */
  readonly w: Writer;
  /** Cancels of requests parked on this connection (fetch long-polls), run when it closes. */
  readonly parked: Set<() => void>;
}

/** A handler returns the response writer, or null when no response is sent (Produce acks=0). */
export type Handler = (ctx: ApiContext, req: ApiRequest) => Writer | null | Promise<Writer | null>;

/** An API the broker serves: versions it advertises and the first flexible version. */
export interface ApiSpec {
  readonly key: number;
  readonly name: string;
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly firstFlexible: number;
  readonly handler: Handler;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
const CLUSTER_ID = 'tributary-local';
const NODE_ID = 0;
const ZERO_UUID = Buffer.alloc(16);

function uuidKey(id: Buffer): string {
  return id.toString('hex');
}

// ---------------------------------------------------------------- ApiVersions (18)

function apiVersions(ctx: ApiContext, { version, r, w }: ApiRequest, specs: readonly ApiSpec[]): Writer {
  if (version >= 3) {
    r.string(); // client_software_name
    r.string(); // client_software_version
    r.tags();
  }
  w.int16(ERROR.NONE);
  w.array(specs, (w, s) => {
    w.int16(s.key).int16(s.minVersion).int16(s.maxVersion).tags();
  });
  if (version >= 1) w.int32(0);
  return w.tags();
}

/** ApiVersions answer for a version the broker does not know: v0 body, so any client can read it. */
export function apiVersionsUnsupported(w: Writer, specs: readonly ApiSpec[]): Writer {
  w.int16(ERROR.UNSUPPORTED_VERSION);
  w.array(specs, (w, s) => {
    w.int16(s.key).int16(s.minVersion).int16(s.maxVersion);
  });
  return w;
}

// ---------------------------------------------------------------- Metadata (3)

function metadata(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  const requested = r.nullableArray((r) => {
    const id = version >= 10 ? r.uuid() : null;
    const name = r.nullableString();
    r.tags();
    return { id, name };
  });
  const allowAutoCreate = version >= 4 ? r.bool() : true;
  if (version >= 8 && version <= 10) r.bool(); // include_cluster_authorized_operations
  if (version >= 8) r.bool(); // include_topic_authorized_operations
  r.tags();

  type Entry = { name: string | null; id: Buffer | null; topic: Topic | undefined; errorCode: number };
  let entries: Entry[];
  if (requested === null || (version === 0 && requested.length === 0)) {
    entries = [...ctx.store.topics.values()].map((t) => ({ name: t.name, id: t.id, topic: t, errorCode: 0 }));
  } else {
    entries = requested.map(({ id, name }) => {
      let topic = name !== null ? ctx.store.topics.get(name) : undefined;
      if (topic === undefined && id !== null && !id.equals(ZERO_UUID)) topic = ctx.store.topicsById.get(uuidKey(id));
      // Created here and answered with its partitions at once. Kafka (KRaft) answers the first
      // request UNKNOWN_TOPIC_OR_PARTITION while its controller creates the topic; clients retry
      // that, so skipping the wait changes no outcome.
      if (topic === undefined && name !== null && ctx.autoCreateTopics && allowAutoCreate && TOPIC_NAME.test(name)) {
        topic = ctx.store.createTopic(name, ctx.defaultPartitions);
        ctx.log(`auto-created topic ${name} with ${ctx.defaultPartitions} partition(s)`);
      }
      if (topic !== undefined) return { name: topic.name, id: topic.id, topic, errorCode: 0 };
      const errorCode =
        name === null ? ERROR.UNKNOWN_TOPIC_ID : !TOPIC_NAME.test(name) ? ERROR.INVALID_TOPIC_EXCEPTION : ERROR.UNKNOWN_TOPIC_OR_PARTITION;
      return { name, id, topic: undefined, errorCode };
    });
  }

  if (version >= 3) w.int32(0);
  w.array([0], (w) => {
    w.int32(NODE_ID).string(ctx.host).int32(ctx.port());
    if (version >= 1) w.nullableString(null);
    w.tags();
  });
  if (version >= 2) w.nullableString(CLUSTER_ID);
  if (version >= 1) w.int32(NODE_ID);
  w.array(entries, (w, e) => {
    w.int16(e.errorCode);
    w.nullableString(e.name);
    if (version >= 10) w.uuid(e.id);
    if (version >= 1) w.bool(false);
    w.array(e.topic?.partitions ?? [], (w, p) => {
      w.int16(0).int32(p.partition).int32(NODE_ID);
      if (version >= 7) w.int32(0);
      w.array([NODE_ID], (w, n) => w.int32(n));
      w.array([NODE_ID], (w, n) => w.int32(n));
      if (version >= 5) w.array([], () => {});
      w.tags();
    });
    if (version >= 8) w.int32(-2147483648);
    w.tags();
  });
  if (version >= 8 && version <= 10) w.int32(-2147483648);
  return w.tags();
}

// ---------------------------------------------------------------- CreateTopics (19)

function createTopics(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  const topics = r.array((r) => {
    const name = r.string();
    const numPartitions = r.int32();
    const replicationFactor = r.int16();
    const assignments = r.array((r) => {
      r.int32();
      r.array((r) => r.int32());
      r.tags();
      return 1;
    });
    r.array((r) => {
      r.string();
      r.nullableString();
      r.tags();
    });
    r.tags();
    return { name, numPartitions, replicationFactor, assignments: assignments.length };
  });
  r.int32(); // timeout_ms
  const validateOnly = version >= 1 ? r.bool() : false;
  r.tags();

  const results = topics.map((t) => {
    const partitions = t.numPartitions === -1 ? (t.assignments > 0 ? t.assignments : ctx.defaultPartitions) : t.numPartitions;
    let errorCode: number = ERROR.NONE;
    let message: string | null = null;
    let topic: Topic | undefined;
    if (!TOPIC_NAME.test(t.name)) {
      errorCode = ERROR.INVALID_TOPIC_EXCEPTION;
      message = `topic name "${t.name}" is invalid; use 1-249 of [a-zA-Z0-9._-]`;
    } else if (ctx.store.topics.has(t.name)) {
      errorCode = ERROR.TOPIC_ALREADY_EXISTS;
      message = `topic "${t.name}" already exists`;
    } else if (partitions <= 0) {
      errorCode = ERROR.INVALID_PARTITIONS;
      message = `num_partitions ${t.numPartitions} is invalid; use a positive count or -1 for the default`;
    } else if (!validateOnly) {
      topic = ctx.store.createTopic(t.name, partitions);
      ctx.log(`created topic ${t.name} with ${partitions} partition(s)`);
    }
    return { name: t.name, id: topic?.id ?? ZERO_UUID, errorCode, message, partitions };
  });

  if (version >= 2) w.int32(0);
  w.array(results, (w, t) => {
    w.string(t.name);
    if (version >= 7) w.uuid(t.id);
    w.int16(t.errorCode);
    if (version >= 1) w.nullableString(t.message);
    if (version >= 5) {
      w.int32(t.errorCode === 0 ? t.partitions : -1).int16(t.errorCode === 0 ? 1 : -1);
      w.array([], () => {});
    }
    w.tags();
  });
  return w.tags();
}

// ---------------------------------------------------------------- DeleteTopics (20)

function deleteTopics(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  let requested: { name: string | null; id: Buffer | null }[];
  if (version >= 6) {
    requested = r.array((r) => {
      const name = r.nullableString();
      const id = r.uuid();
      r.tags();
      return { name, id };
    });
  } else {
    requested = r.array((r) => ({ name: r.string(), id: null }));
  }
  r.int32();
  r.tags();
  const results = requested.map(({ name, id }) => {
    let topic = name !== null ? ctx.store.topics.get(name) : undefined;
    if (topic === undefined && id !== null && !id.equals(ZERO_UUID)) topic = ctx.store.topicsById.get(uuidKey(id));
    if (topic === undefined) {
      return { name, id, errorCode: version >= 6 && name === null ? ERROR.UNKNOWN_TOPIC_ID : ERROR.UNKNOWN_TOPIC_OR_PARTITION };
    }
    ctx.store.deleteTopic(topic.name);
    ctx.log(`deleted topic ${topic.name}`);
    return { name: topic.name, id: topic.id, errorCode: ERROR.NONE };
  });
  if (version >= 1) w.int32(0);
  w.array(results, (w, t) => {
    w.nullableString(t.name);
    if (version >= 6) w.uuid(t.id);
    w.int16(t.errorCode);
    if (version >= 5) w.nullableString(null);
    w.tags();
  });
  return w.tags();
}

// ---------------------------------------------------------------- Produce (0)

function produce(ctx: ApiContext, { version, r, w }: ApiRequest): Writer | null {
  if (version >= 3) r.nullableString(); // transactional_id
  const acks = r.int16();
  r.int32(); // timeout_ms
  const topics = r.array((r) => {
    const name = r.string();
    const partitions = r.array((r) => {
      const index = r.int32();
      const records = r.nullableBytes();
      r.tags();
      return { index, records };
    });
    r.tags();
    return { name, partitions };
  });
  r.tags();

  const results = topics.map((t) => {
    const topic = ctx.store.topics.get(t.name);
    return {
      name: t.name,
      partitions: t.partitions.map((p) => {
        const log = topic?.partitions[p.index];
        const result = { index: p.index, errorCode: ERROR.NONE as number, baseOffset: -1, message: null as string | null };
        if (acks !== 0 && acks !== 1 && acks !== -1) {
          result.errorCode = ERROR.INVALID_REQUIRED_ACKS;
          return result;
        }
        if (log === undefined) {
          result.errorCode = ERROR.UNKNOWN_TOPIC_OR_PARTITION;
          return result;
        }
        const batches = splitBatches(p.records ?? Buffer.alloc(0));
        if (!Array.isArray(batches)) {
          result.errorCode = batches.errorCode;
          result.message = batches.reason;
          ctx.log(`produce to ${t.name}/${p.index} refused: ${batches.reason}`);
          return result;
        }
        // Checked for every batch before any is stored: Kafka validates the whole partition's
        // records first, so one oversized batch refuses them all.
        const oversized = batches.find((b) => b.buf.length > ctx.maxMessageBytes);
        if (oversized !== undefined) {
          result.errorCode = ERROR.MESSAGE_TOO_LARGE;
          result.message = `record batch of ${oversized.buf.length} bytes exceeds message.max.bytes ${ctx.maxMessageBytes}`;
          ctx.log(
            `produce to ${t.name}/${p.index} refused: ${result.message}; send smaller batches or start the broker with a larger maxMessageBytes`,
          );
          return result;
        }
        let appended = false;
        for (const batch of batches) {
          const outcome = log.append(batch);
          if (outcome.kind === 'rejected') {
            result.errorCode = outcome.errorCode;
            result.message = outcome.reason;
            ctx.log(`produce to ${t.name}/${p.index} refused: ${outcome.reason}`);
            break;
          }
          if (result.baseOffset < 0) result.baseOffset = outcome.baseOffset;
          if (outcome.kind === 'appended') appended = true;
        }
        if (appended) ctx.notifyAppend(t.name, p.index);
        return result;
      }),
    };
  });
  if (acks === 0) return null;

  w.array(results, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      w.int32(p.index).int16(p.errorCode).int64(p.baseOffset);
      if (version >= 2) w.int64(-1); // log_append_time_ms: -1 = CreateTime
      if (version >= 5) w.int64(0);
      if (version >= 8) {
        w.array([], () => {});
        w.nullableString(p.message);
      }
      w.tags();
    });
    w.tags();
  });
  if (version >= 1) w.int32(0);
  return w.tags();
}

// ---------------------------------------------------------------- Fetch (1)

interface FetchPartition {
  readonly partition: number;
  readonly fetchOffset: number;
  readonly partitionMaxBytes: number;
}
interface FetchTopic {
  readonly name: string | null;
  readonly id: Buffer | null;
  readonly topic: Topic | undefined;
  readonly partitions: FetchPartition[];
}

function fetch(ctx: ApiContext, { version, r, w, parked }: ApiRequest): Writer | Promise<Writer> {
  if (version <= 14) r.int32(); // replica_id
  const maxWaitMs = r.int32();
  const minBytes = r.int32();
  const maxBytes = version >= 3 ? r.int32() : 0x7fffffff;
  if (version >= 4) r.int8(); // isolation_level: no transactions here, both levels read the same
  if (version >= 7) {
    r.int32(); // session_id
    r.int32(); // session_epoch
  }
  const topics: FetchTopic[] = r.array((r) => {
    const name = version <= 12 ? r.string() : null;
    const id = version >= 13 ? r.uuid() : null;
    const partitions = r.array((r) => {
      const partition = r.int32();
      if (version >= 9) r.int32(); // current_leader_epoch
      const fetchOffset = r.int64n();
      if (version >= 12) r.int32(); // last_fetched_epoch
      if (version >= 5) r.int64(); // log_start_offset
      const partitionMaxBytes = r.int32();
      r.tags();
      return { partition, fetchOffset, partitionMaxBytes };
    });
    r.tags();
    const topic = name !== null ? ctx.store.topics.get(name) : ctx.store.topicsById.get(uuidKey(id!));
    return { name, id, topic, partitions };
  });
  if (version >= 7) {
    r.array((r) => {
      if (version <= 12) r.string();
      else r.uuid();
      r.array((r) => r.int32());
      r.tags();
    });
  }
  if (version >= 11) r.string(); // rack_id
  r.tags();

  const available = (): { bytes: number; error: boolean } => {
    let bytes = 0;
    let error = false;
    for (const t of topics) {
      for (const p of t.partitions) {
        const log = t.topic?.partitions[p.partition];
        if (log === undefined || p.fetchOffset < 0 || p.fetchOffset > log.logEndOffset) {
          error = true;
          continue;
        }
        bytes += log.availableBytes(p.fetchOffset, Math.min(p.partitionMaxBytes, minBytes));
      }
    }
    return { bytes, error };
  };

  const respond = (): Writer => {
    let budget = maxBytes;
    if (version >= 1) w.int32(0);
    if (version >= 7) w.int16(ERROR.NONE).int32(0);
    w.array(topics, (w, t) => {
      if (version <= 12) w.string(t.name ?? '');
      else w.uuid(t.id);
      w.array(t.partitions, (w, p) => {
        const log = t.topic?.partitions[p.partition];
        let errorCode: number = ERROR.NONE;
        let batches: Buffer[] = [];
        if (log === undefined) {
          errorCode = t.topic === undefined && version >= 13 ? ERROR.UNKNOWN_TOPIC_ID : ERROR.UNKNOWN_TOPIC_OR_PARTITION;
        } else if (p.fetchOffset < 0 || p.fetchOffset > log.logEndOffset) {
          errorCode = ERROR.OFFSET_OUT_OF_RANGE;
        } else if (budget > 0) {
          const read = log.read(p.fetchOffset, Math.min(p.partitionMaxBytes, budget));
          batches = read.batches;
          budget -= read.bytes;
        }
        const hw = log?.logEndOffset ?? -1;
        w.int32(p.partition).int16(errorCode).int64(hw);
        if (version >= 4) w.int64(hw);
        if (version >= 5) w.int64(log?.logStartOffset ?? -1);
        if (version >= 4) w.array(errorCode === 0 ? [] : null, () => {});
        if (version >= 11) w.int32(-1);
        w.records(batches);
        w.tags();
      });
      w.tags();
    });
    return w.tags();
  };

  const now = available();
  if (now.error || now.bytes >= minBytes || maxWaitMs <= 0) return respond();
  return new Promise<Writer>((resolve) => {
    const cancel = ctx.waitForData(
      () => {
        const a = available();
        if (a.error || a.bytes >= minBytes) {
          parked.delete(cancel);
          resolve(respond());
          return true;
        }
        return false;
      },
      () => {
        parked.delete(cancel);
        resolve(respond());
      },
      maxWaitMs,
    );
    parked.add(cancel);
  });
}

// ---------------------------------------------------------------- ListOffsets (2)

function listOffsets(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  r.int32(); // replica_id
  if (version >= 2) r.int8(); // isolation_level
  const topics = r.array((r) => {
    const name = r.string();
    const partitions = r.array((r) => {
      const partition = r.int32();
      if (version >= 4) r.int32(); // current_leader_epoch
      const timestamp = r.int64n();
      if (version === 0) r.int32(); // max_num_offsets
      r.tags();
      return { partition, timestamp };
    });
    r.tags();
    return { name, partitions };
  });
  if (version >= 6) r.tags();
  if (version >= 2) w.int32(0);
  w.array(topics, (w, t) => {
    const topic = ctx.store.topics.get(t.name);
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      const log = topic?.partitions[p.partition];
      let offset = -1;
      let timestamp = -1;
      let errorCode: number = ERROR.NONE;
      if (log === undefined) errorCode = ERROR.UNKNOWN_TOPIC_OR_PARTITION;
      else if (p.timestamp === -1) offset = log.logEndOffset;
      else if (p.timestamp === -2) offset = log.logStartOffset;
      else if (p.timestamp === -3) offset = log.logEndOffset; // max timestamp: approximated by the log end
      else ({ offset, timestamp } = log.offsetForTimestamp(p.timestamp));
      w.int32(p.partition).int16(errorCode);
      if (version === 0) w.array(offset >= 0 ? [offset] : [], (w, o) => w.int64(o));
      else {
        w.int64(timestamp).int64(offset);
        if (version >= 4) w.int32(0);
      }
      w.tags();
    });
    w.tags();
  });
  return w.tags();
}

// ---------------------------------------------------------------- FindCoordinator (10)

function findCoordinator(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  let keys: string[] = [];
  if (version <= 3) keys = [r.string()];
  if (version >= 1) r.int8(); // key_type: group and transaction coordinators are both this broker
  if (version >= 4) keys = r.array((r) => r.string());
  r.tags();
  if (version >= 1) w.int32(0);
  if (version <= 3) {
    w.int16(ERROR.NONE);
    if (version >= 1) w.nullableString(null);
    w.int32(NODE_ID).string(ctx.host).int32(ctx.port());
  } else {
    w.array(keys, (w, key) => {
      w.string(key).int32(NODE_ID).string(ctx.host).int32(ctx.port()).int16(ERROR.NONE).nullableString(null).tags();
    });
  }
  return w.tags();
}

// ---------------------------------------------------------------- JoinGroup (11)

function joinGroup(ctx: ApiContext, { version, r, w, clientId, clientHost }: ApiRequest): Promise<Writer> {
  const groupId = r.string();
  const sessionTimeoutMs = r.int32();
  const rebalanceTimeoutMs = version >= 1 ? r.int32() : sessionTimeoutMs;
  const memberId = r.string();
  const groupInstanceId = version >= 5 ? r.nullableString() : null;
  const protocolType = r.string();
  const protocols = r.array((r) => {
    const name = r.string();
    const metadata = Buffer.from(r.bytes());
    r.tags();
    return { name, metadata };
  });
  if (version >= 8) r.nullableString(); // reason
  r.tags();
  return new Promise((resolve) => {
    ctx.groups.join(
      { groupId, sessionTimeoutMs, rebalanceTimeoutMs, memberId, groupInstanceId, protocolType, protocols, clientId, clientHost },
      (res) => {
        if (version >= 2) w.int32(0);
        w.int16(res.errorCode).int32(res.generationId);
        if (version >= 7) w.nullableString(res.protocolType);
        if (version >= 7) w.nullableString(res.protocolName);
        else w.string(res.protocolName ?? '');
        w.string(res.leader);
        if (version >= 9) w.bool(false);
        w.string(res.memberId);
        w.array(res.members, (w, m) => {
          w.string(m.memberId);
          if (version >= 5) w.nullableString(m.groupInstanceId);
          w.bytes(m.metadata);
          w.tags();
        });
        resolve(w.tags());
      },
    );
  });
}

// ---------------------------------------------------------------- SyncGroup (14)

function syncGroup(ctx: ApiContext, { version, r, w }: ApiRequest): Promise<Writer> {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  if (version >= 3) r.nullableString(); // group_instance_id
  if (version >= 5) {
    r.nullableString(); // protocol_type
    r.nullableString(); // protocol_name
  }
  const assignments = r.array((r) => {
    const id = r.string();
    const assignment = Buffer.from(r.bytes());
    r.tags();
    return { memberId: id, assignment };
  });
  r.tags();
  return new Promise((resolve) => {
    ctx.groups.sync({ groupId, generationId, memberId, assignments }, (res) => {
      if (version >= 1) w.int32(0);
      w.int16(res.errorCode);
      if (version >= 5) w.nullableString(res.protocolType).nullableString(res.protocolName);
      w.bytes(res.assignment);
      resolve(w.tags());
    });
  });
}

// ---------------------------------------------------------------- Heartbeat (12)

function heartbeat(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  if (version >= 3) r.nullableString();
  r.tags();
  const errorCode = ctx.groups.heartbeat(groupId, generationId, memberId);
  if (version >= 1) w.int32(0);
  w.int16(errorCode);
  return w.tags();
}

// ---------------------------------------------------------------- LeaveGroup (13)

function leaveGroup(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  const groupId = r.string();
  let members: { memberId: string; groupInstanceId: string | null }[];
  if (version <= 2) members = [{ memberId: r.string(), groupInstanceId: null }];
  else {
    members = r.array((r) => {
      const memberId = r.string();
      const groupInstanceId = r.nullableString();
      if (version >= 5) r.nullableString(); // reason
      r.tags();
      return { memberId, groupInstanceId };
    });
  }
  r.tags();
  const codes = ctx.groups.leave(
    groupId,
    members.map((m) => m.memberId),
  );
  if (version >= 1) w.int32(0);
  if (version <= 2) {
    w.int16(codes[0] ?? ERROR.NONE);
  } else {
    w.int16(ERROR.NONE);
    w.array(members, (w, m) => {
      w.string(m.memberId).nullableString(m.groupInstanceId).int16(codes[members.indexOf(m)] ?? 0).tags();
    });
  }
  return w.tags();
}

// ---------------------------------------------------------------- OffsetCommit (8)

function offsetCommit(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  const groupId = r.string();
  const generationId = version >= 1 ? r.int32() : -1;
  const memberId = version >= 1 ? r.string() : '';
  if (version >= 7) r.nullableString(); // group_instance_id
  if (version >= 2 && version <= 4) r.int64(); // retention_time_ms
  const topics = r.array((r) => {
    const name = r.string();
    const partitions = r.array((r) => {
      const partition = r.int32();
      const offset = r.int64n();
      const leaderEpoch = version >= 6 ? r.int32() : -1;
      if (version === 1) r.int64(); // commit_timestamp
      const metadata = r.nullableString();
      r.tags();
      return { partition, offset, leaderEpoch, metadata };
    });
    r.tags();
    return { name, partitions };
  });
  r.tags();
  const allowed = ctx.groups.commitAllowed(groupId, generationId, memberId);
  if (version >= 3) w.int32(0);
  w.array(topics, (w, t) => {
    const topic = ctx.store.topics.get(t.name);
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      let errorCode = allowed;
      if (errorCode === 0 && topic?.partitions[p.partition] === undefined) errorCode = ERROR.UNKNOWN_TOPIC_OR_PARTITION;
      if (errorCode === 0) {
        ctx.store.commitOffset(groupId, t.name, p.partition, { offset: p.offset, metadata: p.metadata, leaderEpoch: p.leaderEpoch });
      }
      w.int32(p.partition).int16(errorCode).tags();
    });
    w.tags();
  });
  return w.tags();
}

// ---------------------------------------------------------------- OffsetFetch (9)

function offsetFetch(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  type Req = { groupId: string; topics: { name: string; partitions: number[] }[] | null };
  const readTopics = (r: Reader): Req['topics'] =>
    r.nullableArray((r) => {
      const name = r.string();
      const partitions = r.array((r) => r.int32());
      r.tags();
      return { name, partitions };
    });
  let groups: Req[];
  if (version >= 8) {
    groups = r.array((r) => {
      const groupId = r.string();
      if (version >= 9) {
        r.nullableString(); // member_id
        r.int32(); // member_epoch
      }
      const topics = readTopics(r);
      r.tags();
      return { groupId, topics };
    });
  } else {
    const groupId = r.string();
    groups = [{ groupId, topics: readTopics(r) }];
  }
  if (version >= 7) r.bool(); // require_stable
  r.tags();

  const resolve = (g: Req): { name: string; partitions: number[] }[] => {
    if (g.topics !== null) return g.topics;
    const byTopic = new Map<string, number[]>();
    for (const key of ctx.store.groupOffsets(g.groupId).keys()) {
      const [name, p] = key.split('\0') as [string, string];
      if (!byTopic.has(name)) byTopic.set(name, []);
      byTopic.get(name)!.push(Number(p));
    }
    return [...byTopic].map(([name, partitions]) => ({ name, partitions }));
  };
  const writeTopics = (w: Writer, g: Req): void => {
    w.array(resolve(g), (w, t) => {
      w.string(t.name);
      w.array(t.partitions, (w, p) => {
        const c = ctx.store.committed(g.groupId, t.name, p);
        w.int32(p).int64(c?.offset ?? -1);
        if (version >= 5) w.int32(c?.leaderEpoch ?? -1);
        w.nullableString(c?.metadata ?? '').int16(ERROR.NONE).tags();
      });
      w.tags();
    });
  };
  if (version >= 3) w.int32(0);
  if (version >= 8) {
    w.array(groups, (w, g) => {
      w.string(g.groupId);
      writeTopics(w, g);
      w.int16(ERROR.NONE).tags();
    });
  } else {
    writeTopics(w, groups[0]!);
    if (version >= 2) w.int16(ERROR.NONE);
  }
  return w.tags();
}

// ---------------------------------------------------------------- DescribeGroups (15)

function describeGroups(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  const groupIds = r.array((r) => r.string());
  if (version >= 3) r.bool();
  r.tags();
  if (version >= 1) w.int32(0);
  w.array(groupIds, (w, id) => {
    const g = ctx.groups.describe(id);
    w.int16(ERROR.NONE).string(id).string(g.state).string(g.protocolType).string(g.protocolName);
    w.array(g.members, (w, m) => {
      w.string(m.memberId);
      if (version >= 4) w.nullableString(m.groupInstanceId);
      w.string(m.clientId).string(m.clientHost).bytes(m.metadata).bytes(m.assignment).tags();
    });
    if (version >= 3) w.int32(-2147483648);
    w.tags();
  });
  return w.tags();
}

// ---------------------------------------------------------------- ListGroups (16)

function listGroups(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  const states = version >= 4 ? r.array((r) => r.string()) : [];
  if (version >= 5) r.array((r) => r.string());
  r.tags();
  const known = new Map(ctx.groups.list().map((g) => [g.groupId, g]));
  for (const groupId of ctx.store.offsets.keys()) {
    if (!known.has(groupId)) known.set(groupId, { groupId, protocolType: 'consumer', state: 'Empty' });
  }
  const groups = [...known.values()].filter((g) => states.length === 0 || states.includes(g.state));
  if (version >= 1) w.int32(0);
  w.int16(ERROR.NONE);
  w.array(groups, (w, g) => {
    w.string(g.groupId).string(g.protocolType);
    if (version >= 4) w.string(g.state);
    if (version >= 5) w.string('classic');
    w.tags();
  });
  return w.tags();
}

// ---------------------------------------------------------------- InitProducerId (22)

function initProducerId(ctx: ApiContext, { version, r, w }: ApiRequest): Writer {
  r.nullableString(); // transactional_id: transactions are not served; the id is still unique
  r.int32();
  if (version >= 3) {
    r.int64();
    r.int16();
  }
  r.tags();
  const id = ctx.store.allocateProducerId();
  w.int32(0).int16(ERROR.NONE).int64(id).int16(0);
  return w.tags();
}

/**
 * The APIs served. Ranges cover what kafkajs 2.2.4 (its highest version of each) and
 * @platformatic/kafka 1.35 (which picks the highest version it implements within the range)
 * use, so every version in each range is decoded here.
 */
export function apiSpecs(): ApiSpec[] {
  const specs: ApiSpec[] = [];
  specs.push(
    { key: 0, name: 'Produce', minVersion: 3, maxVersion: 7, firstFlexible: 9, handler: produce },
    { key: 1, name: 'Fetch', minVersion: 4, maxVersion: 13, firstFlexible: 12, handler: fetch },
    { key: 2, name: 'ListOffsets', minVersion: 0, maxVersion: 5, firstFlexible: 6, handler: listOffsets },
    { key: 3, name: 'Metadata', minVersion: 0, maxVersion: 12, firstFlexible: 9, handler: metadata },
    { key: 8, name: 'OffsetCommit', minVersion: 0, maxVersion: 8, firstFlexible: 8, handler: offsetCommit },
    { key: 9, name: 'OffsetFetch', minVersion: 1, maxVersion: 8, firstFlexible: 6, handler: offsetFetch },
    { key: 10, name: 'FindCoordinator', minVersion: 0, maxVersion: 4, firstFlexible: 3, handler: findCoordinator },
    { key: 11, name: 'JoinGroup', minVersion: 0, maxVersion: 6, firstFlexible: 6, handler: joinGroup },
    { key: 12, name: 'Heartbeat', minVersion: 0, maxVersion: 4, firstFlexible: 4, handler: heartbeat },
    { key: 13, name: 'LeaveGroup', minVersion: 0, maxVersion: 4, firstFlexible: 4, handler: leaveGroup },
    { key: 14, name: 'SyncGroup', minVersion: 0, maxVersion: 4, firstFlexible: 4, handler: syncGroup },
    { key: 15, name: 'DescribeGroups', minVersion: 0, maxVersion: 5, firstFlexible: 5, handler: describeGroups },
    { key: 16, name: 'ListGroups', minVersion: 0, maxVersion: 4, firstFlexible: 3, handler: listGroups },
    { key: 18, name: 'ApiVersions', minVersion: 0, maxVersion: 3, firstFlexible: 3, handler: (ctx, req) => apiVersions(ctx, req, specs) },
    { key: 19, name: 'CreateTopics', minVersion: 0, maxVersion: 7, firstFlexible: 5, handler: createTopics },
    { key: 20, name: 'DeleteTopics', minVersion: 0, maxVersion: 6, firstFlexible: 4, handler: deleteTopics },
    { key: 22, name: 'InitProducerId', minVersion: 0, maxVersion: 3, firstFlexible: 2, handler: initProducerId },
  );
  return specs;
}
