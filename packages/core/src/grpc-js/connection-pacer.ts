/**
 * Connection pacing: a balancer given thousands of new endpoints at once
 * (a DNS answer of 4,094 A records, a 10,000-pod Service) does not start
 * thousands of connections in one turn of the event loop. Starting one
 * costs the client real work (a pick_first leaf, a subchannel, a socket)
 * and so does each outcome; all at once, they blocked the event loop for
 * seconds while calls to the endpoints already connected waited.
 *
 * At most `limit` connection attempts are in progress at a time: an
 * endpoint holds its slot from the moment it is told to connect until its
 * connection is READY or has failed (`settled`), it is removed, or
 * `SLOT_TIMEOUT_MS` has passed (an address that neither answers nor
 * refuses — a blackhole — must not hold back the endpoints after it for
 * the 20 s of grpc-js's connect timeout; its attempt goes on, uncounted).
 * The others wait in resolver order. Freed slots are refilled on a later
 * turn (`setImmediate`), never from inside the connection callback that
 * freed them, and one turn starts at most `limit` connections (also when
 * they settle at once, as a connection shared from grpc-js's subchannel
 * pool does).
 * Endpoints already connected keep taking calls meanwhile: pacing only
 * decides when new connections start.
 *
 * Lists of up to `limit` endpoints are started at once, in the update
 * itself, as without pacing; a longer list starts on the next turn.
 */

/** At most this many connection attempts in progress at once, per balancer. */
export const DEFAULT_MAX_CONNECTING = 64;

/** A connection attempt not settled after this long stops counting against the limit. */
export const SLOT_TIMEOUT_MS = 2_000;

/** What the pacer starts: an endpoint told to connect. */
export interface Pacable {
  /** Starts its first connection, its next attempt after a failure, or a reconnection from IDLE. */
  connect(): void;
}

export class ConnectionPacer<T extends Pacable> {
  /** Waiting to connect, in the order asked (a Set iterates in insertion order). */
  private readonly waiting = new Set<T>();
  /** Connecting now, with the time (Date.now()) each was started, oldest first. */
  private readonly connecting = new Map<T, number>();
  private immediate: NodeJS.Immediate | undefined;
  /** Connections started in this turn of the event loop (reset by `turnEnd` on the next). */
  private startedThisTurn = 0;
  private turnEnd: NodeJS.Immediate | undefined;
  private timer: NodeJS.Timeout | undefined;
  private destroyed = false;
  /** The most connection attempts in progress at once so far (for tests and traces). */
  peakConnecting = 0;

  constructor(
    /** Called after a turn started connections (the balancer batches the state changes). */
    private readonly afterBatch: () => void,
    readonly limit: number = DEFAULT_MAX_CONNECTING,
  ) {}

  /** Endpoints connecting now (started, not settled, within the slot timeout). */
  get inProgress(): number {
    return this.connecting.size;
  }

  /** Whether `item` holds a slot now (told to connect, not settled). */
  holds(item: T): boolean {
    return this.connecting.has(item);
  }

  /** Endpoints waiting for a slot. */
  get queued(): number {
    return this.waiting.size;
  }

  /**
   * `item` should connect, in turn: on a later turn of the event loop, or
   * at the caller's `flush()`. Asking again for an item waiting or
   * connecting changes nothing.
   */
  request(item: T): void {
    if (this.destroyed || this.waiting.has(item) || this.connecting.has(item)) return;
    this.waiting.add(item);
    this.schedule();
  }

  /**
   * Starts what fits now, in the caller's turn, when at most `limit` wait;
   * more than that start from the next turn on. A turn that applied a list
   * of thousands of endpoints (decoding it, building their children) has
   * done enough: adding 64 connection starts made it the longest turn.
   */
  flush(): void {
    if (this.waiting.size > this.limit) {
      this.schedule();
      return;
    }
    this.pump(false);
  }

  /** `item`'s connection attempt ended (READY or failed): its slot is free. */
  settled(item: T): void {
    if (!this.connecting.delete(item)) return;
    if (this.waiting.size > 0) this.schedule();
  }

  /** `item` left the balancer: it neither waits nor holds a slot. */
  remove(item: T): void {
    this.waiting.delete(item);
    this.settled(item);
  }

  /** Forgets everything; no timer is left. */
  destroy(): void {
    this.destroyed = true;
    this.waiting.clear();
    this.connecting.clear();
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    if (this.turnEnd) clearImmediate(this.turnEnd);
    this.turnEnd = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.immediate || this.destroyed) return;
    // Every slot taken: `settled` or the slot timeout comes back.
    if (this.connecting.size >= this.limit) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.pump(true);
    });
  }

  private pump(notify: boolean): void {
    if (this.destroyed) return;
    this.expire(Date.now());
    let started = 0;
    for (const item of this.waiting) {
      if (this.connecting.size >= this.limit || this.startedThisTurn >= this.limit) break;
      this.waiting.delete(item);
      this.connecting.set(item, Date.now());
      if (this.connecting.size > this.peakConnecting) this.peakConnecting = this.connecting.size;
      started++;
      this.countTurn();
      item.connect();
      if (this.destroyed) return;
    }
    if (this.waiting.size > 0) {
      if (this.connecting.size >= this.limit) this.armTimer();
      this.schedule();
    }
    if (notify && started > 0) this.afterBatch();
  }

  private countTurn(): void {
    if (this.startedThisTurn++ > 0) return;
    this.turnEnd = setImmediate(() => {
      this.turnEnd = undefined;
      this.startedThisTurn = 0;
      // A pump may have found this turn's quota used up: the next turn goes on.
      if (this.waiting.size > 0) this.schedule();
    });
  }

  /** Attempts older than the slot timeout stop counting. */
  private expire(now: number): void {
    for (const [item, startedAt] of this.connecting) {
      if (now - startedAt < SLOT_TIMEOUT_MS) break;
      this.connecting.delete(item);
    }
  }

  /** Every slot is taken: come back when the oldest attempt's slot times out. */
  private armTimer(): void {
    if (this.timer) return;
    const oldest = this.connecting.values().next();
    const wait = oldest.done ? 0 : oldest.value + SLOT_TIMEOUT_MS - Date.now();
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.pump(true);
      },
      Math.max(0, Math.ceil(wait)),
    );
    this.timer.unref();
  }
}
