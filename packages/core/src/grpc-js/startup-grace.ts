/**
 * The startup grace (`startupGraceMs`): on a new channel, or after every
 * endpoint went down, the first endpoint to become ready would otherwise
 * take every call queued so far — with ten backends whose connections
 * complete a few ms apart, nearly all of a new channel's first hundred
 * calls. While the grace holds, the balancer keeps showing CONNECTING (calls
 * queue) after the first endpoint is ready, until every endpoint has
 * settled (in rotation, or failing) or the grace has run out since that
 * first ready endpoint, whichever comes first; then the calls go out over
 * every endpoint ready by then.
 *
 * It applies only while no endpoint has been in rotation since the balancer
 * started or last had none; a balancer that was serving never holds calls
 * back for an endpoint that joins. Off (0) by default.
 */

export class StartupGrace {
  /** No endpoint in rotation since the balancer started, or since it last had none. */
  private armed = true;
  /** When the first endpoint came into rotation while armed (`now`'s clock). */
  private startedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** `expired` is called when the grace runs out (the balancer recomputes its state). */
  constructor(private readonly expired: () => void) {}

  /** The balancer has no endpoint in rotation: the next one to come starts a grace again. */
  noneReady(): void {
    this.armed = true;
    this.startedAt = undefined;
    this.clearTimer();
  }

  /**
   * Some endpoint is in rotation at `now`: whether READY must still be held
   * back. `unsettled` says whether some endpoint is still on its way
   * (asked only while the grace may apply).
   */
  hold(unsettled: () => boolean, graceMs: number, now: number): boolean {
    if (!this.armed) return false;
    this.startedAt ??= now;
    const left = this.startedAt + graceMs - now;
    if (left <= 0 || !unsettled()) {
      this.armed = false;
      this.startedAt = undefined;
      this.clearTimer();
      return false;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.expired();
      }, left);
      this.timer.unref();
    }
    return true;
  }

  /** A new config: its grace (maybe another length) is timed from the same first ready endpoint. */
  configChanged(): void {
    this.clearTimer();
  }

  destroy(): void {
    this.clearTimer();
    this.startedAt = undefined;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
