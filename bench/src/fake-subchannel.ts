/**
 * The channel side of a load balancer, without a network: micro benchmarks
 * drive the real policies through grpc-js's `experimental` API and hand them
 * these stand-ins for connections. A `FakeSubchannel` never dials its
 * address; it only walks the connectivity states pick_first expects.
 */
import type * as grpc from '@grpc/grpc-js';
import type { connectivityState as ConnectivityStateEnum, experimental } from '@grpc/grpc-js';

type Grpc = typeof grpc;
type ConnectivityState = ConnectivityStateEnum;
type SubchannelInterface = experimental.SubchannelInterface;
type ChannelzRef = ReturnType<SubchannelInterface['getChannelzRef']>;

/**
 * How a stand-in connection becomes READY.
 *
 * - `connects`: IDLE when created; `startConnecting()` moves it to CONNECTING
 *   at once and to READY on the next microtask, the way a real subchannel's
 *   handshake resolves after the balancer's update has returned. Every READY
 *   is a separate state change the balancer reacts to.
 * - `connected`: READY when created, as when grpc-js's subchannel pool already
 *   holds a connection to the address. pick_first then picks it during the
 *   update itself.
 */
export type ConnectMode = 'connects' | 'connected';

let nextId = 1;

export class FakeSubchannel implements SubchannelInterface {
  readonly id = nextId++;
  private state: ConnectivityState;
  private readonly listeners = new Set<experimental.ConnectivityStateListener>();
  private refs = 0;

  constructor(
    private readonly channel: FakeChannel,
    readonly address: string,
    mode: ConnectMode,
  ) {
    const CS = channel.grpc.connectivityState;
    this.state = mode === 'connected' ? CS.READY : CS.IDLE;
    if (mode === 'connected') channel.readySubchannels++;
  }

  getConnectivityState(): ConnectivityState {
    return this.state;
  }

  addConnectivityStateListener(listener: experimental.ConnectivityStateListener): void {
    this.listeners.add(listener);
  }

  removeConnectivityStateListener(listener: experimental.ConnectivityStateListener): void {
    this.listeners.delete(listener);
  }

  startConnecting(): void {
    const CS = this.channel.grpc.connectivityState;
    if (this.state !== CS.IDLE) return;
    this.transition(CS.CONNECTING);
    this.channel.connecting++;
    queueMicrotask(() => {
      this.channel.connecting--;
      if (this.state === CS.CONNECTING) this.transition(CS.READY);
    });
  }

  getAddress(): string {
    return this.address;
  }

  /** Refs held on it: above 0 while a balancer uses it (its stand-in connection is open). */
  get refCount(): number {
    return this.refs;
  }

  throttleKeepalive(): void {}

  ref(): void {
    this.refs++;
    this.channel.refs++;
  }

  unref(): void {
    this.refs--;
    this.channel.refs--;
    if (this.refs < 0) throw new Error(`fake subchannel ${this.address} unref'd below 0`);
  }

  getChannelzRef(): ChannelzRef {
    // grpc-js's `EntityTypes` is a const enum, not reachable at run time.
    return { kind: 'subchannel', id: this.id, name: this.address } as unknown as ChannelzRef;
  }

  isHealthy(): boolean {
    return true;
  }

  addHealthStateWatcher(): void {}

  removeHealthStateWatcher(): void {}

  addDataWatcher(): void {}

  /** Itself: a stand-in wraps nothing (grpc-lb's balancers compare wrapped subchannels by this). */
  getRealSubchannel(): ReturnType<SubchannelInterface['getRealSubchannel']> {
    return this as unknown as ReturnType<SubchannelInterface['getRealSubchannel']>;
  }

  realSubchannelEquals(other: SubchannelInterface): boolean {
    return other.getRealSubchannel() === this.getRealSubchannel();
  }

  getCallCredentials(): grpc.CallCredentials {
    return this.channel.grpc.credentials.createEmpty();
  }

  getChannel(): grpc.Channel {
    throw new Error('a FakeSubchannel has no channel: it never connects');
  }

  private transition(state: ConnectivityState): void {
    const previous = this.state;
    this.state = state;
    if (state === this.channel.grpc.connectivityState.READY) this.channel.readySubchannels++;
    // A listener may remove itself or add another (pick_first does both on READY).
    for (const listener of [...this.listeners]) listener(this, previous, state, 0);
  }
}

/**
 * The `ChannelControlHelper` a top-level balancer reports to: it creates
 * `FakeSubchannel`s and keeps the latest state and picker, as a channel would.
 */
export class FakeChannel implements experimental.ChannelControlHelper {
  state: ConnectivityState;
  picker: experimental.Picker | undefined;
  errorMessage: string | null = null;
  /** Every `updateState` call. */
  stateUpdates = 0;
  reresolutionRequests = 0;
  createdSubchannels = 0;
  readySubchannels = 0;
  /** Stand-ins between CONNECTING and their READY microtask. */
  connecting = 0;
  /** Refs held on this channel's subchannels; 0 once every balancer using them is destroyed. */
  refs = 0;
  private readonly prepared = new Map<string, FakeSubchannel>();

  constructor(
    readonly grpc: Grpc,
    /** How the subchannels created from now on connect; may be changed between updates. */
    public mode: ConnectMode,
  ) {
    this.state = grpc.connectivityState.IDLE;
  }

  /**
   * Creates the stand-ins for these `host:port` addresses now, so that a heap
   * measurement taken afterwards counts only what the balancer allocates.
   */
  prepare(addresses: Iterable<string>): void {
    for (const address of addresses) {
      this.prepared.set(address, new FakeSubchannel(this, address, this.mode));
    }
  }

  createSubchannel(address: experimental.SubchannelAddress): SubchannelInterface {
    this.createdSubchannels++;
    const text = this.grpc.experimental.subchannelAddressToString(address);
    return this.prepared.get(text) ?? new FakeSubchannel(this, text, this.mode);
  }

  updateState(
    state: ConnectivityState,
    picker: experimental.Picker,
    errorMessage: string | null,
  ): void {
    this.state = state;
    this.picker = picker;
    this.errorMessage = errorMessage;
    this.stateUpdates++;
  }

  requestReresolution(): void {
    this.reresolutionRequests++;
  }

  addChannelzChild(): void {}

  removeChannelzChild(): void {}
}
