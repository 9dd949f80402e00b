/**
 * The removal hold-down (`removalHoldDownMs`): endpoints that the resolver
 * removes en masse while their connections are READY stay in rotation for a
 * short while, in case the registry puts them back.
 *
 * A registry that hangs longer than its lease TTL (etcd with a 10 s TTL
 * frozen for 30 s) expires every lease at once when it resumes: it deletes
 * every key, and the registration helpers write them again tens to hundreds
 * of milliseconds later. Followed to the letter, the client has no endpoint
 * in between and every call fails, although every backend is up and
 * connected. Envoy keeps a host that discovery removed while its health
 * checks pass; this is the bounded equivalent.
 *
 * Only a mass removal is held (`isMassRemoval`): a scale-down or a rolling
 * update removes one endpoint (or a small share) at a time, and those go at
 * once. A held endpoint leaves as soon as the registry lists it again (it is
 * kept as it is, with its connection), its connection leaves READY (a server
 * shutting down sends GOAWAY), its health check fails, or the hold-down runs
 * out.
 */

/**
 * Whether an update that removes `removedReady` of the `readyBefore`
 * endpoints whose connections are READY is a mass removal: every one of them
 * (the channel would be left with nothing connected), or at least two and at
 * least half of them. One endpoint out of two or more is never a mass
 * removal: that is how scale-downs and rolling updates proceed, and they
 * must not be delayed. Half is far above what a rolling update takes out at
 * once (Kubernetes' default maxUnavailable is 25%) and far below what a
 * registry that lost its leases removes (all of them, or most of them if
 * their deletions arrive in a few batches).
 */
export function isMassRemoval(removedReady: number, readyBefore: number): boolean {
  if (removedReady <= 0 || readyBefore <= 0) return false;
  if (removedReady >= readyBefore) return true;
  return removedReady >= 2 && removedReady * 2 >= readyBefore;
}

/** What the hold-down keeps of an endpoint. */
export interface Holdable {
  readonly key: string;
  /** Epoch ms its hold-down ends; 0 while the resolver lists it. */
  heldUntil: number;
}

/**
 * The endpoints being held and the one timer that ends their hold-downs
 * (unref()'d; cleared by `destroy()`).
 */
export class RemovalHoldDown<C extends Holdable> {
  private readonly held = new Map<string, C>();
  private timer: NodeJS.Timeout | undefined;

  /** `expired` gets the endpoints whose hold-down ran out; they are no longer held. */
  constructor(private readonly expired: (children: C[]) => void) {}

  get size(): number {
    return this.held.size;
  }

  values(): IterableIterator<C> {
    return this.held.values();
  }

  /** Holds `children` until `now + ms`. */
  hold(children: readonly C[], ms: number, now: number): void {
    for (const child of children) {
      child.heldUntil = now + ms;
      this.held.set(child.key, child);
    }
    this.arm(now);
  }

  /** The held endpoint of `key`, which the resolver lists again: its hold-down ends. */
  take(key: string): C | undefined {
    const child = this.held.get(key);
    if (!child) return undefined;
    this.forget(child);
    return child;
  }

  /** Ends the hold-down of `child` (it leaves); false if it was not held. */
  release(child: C): boolean {
    if (this.held.get(child.key) !== child) return false;
    this.forget(child);
    return true;
  }

  /** Ends every hold-down; returns the endpoints that were held. */
  releaseAll(): C[] {
    const all = [...this.held.values()];
    for (const child of all) child.heldUntil = 0;
    this.held.clear();
    this.clearTimer();
    return all;
  }

  destroy(): void {
    this.releaseAll();
  }

  private forget(child: C): void {
    child.heldUntil = 0;
    this.held.delete(child.key);
    if (this.held.size === 0) this.clearTimer();
  }

  /** One timer, for the earliest end. */
  private arm(now: number): void {
    this.clearTimer();
    let earliest = Infinity;
    for (const child of this.held.values()) earliest = Math.min(earliest, child.heldUntil);
    if (earliest === Infinity) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, earliest - now));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    const now = Date.now();
    const due = [...this.held.values()].filter((child) => child.heldUntil <= now);
    for (const child of due) {
      child.heldUntil = 0;
      this.held.delete(child.key);
    }
    this.arm(now);
    if (due.length > 0) this.expired(due);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
