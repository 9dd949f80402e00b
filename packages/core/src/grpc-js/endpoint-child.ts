/**
 * One endpoint of a balancer: a pick_first leaf (grpc-js's
 * `LeafLoadBalancer`) that owns its connection, and everything the balancer
 * keeps about it — connectivity, health, ejection, slow start and call
 * counters. A child lives as long as its endpoint stays in the resolver's
 * list (or a little longer, during a removal hold-down): re-creating the
 * leaf of an unchanged endpoint would restart pick_first and drop a working
 * connection.
 *
 * The leaf is made when the child is first told to connect (`connect()`),
 * which connection pacing (`connection-pacer.ts`) may do turns after the
 * resolver listed the endpoint: until then the child is IDLE and costs one
 * object and its counters. Per-child closures are avoided: a balancer of
 * 10,000 endpoints makes 10,000 of everything here.
 */
import type {
  ChannelOptions,
  connectivityState as ConnectivityStateEnum,
  experimental,
} from '@grpc/grpc-js';
import type { NormalizedEndpoint } from '../endpoint';
import type { EndpointHealth } from '../observer';
import { EndpointStats } from '../endpoint-stats';
import type { TargetMetrics } from '../metrics';
import type { OutlierSubject } from '../outlier-detection';
import type { CallTracker, TrackedEndpoint } from './call-tracking';
import type { EndpointChild } from './endpoint-policy';
import type { ConnectionPacer } from './connection-pacer';
import type { HealthWatcher } from './health-watcher';
import { PacedSubchannel, type PacedOwner } from './paced-subchannel';
import type { Runtime } from './runtime';

type ConnectivityState = ConnectivityStateEnum;

/** Orders the errors of all endpoints, so the most recent one can be named. */
let errorSequence = 0;

/** What a child asks of the balancer that owns it. */
export interface ChildOwner {
  /** The helper methods every leaf shares as they are (re-resolution, channelz). */
  readonly sharedHelper: Pick<
    experimental.ChannelControlHelper,
    'requestReresolution' | 'addChannelzChild' | 'removeChannelzChild'
  >;
  /** The leaf wants a (new) subchannel for its address. */
  createSubchannel(
    child: ChildEndpoint,
    address: experimental.SubchannelAddress,
    args: ChannelOptions,
  ): experimental.SubchannelInterface;
  /** The leaf published a state (already recorded on the child). */
  leafStateChanged(child: ChildEndpoint, previous: ConnectivityState): void;
  /** What a child's picker answers before its leaf has published one (calls queue). */
  readonly queuePicker: experimental.Picker;
  /** When the child's connection attempts start. */
  readonly pacer: Pick<ConnectionPacer<ChildEndpoint>, 'request' | 'holds'>;
}

/**
 * The helper a child's leaf reports to: one object per started child,
 * forwarding to the child and the balancer (no closures).
 */
class LeafHelper implements experimental.ChannelControlHelper {
  constructor(
    private readonly child: ChildEndpoint,
    private readonly owner: ChildOwner,
  ) {}
  createSubchannel(
    address: experimental.SubchannelAddress,
    args: ChannelOptions,
  ): experimental.SubchannelInterface {
    return this.owner.createSubchannel(this.child, address, args);
  }
  updateState(state: ConnectivityState, picker: experimental.Picker): void {
    this.child.leafUpdated(state, picker);
  }
  requestReresolution(): void {
    this.owner.sharedHelper.requestReresolution();
  }
  addChannelzChild(
    child: Parameters<experimental.ChannelControlHelper['addChannelzChild']>[0],
  ): void {
    this.owner.sharedHelper.addChannelzChild(child);
  }
  removeChannelzChild(
    child: Parameters<experimental.ChannelControlHelper['removeChannelzChild']>[0],
  ): void {
    this.owner.sharedHelper.removeChannelzChild(child);
  }
}

export class ChildEndpoint
  implements EndpointChild, OutlierSubject, TrackedEndpoint, experimental.Picker, PacedOwner
{
  /** As policies see it: READY only when in rotation (see `EndpointChild.state`). */
  state: ConnectivityState;
  /** The leaf's own state: the connection's, as pick_first reports it (IDLE before `connect()`). */
  connectivity: ConnectivityState;
  /**
   * The subchannel's state now. It differs from `connectivity` while the
   * leaf stays in TRANSIENT_FAILURE after a failed connection (pick_first's
   * sticky failure) and the subchannel is trying again (CONNECTING).
   */
  subchannelState: ConnectivityState;
  leafPicker: experimental.Picker;
  /** The child picks itself (`pick`): a picker object per child would be one more allocation. */
  readonly picker: experimental.Picker = this;
  readonly stats = new EndpointStats();
  subchannel: experimental.SubchannelInterface | undefined;
  /** The connection's most recent error; cleared when it is READY again. */
  lastError: string | undefined;
  /** When `lastError` came, relative to the errors of other endpoints. */
  lastErrorSequence = 0;
  watcher: HealthWatcher | undefined;
  health: EndpointHealth = 'not_checked';
  /** Epoch ms the current ejection ends; 0 when not ejected. */
  ejectedUntil = 0;
  timesEjected = 0;
  returnTimer: NodeJS.Timeout | undefined;
  /** Epoch ms the connection last became READY (slow start); 0 before. */
  readySince = 0;
  removed = false;
  /**
   * Epoch ms the removal hold-down of this endpoint ends: the resolver
   * removed it en masse while it was connected (`removal-hold-down.ts`).
   * 0 while the resolver lists it.
   */
  heldUntil = 0;
  /** The last resolver update of its balancer that listed it. */
  listedIn = 0;
  /** pick_first for this endpoint; made by the first `connect()`. */
  private leaf: experimental.LeafLoadBalancer | undefined;
  /** An attempt pick_first asked for, waiting for a pacing slot. */
  private pendingAttempt: PacedSubchannel | undefined;
  /** Bound on first use (outlier detection counts calls with them). */
  private counters: Pick<TrackedEndpoint, 'countStart' | 'countEnd'> | undefined;
  /**
   * The subchannel's own state and error, not the leaf's: pick_first wraps
   * the error in sentences of its own ("No connection established. Last
   * error: …"). Made with the first subchannel.
   */
  private subchannelListener: experimental.ConnectivityStateListener | undefined;
  /** The metrics `grpc.subchannel.open_connections` was raised on for this connection (lowered on the same). */
  private openCountedOn: TargetMetrics | undefined;

  constructor(
    private readonly rt: Runtime,
    readonly key: string,
    public info: NormalizedEndpoint | undefined,
    private readonly endpoint: experimental.Endpoint,
    private readonly options: ChannelOptions,
    private readonly resolutionNote: string,
    private readonly owner: ChildOwner,
    private readonly tracker: CallTracker<ChildEndpoint>,
  ) {
    const IDLE = rt.grpc.connectivityState.IDLE;
    this.state = IDLE;
    this.connectivity = IDLE;
    this.subchannelState = IDLE;
    this.leafPicker = owner.queuePicker;
  }

  /** Whether `connect()` has made the leaf (its first connection attempt has started). */
  get started(): boolean {
    return this.leaf !== undefined;
  }

  get countStart(): () => void {
    return (this.counters ??= this.tracker.counters(this)).countStart;
  }

  get countEnd(): (code: number) => void {
    return (this.counters ??= this.tracker.counters(this)).countEnd;
  }

  pick(args: experimental.PickArgs): experimental.PickResult {
    const result = this.leafPicker.pick(args);
    // pick_first hands out the subchannel it was given, a fresh result object per pick.
    if (result.subchannel instanceof PacedSubchannel) result.subchannel = result.subchannel.inner;
    return this.tracker.track(this, result, args);
  }

  holdsSlot(): boolean {
    return this.owner.pacer.holds(this);
  }

  requestAttempt(subchannel: PacedSubchannel): void {
    this.pendingAttempt = subchannel;
    this.owner.pacer.request(this);
  }

  /**
   * Starts the first connection (making the leaf), the attempt pick_first
   * asked for after a failure, or reconnects a leaf that went IDLE.
   */
  connect(): void {
    if (this.removed) return;
    if (this.leaf) {
      const pending = this.pendingAttempt;
      this.pendingAttempt = undefined;
      if (pending && pending.inner === this.subchannel) pending.connectNow();
      else this.leaf.exitIdle();
      return;
    }
    const { LeafLoadBalancer } = this.rt.grpc.experimental;
    this.leaf = new LeafLoadBalancer(
      this.endpoint,
      new LeafHelper(this, this.owner),
      this.options,
      this.resolutionNote,
    );
    this.leaf.startConnecting();
  }

  /** @internal The leaf published a state. */
  leafUpdated(state: ConnectivityState, picker: experimental.Picker): void {
    if (this.removed) return;
    const previous = this.connectivity;
    const READY = this.rt.grpc.connectivityState.READY;
    this.connectivity = state;
    this.leafPicker = picker;
    if (state === READY && previous !== READY) this.readySince = Date.now();
    this.owner.leafStateChanged(this, previous);
  }

  /** The leaf made (or remade) its subchannel. */
  useSubchannel(subchannel: experimental.SubchannelInterface): void {
    const listener = (this.subchannelListener ??= this.makeSubchannelListener());
    this.subchannel?.removeConnectivityStateListener(listener);
    this.closeCounted();
    this.subchannel = subchannel;
    this.subchannelState = subchannel.getConnectivityState();
    subchannel.addConnectivityStateListener(listener);
    // A connection already open (shared from grpc-js's subchannel pool) is open for this channel too.
    if (this.subchannelState === this.rt.grpc.connectivityState.READY && this.tracker.metrics) {
      this.openCounted();
    }
  }

  /** The leaf and its connection go; nothing it reports afterwards is heard. */
  destroy(): void {
    this.removed = true;
    this.pendingAttempt = undefined;
    if (this.subchannelListener) {
      this.subchannel?.removeConnectivityStateListener(this.subchannelListener);
    }
    this.closeCounted();
    this.leaf?.destroy();
  }

  private makeSubchannelListener(): experimental.ConnectivityStateListener {
    const CS = this.rt.grpc.connectivityState;
    return (_subchannel, previous, state, _keepalive, errorMessage) => {
      this.subchannelState = state;
      if (this.tracker.metrics || this.openCountedOn) this.measureConnection(previous, state, CS);
      if (state === CS.READY) {
        this.lastError = undefined;
      } else if (state === CS.TRANSIENT_FAILURE && errorMessage) {
        this.lastError = errorMessage;
        this.lastErrorSequence = ++errorSequence;
      }
    };
  }

  /** gRFC A94's subchannel metrics from one state change of the connection. */
  private measureConnection(
    previous: ConnectivityState,
    state: ConnectivityState,
    CS: typeof import('@grpc/grpc-js').connectivityState,
  ): void {
    const metrics = this.tracker.metrics;
    if (state === CS.READY) {
      metrics?.connectionSucceeded();
      if (metrics) this.openCounted();
    } else if (previous === CS.READY) {
      metrics?.disconnected();
      this.closeCounted();
    } else if (previous === CS.CONNECTING && state === CS.TRANSIENT_FAILURE) {
      metrics?.connectionFailed();
    }
  }

  private openCounted(): void {
    const metrics = this.tracker.metrics;
    if (!metrics || this.openCountedOn) return;
    this.openCountedOn = metrics;
    metrics.openConnectionsChanged(1);
  }

  private closeCounted(): void {
    const metrics = this.openCountedOn;
    if (!metrics) return;
    this.openCountedOn = undefined;
    metrics.openConnectionsChanged(-1);
  }
}
