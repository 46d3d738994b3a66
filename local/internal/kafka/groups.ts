/**
 * Classic consumer-group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), the same
 * state machine as Kafka's: Empty -> PreparingRebalance -> CompletingRebalance -> Stable.
 * Members that do not rejoin within the rebalance timeout are dropped; members whose
 * heartbeats stop for longer than their session timeout are removed and trigger a rebalance.
 */
import { randomUUID } from 'node:crypto';

/** Kafka error codes the coordinator answers with. */
export const ERR = {
  NONE: 0,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
} as const;

/** Group states, spelled as Kafka reports them in DescribeGroups/ListGroups. */
export type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable' | 'Dead';

/** A protocol a member supports, with its opaque subscription metadata. */
export interface MemberProtocol {
  readonly name: string;
  readonly metadata: Buffer;
}

/** What a JoinGroup request carries. */
export interface JoinRequest {
  readonly groupId: string;
  readonly sessionTimeoutMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly protocolType: string;
  readonly protocols: readonly MemberProtocol[];
  readonly clientId: string;
  readonly clientHost: string;
}

/** What a JoinGroup response carries. */
export interface JoinResult {
  readonly errorCode: number;
  readonly generationId: number;
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  readonly leader: string;
  readonly memberId: string;
  readonly members: readonly { memberId: string; groupInstanceId: string | null; metadata: Buffer }[];
}

/** What a SyncGroup response carries. */
export interface SyncResult {
  readonly errorCode: number;
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  readonly assignment: Buffer;
}

interface Member {
  readonly memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: readonly MemberProtocol[];
  assignment: Buffer;
  lastSeen: number;
  joinCallback: ((r: JoinResult) => void) | undefined;
  syncCallback: ((r: SyncResult) => void) | undefined;
}

interface Group {
  readonly groupId: string;
  state: GroupState;
  generationId: number;
  protocolType: string | null;
  protocolName: string | null;
  leaderId: string | null;
  readonly members: Map<string, Member>;
  rebalanceDeadline: number;
}

/** Limits of the coordinator (Kafka's group.min/max.session.timeout.ms). */
export interface CoordinatorLimits {
  readonly minSessionTimeoutMs: number;
  readonly maxSessionTimeoutMs: number;
}

/** A group as DescribeGroups reports it. */
export interface GroupDescription {
  readonly groupId: string;
  readonly state: GroupState;
  readonly protocolType: string;
  readonly protocolName: string;
  readonly members: readonly {
    memberId: string;
    groupInstanceId: string | null;
    clientId: string;
    clientHost: string;
    metadata: Buffer;
    assignment: Buffer;
  }[];
}

const EMPTY: Buffer = Buffer.alloc(0);

/** The group coordinator of the single broker. */
export class GroupCoordinator {
  private readonly groups = new Map<string, Group>();

  constructor(
    private readonly limits: CoordinatorLimits,
    private readonly log: (line: string) => void,
  ) {}

  private group(groupId: string): Group {
    let g = this.groups.get(groupId);
    if (g === undefined) {
      g = {
        groupId,
        state: 'Empty',
        generationId: 0,
        protocolType: null,
        protocolName: null,
        leaderId: null,
        members: new Map(),
        rebalanceDeadline: 0,
      };
      this.groups.set(groupId, g);
    }
    return g;
  }

  join(req: JoinRequest, callback: (r: JoinResult) => void): void {
    const fail = (errorCode: number, memberId = req.memberId): void =>
      callback({ errorCode, generationId: -1, protocolType: null, protocolName: null, leader: '', memberId, members: [] });
    if (req.sessionTimeoutMs < this.limits.minSessionTimeoutMs || req.sessionTimeoutMs > this.limits.maxSessionTimeoutMs) {
      fail(ERR.INVALID_SESSION_TIMEOUT);
      return;
    }
    const g = this.group(req.groupId);
    if (g.members.size > 0) {
      const sameType = g.protocolType === null || g.protocolType === req.protocolType;
      const others = [...g.members.values()].filter((m) => m.memberId !== req.memberId);
      const common = req.protocols.some((p) => others.every((m) => m.protocols.some((q) => q.name === p.name)));
      if (!sameType || (others.length > 0 && !common)) {
        fail(ERR.INCONSISTENT_GROUP_PROTOCOL);
        return;
      }
    }
    let member: Member | undefined;
    if (req.memberId !== '') {
      member = g.members.get(req.memberId);
      if (member === undefined) {
        fail(ERR.UNKNOWN_MEMBER_ID);
        return;
      }
    } else {
      member = {
        memberId: `${req.clientId || 'member'}-${randomUUID()}`,
        groupInstanceId: req.groupInstanceId,
        clientId: req.clientId,
        clientHost: req.clientHost,
        sessionTimeoutMs: req.sessionTimeoutMs,
        rebalanceTimeoutMs: req.rebalanceTimeoutMs,
        protocolType: req.protocolType,
        protocols: req.protocols,
        assignment: EMPTY,
        lastSeen: Date.now(),
        joinCallback: undefined,
        syncCallback: undefined,
      };
      g.members.set(member.memberId, member);
      this.log(`group ${g.groupId}: member ${member.memberId} joined`);
    }
    if (member.joinCallback !== undefined) {
      // A retried join replaces the earlier one; the earlier request gets a retriable error.
      const earlier = member.joinCallback;
      member.joinCallback = undefined;
      earlier({ errorCode: ERR.REBALANCE_IN_PROGRESS, generationId: -1, protocolType: null, protocolName: null, leader: '', memberId: member.memberId, members: [] });
    }
    member.sessionTimeoutMs = req.sessionTimeoutMs;
    member.rebalanceTimeoutMs = req.rebalanceTimeoutMs;
    member.protocols = req.protocols;
    member.protocolType = req.protocolType;
    member.lastSeen = Date.now();
    member.joinCallback = callback;
    if (g.state !== 'PreparingRebalance') this.prepareRebalance(g, `member ${member.memberId} joining`);
    this.tryCompleteJoin(g);
  }

  private prepareRebalance(g: Group, reason: string): void {
    if (g.state === 'CompletingRebalance') {
      for (const m of g.members.values()) {
        const cb = m.syncCallback;
        m.syncCallback = undefined;
        cb?.({ errorCode: ERR.REBALANCE_IN_PROGRESS, protocolType: null, protocolName: null, assignment: EMPTY });
      }
    }
    g.state = 'PreparingRebalance';
    let timeout = 0;
    for (const m of g.members.values()) timeout = Math.max(timeout, m.rebalanceTimeoutMs);
    g.rebalanceDeadline = Date.now() + timeout;
    this.log(`group ${g.groupId}: rebalancing (${reason})`);
  }

  private tryCompleteJoin(g: Group): void {
    if (g.state !== 'PreparingRebalance') return;
    for (const m of g.members.values()) if (m.joinCallback === undefined) return;
    this.completeJoin(g);
  }

  private completeJoin(g: Group): void {
    for (const m of [...g.members.values()]) {
      if (m.joinCallback === undefined) {
        g.members.delete(m.memberId);
        this.log(`group ${g.groupId}: member ${m.memberId} dropped, it did not rejoin within the rebalance timeout`);
      }
    }
    g.generationId++;
    const members = [...g.members.values()];
    if (members.length === 0) {
      g.state = 'Empty';
      g.protocolName = null;
      g.protocolType = null;
      g.leaderId = null;
      return;
    }
    const first = members[0]!;
    const protocol = first.protocols.find((p) => members.every((m) => m.protocols.some((q) => q.name === p.name)));
    g.protocolName = protocol?.name ?? first.protocols[0]?.name ?? null;
    g.protocolType = first.protocolType;
    if (g.leaderId === null || !g.members.has(g.leaderId)) g.leaderId = first.memberId;
    g.state = 'CompletingRebalance';
    this.log(`group ${g.groupId}: generation ${g.generationId} with ${members.length} member(s), leader ${g.leaderId}`);
    const list = members.map((m) => ({
      memberId: m.memberId,
      groupInstanceId: m.groupInstanceId,
      metadata: m.protocols.find((p) => p.name === g.protocolName)?.metadata ?? EMPTY,
    }));
    const now = Date.now();
    for (const m of members) {
      const cb = m.joinCallback!;
      m.joinCallback = undefined;
      m.lastSeen = now;
      m.assignment = EMPTY;
      cb({
        errorCode: ERR.NONE,
        generationId: g.generationId,
        protocolType: g.protocolType,
        protocolName: g.protocolName,
        leader: g.leaderId,
        memberId: m.memberId,
        members: m.memberId === g.leaderId ? list : [],
      });
    }
  }

  sync(
    req: { groupId: string; generationId: number; memberId: string; assignments: readonly { memberId: string; assignment: Buffer }[] },
    callback: (r: SyncResult) => void,
  ): void {
    const g = this.groups.get(req.groupId);
    const member = g?.members.get(req.memberId);
    const reply = (errorCode: number, assignment = EMPTY): void =>
      callback({ errorCode, protocolType: g?.protocolType ?? null, protocolName: g?.protocolName ?? null, assignment });
    if (g === undefined || member === undefined) return reply(ERR.UNKNOWN_MEMBER_ID);
    if (req.generationId !== g.generationId) return reply(ERR.ILLEGAL_GENERATION);
    member.lastSeen = Date.now();
    if (g.state === 'PreparingRebalance') return reply(ERR.REBALANCE_IN_PROGRESS);
    if (g.state === 'Stable') return reply(ERR.NONE, member.assignment);
    // CompletingRebalance
    member.syncCallback = callback;
    if (member.memberId === g.leaderId) {
      for (const m of g.members.values()) {
        m.assignment = req.assignments.find((a) => a.memberId === m.memberId)?.assignment ?? EMPTY;
      }
      g.state = 'Stable';
      this.log(`group ${g.groupId}: generation ${g.generationId} stable`);
      for (const m of g.members.values()) {
        const cb = m.syncCallback;
        m.syncCallback = undefined;
        cb?.({ errorCode: ERR.NONE, protocolType: g.protocolType, protocolName: g.protocolName, assignment: m.assignment });
      }
    }
  }

  heartbeat(groupId: string, generationId: number, memberId: string): number {
    const g = this.groups.get(groupId);
    const member = g?.members.get(memberId);
    if (g === undefined || member === undefined) return ERR.UNKNOWN_MEMBER_ID;
    member.lastSeen = Date.now();
    if (g.state === 'PreparingRebalance') return ERR.REBALANCE_IN_PROGRESS;
    if (generationId !== g.generationId) return ERR.ILLEGAL_GENERATION;
    return ERR.NONE;
  }

  /** Removes members; returns an error code per member id. */
  leave(groupId: string, memberIds: readonly string[]): number[] {
    const g = this.groups.get(groupId);
    const codes = memberIds.map((id) => {
      const m = g?.members.get(id);
      if (g === undefined || m === undefined) return ERR.UNKNOWN_MEMBER_ID;
      this.removeMember(g, m, 'left the group');
      return ERR.NONE;
    });
    return codes;
  }

  private removeMember(g: Group, m: Member, why: string): void {
    g.members.delete(m.memberId);
    this.log(`group ${g.groupId}: member ${m.memberId} ${why}`);
    const join = m.joinCallback;
    m.joinCallback = undefined;
    join?.({ errorCode: ERR.UNKNOWN_MEMBER_ID, generationId: -1, protocolType: null, protocolName: null, leader: '', memberId: m.memberId, members: [] });
    const sync = m.syncCallback;
    m.syncCallback = undefined;
    sync?.({ errorCode: ERR.UNKNOWN_MEMBER_ID, protocolType: null, protocolName: null, assignment: EMPTY });
    if (g.state !== 'PreparingRebalance') this.prepareRebalance(g, `member ${m.memberId} ${why}`);
    this.tryCompleteJoin(g);
  }

  /** Whether an offset commit from this member/generation may be applied (0) or why not. */
  commitAllowed(groupId: string, generationId: number, memberId: string): number {
    if (generationId < 0 && memberId === '') return ERR.NONE;
    const g = this.groups.get(groupId);
    const member = g?.members.get(memberId);
    if (g === undefined || member === undefined) return ERR.UNKNOWN_MEMBER_ID;
    if (generationId !== g.generationId) return ERR.ILLEGAL_GENERATION;
    if (g.state === 'CompletingRebalance') return ERR.REBALANCE_IN_PROGRESS;
    member.lastSeen = Date.now();
    return ERR.NONE;
  }

  /** Expires sessions and rebalance deadlines; called on a timer. */
  tick(now = Date.now()): void {
    for (const g of this.groups.values()) {
      for (const m of [...g.members.values()]) {
        const waitingInJoin = m.joinCallback !== undefined && g.state === 'PreparingRebalance';
        if (!waitingInJoin && now - m.lastSeen > m.sessionTimeoutMs) {
          this.removeMember(g, m, `session expired after ${m.sessionTimeoutMs} ms without a heartbeat`);
        }
      }
      if (g.state === 'PreparingRebalance' && now >= g.rebalanceDeadline) this.completeJoin(g);
    }
  }

  describe(groupId: string): GroupDescription {
    const g = this.groups.get(groupId);
    if (g === undefined) return { groupId, state: 'Dead', protocolType: '', protocolName: '', members: [] };
    return {
      groupId,
      state: g.state,
      protocolType: g.protocolType ?? '',
      protocolName: g.state === 'Stable' ? (g.protocolName ?? '') : '',
      members: [...g.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        metadata: m.protocols.find((p) => p.name === g.protocolName)?.metadata ?? EMPTY,
        assignment: m.assignment,
      })),
    };
  }

  list(): { groupId: string; protocolType: string; state: GroupState }[] {
    return [...this.groups.values()].map((g) => ({ groupId: g.groupId, protocolType: g.protocolType ?? 'consumer', state: g.state }));
  }

  /** Fails every parked request (broker shutdown). */
  close(): void {
    for (const g of this.groups.values()) {
      for (const m of g.members.values()) {
        const join = m.joinCallback;
        m.joinCallback = undefined;
        join?.({ errorCode: ERR.REBALANCE_IN_PROGRESS, generationId: -1, protocolType: null, protocolName: null, leader: '', memberId: m.memberId, members: [] });
        const sync = m.syncCallback;
        m.syncCallback = undefined;
        sync?.({ errorCode: ERR.REBALANCE_IN_PROGRESS, protocolType: null, protocolName: null, assignment: EMPTY });
      }
    }
  }
}
