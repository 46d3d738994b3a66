/**
 * The seed module contract of `tributary dev --seed ./seed.ts`: a module exporting
 * `seed(context)` that produces example events while the app runs, so there is something to
 * look at. The CLI implements the context on the local stack.
 */

/** One event a seed produces. */
export interface SeedEvent {
  /** Kafka key (events of one key stay in order on one partition). @default null */
  readonly key?: string | null;
  /** The event; a string or Buffer is sent as is, anything else as JSON. */
  readonly value: unknown;
}

/** What `tributary dev` hands a seed module's `seed(context)`. */
export interface SeedContext {
  /** Produces events to `topic` of the local broker; resolves once the broker has them. */
  produce(topic: string, events: readonly SeedEvent[]): Promise<void>;
  /**
   * Records already in `topic`, over all partitions: where an earlier run left off, so a
   * deterministic seed continues its one stream instead of starting a second one into old state.
   */
  recordsIn(topic: string): Promise<number>;
  /** Events per second asked for (`tributary dev --rate N`, default 20). */
  readonly rate: number;
  /** Events to produce in this run (`--events N`); undefined = until stopped. */
  readonly events: number | undefined;
  /**
   * The data folder of this broker's topics (`.tributary/`, or `.tributary/apache/`), for a
   * seed's own bookkeeping: deleted together with the records it describes.
   */
  readonly dataDir: string;
  /** Aborted when `tributary dev` stops: return soon after. */
  readonly signal: AbortSignal;
  /** Prints a line under the seed's name. */
  log(line: string): void;
}

/** A seed module: `export async function seed(context: SeedContext) { ... }`. */
export type Seed = (context: SeedContext) => Promise<void> | void;
