/**
 * The subchannel a child's pick_first leaf is given: grpc-js's own, with
 * `startConnecting()` going through connection pacing. pick_first asks its
 * subchannel to connect again after every failure; grpc-js's subchannel
 * then reconnects by itself when its backoff ends. Thousands of endpoints
 * that failed together (a big DNS answer of dead addresses) would all
 * reconnect within the same backoff window, in bursts of hundreds per
 * timer tick. Here only a request while IDLE starts anything, and it waits
 * for a pacing slot unless the endpoint holds one: a request during the
 * backoff is dropped (the subchannel goes IDLE when the backoff ends and
 * pick_first asks again), and one while CONNECTING or READY has nothing to
 * start.
 *
 * Pickers hand out the wrapped subchannel (`inner`): grpc-js's policies
 * above ours (outlier_detection) expect their own wrappers back.
 */
import type {
  CallCredentials,
  connectivityState as ConnectivityStateEnum,
  experimental,
} from '@grpc/grpc-js';

type SubchannelInterface = experimental.SubchannelInterface;
type ConnectivityState = ConnectivityStateEnum;

/** What the wrapper asks of the endpoint it belongs to. */
export interface PacedOwner {
  /** Whether the endpoint holds a pacing slot now (its attempt may start at once). */
  holdsSlot(): boolean;
  /** The endpoint's next attempt (on `subchannel`) waits for a slot. */
  requestAttempt(subchannel: PacedSubchannel): void;
}

export class PacedSubchannel implements SubchannelInterface {
  constructor(
    readonly inner: SubchannelInterface,
    private readonly owner: PacedOwner,
    private readonly IDLE: ConnectivityState,
  ) {}

  startConnecting(): void {
    // CONNECTING or READY: nothing to start. TRANSIENT_FAILURE: in backoff; it goes IDLE when the
    // backoff ends and pick_first asks again then (passed on, grpc-js would reconnect unpaced).
    if (this.inner.getConnectivityState() !== this.IDLE) return;
    if (this.owner.holdsSlot()) this.inner.startConnecting();
    else this.owner.requestAttempt(this);
  }

  /** The pacer's turn: the attempt starts now. */
  connectNow(): void {
    this.inner.startConnecting();
  }

  getConnectivityState(): ConnectivityState {
    return this.inner.getConnectivityState();
  }
  addConnectivityStateListener(listener: experimental.ConnectivityStateListener): void {
    this.inner.addConnectivityStateListener(listener);
  }
  removeConnectivityStateListener(listener: experimental.ConnectivityStateListener): void {
    this.inner.removeConnectivityStateListener(listener);
  }
  getAddress(): string {
    return this.inner.getAddress();
  }
  throttleKeepalive(newKeepaliveTime: number): void {
    this.inner.throttleKeepalive(newKeepaliveTime);
  }
  ref(): void {
    this.inner.ref();
  }
  unref(): void {
    this.inner.unref();
  }
  getChannelzRef(): ReturnType<SubchannelInterface['getChannelzRef']> {
    return this.inner.getChannelzRef();
  }
  isHealthy(): boolean {
    return this.inner.isHealthy();
  }
  addHealthStateWatcher(listener: experimental.HealthListener): void {
    this.inner.addHealthStateWatcher(listener);
  }
  removeHealthStateWatcher(listener: experimental.HealthListener): void {
    this.inner.removeHealthStateWatcher(listener);
  }
  addDataWatcher(dataWatcher: Parameters<SubchannelInterface['addDataWatcher']>[0]): void {
    this.inner.addDataWatcher(dataWatcher);
  }
  getRealSubchannel(): ReturnType<SubchannelInterface['getRealSubchannel']> {
    return this.inner.getRealSubchannel();
  }
  realSubchannelEquals(other: SubchannelInterface): boolean {
    return this.inner.realSubchannelEquals(other instanceof PacedSubchannel ? other.inner : other);
  }
  getCallCredentials(): CallCredentials {
    return this.inner.getCallCredentials();
  }
  getChannel(): ReturnType<SubchannelInterface['getChannel']> {
    return this.inner.getChannel();
  }
}
