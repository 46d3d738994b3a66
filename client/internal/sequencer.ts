/**
 * The client's rule for one item (one key, or one key and window) of one subscription: which
 * snapshot item or change to show, which to drop, and when a gap asks for a fresh snapshot.
 * Pure; the client (live-client.ts) feeds it frames and sends the resubscriptions it asks for.
 *
 * The rule (docs/architecture.md, "Live subscriptions"): the sequencer keeps `v`, the version of
 * the state last shown. A change with `version <= v` is a duplicate and is dropped. A change with
 * `beforeVersion === v` follows what is shown and is applied; so is a change without
 * `beforeVersion` (it starts from no state: a new or re-created item) while what is shown is no
 * state (nothing yet, an absent key, or a delete). Anything else is a gap: the change waits in a
 * small buffer (it may only have overtaken one still on its way) and the item asks for a fresh
 * snapshot, which is shown only if its version is above `v`. Nothing older than a state once
 * shown is ever shown again.
 *
 * A view rebuilt under a new definition version (`viewVersion`) counts item versions from 1
 * again: a change or snapshot of a higher `viewVersion` than the one shown starts the item over
 * (a change of it is a gap, so the new version's snapshot is fetched); a lower one is stale.
 */

/** A state to show: from a snapshot, or from a change. */
export interface SequencedState {
  readonly version: number;
  /** The state; undefined when the item is absent or was deleted. */
  readonly state: unknown;
  readonly deleted: boolean;
  readonly source: 'snapshot' | 'change';
  readonly viewVersion: number;
}

/** What the sequencer needs of a change frame. */
export interface SequencedChange {
  readonly version: number;
  readonly beforeVersion?: number;
  readonly state?: unknown;
  readonly deleted?: boolean;
  readonly viewVersion?: number;
}

/** What the sequencer needs of a snapshot item (`version` 0 and `state` null: absent). */
export interface SequencedSnapshotItem {
  readonly version: number;
  readonly state: unknown;
  readonly viewVersion?: number;
}

/** What the sequencer decided about an offered change or snapshot item. */
export interface SequencerResult {
  /** States to show, in order (a buffered change may follow the one offered). */
  readonly show: readonly SequencedState[];
  /** True when the item has a gap and wants a fresh snapshot (asked once until one arrives). */
  readonly resync: boolean;
}

/**
 * Changes kept per item while a gap waits for its snapshot: enough for changes that overtook
 * one another on the way; more would only be superseded by the snapshot.
 */
export const MAX_BUFFERED_CHANGES = 16;

const NOTHING: SequencerResult = { show: [], resync: false };

/** The rule for one item of one subscription. */
export class ItemSequencer {
  /** Version last shown; 0 before anything is shown. */
  private shownVersion = 0;
  private shownViewVersion = 1;
  /** Whether anything was shown yet (an absent key's snapshot counts). */
  private shownAny = false;
  /** Whether what is shown is no state (nothing yet, absent, deleted). */
  private shownAbsent = true;
  /** True from a gap until a snapshot arrives. */
  private awaitingSnapshot = false;
  private buffered: SequencedChange[] = [];

  /** The version last shown (0 before anything is shown). */
  get version(): number {
    return this.shownVersion;
  }

  /** Whether a gap is waiting for a fresh snapshot. */
  get resyncing(): boolean {
    return this.awaitingSnapshot;
  }

  /** Judges a change: shows it (and buffered ones that follow it), drops it, or asks for a snapshot. */
  offerChange(change: SequencedChange): SequencerResult {
    const viewVersion = change.viewVersion ?? 1;
    if (viewVersion < this.shownViewVersion) return NOTHING;
    if (viewVersion === this.shownViewVersion && change.version <= this.shownVersion) return NOTHING;
    if (viewVersion === this.shownViewVersion && this.follows(change)) {
      const show = [this.apply(change, 'change')];
      show.push(...this.drain());
      return { show, resync: false };
    }
    this.buffer(change);
    return this.askForSnapshot();
  }

  /** Judges a snapshot item: shown only if newer than what is shown (or nothing was shown yet). */
  offerSnapshot(item: SequencedSnapshotItem): SequencerResult {
    this.awaitingSnapshot = false;
    const viewVersion = item.viewVersion ?? 1;
    const newer =
      !this.shownAny ||
      viewVersion > this.shownViewVersion ||
      (viewVersion === this.shownViewVersion && item.version > this.shownVersion);
    const show: SequencedState[] = [];
    if (newer) {
      const absent = item.state === null || item.state === undefined;
      this.shownVersion = item.version;
      this.shownViewVersion = viewVersion;
      this.shownAny = true;
      this.shownAbsent = absent;
      show.push({ version: item.version, state: absent ? undefined : item.state, deleted: false, source: 'snapshot', viewVersion });
    }
    show.push(...this.drain());
    // A buffered change still beyond a gap after the snapshot: the snapshot was older than it,
    // so ask again (the next snapshot is read after that change was written).
    if (this.buffered.length > 0) return { show, resync: this.askForSnapshot().resync };
    return { show, resync: false };
  }

  /** Forgets a pending request for a snapshot (the connection that would have answered it closed). */
  resetResync(): void {
    this.awaitingSnapshot = false;
  }

  private follows(change: SequencedChange): boolean {
    if (change.beforeVersion === undefined) return this.shownAbsent;
    return change.beforeVersion === this.shownVersion;
  }

  private apply(change: SequencedChange, source: 'change'): SequencedState {
    const deleted = change.deleted === true;
    this.shownVersion = change.version;
    this.shownViewVersion = change.viewVersion ?? 1;
    this.shownAny = true;
    this.shownAbsent = deleted;
    return { version: change.version, state: deleted ? undefined : change.state, deleted, source, viewVersion: this.shownViewVersion };
  }

  /** Applies buffered changes that now follow what is shown; drops those it supersedes. */
  private drain(): SequencedState[] {
    const show: SequencedState[] = [];
    for (;;) {
      this.buffered = this.buffered.filter(
        (c) =>
          (c.viewVersion ?? 1) > this.shownViewVersion ||
          ((c.viewVersion ?? 1) === this.shownViewVersion && c.version > this.shownVersion),
      );
      const next = this.buffered.find((c) => (c.viewVersion ?? 1) === this.shownViewVersion && this.follows(c));
      if (next === undefined) return show;
      this.buffered = this.buffered.filter((c) => c !== next);
      show.push(this.apply(next, 'change'));
    }
  }

  private buffer(change: SequencedChange): void {
    this.buffered.push(change);
    this.buffered.sort((a, b) => (a.viewVersion ?? 1) - (b.viewVersion ?? 1) || a.version - b.version);
    // Keep the newest: the oldest are the first a snapshot supersedes.
    if (this.buffered.length > MAX_BUFFERED_CHANGES) this.buffered.splice(0, this.buffered.length - MAX_BUFFERED_CHANGES);
  }

  private askForSnapshot(): SequencerResult {
    if (this.awaitingSnapshot) return NOTHING;
    this.awaitingSnapshot = true;
    return { show: [], resync: true };
  }
}
