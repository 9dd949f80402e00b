/**
 * One endpoint of a balancer: a pick_first leaf (grpc-js's
 * `LeafLoadBalancer`) that owns its connection, and everything the balancer
 * keeps about it — connectivity, health, ejection, slow start and call
 * counters. A child lives as long as its endpoint stays in the resolver's
 * list (or a little longer, during a removal hold-down): re-creating the
 * leaf of an unchanged endpoint would restart pick_first and drop a working
 * connection.
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
import type { HealthWatcher } from './health-watcher';
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
}

export class ChildEndpoint implements EndpointChild, OutlierSubject, TrackedEndpoint {
  /** As policies see it: READY only when in rotation (see `EndpointChild.state`). */
  state: ConnectivityState;
  /** The leaf's own state: the connection's, as pick_first reports it. */
  connectivity: ConnectivityState;
  /**
   * The subchannel's state now. It differs from `connectivity` while the
   * leaf stays in TRANSIENT_FAILURE after a failed connection (pick_first's
   * sticky failure) and the subchannel is trying again (CONNECTING).
   */
  subchannelState: ConnectivityState;
  leafPicker: experimental.Picker;
  readonly leaf: experimental.LeafLoadBalancer;
  readonly picker: experimental.Picker;
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
  readonly countStart: () => void;
  readonly countEnd: (code: number) => void;
  /**
   * The subchannel's own state and error, not the leaf's: pick_first wraps
   * the error in sentences of its own ("No connection established. Last
   * error: …").
   */
  private readonly subchannelListener: experimental.ConnectivityStateListener;
  /** The metrics `grpc.subchannel.open_connections` was raised on for this connection (lowered on the same). */
  private openCountedOn: TargetMetrics | undefined;
  private readonly READY: ConnectivityState;

  constructor(
    rt: Runtime,
    readonly key: string,
    public info: NormalizedEndpoint | undefined,
    endpoint: experimental.Endpoint,
    options: ChannelOptions,
    resolutionNote: string,
    owner: ChildOwner,
    private readonly tracker: CallTracker<ChildEndpoint>,
  ) {
    const { LeafLoadBalancer, QueuePicker } = rt.grpc.experimental;
    const CS = rt.grpc.connectivityState;
    this.state = CS.IDLE;
    this.connectivity = CS.IDLE;
    this.subchannelState = CS.IDLE;
    this.READY = CS.READY;
    this.subchannelListener = (_subchannel, previous, state, _keepalive, errorMessage) => {
      this.subchannelState = state;
      if (this.tracker.metrics || this.openCountedOn) this.measureConnection(previous, state, CS);
      if (state === CS.READY) {
        this.lastError = undefined;
      } else if (state === CS.TRANSIENT_FAILURE && errorMessage) {
        this.lastError = errorMessage;
        this.lastErrorSequence = ++errorSequence;
      }
    };
    this.picker = { pick: (args) => this.tracker.track(this, this.leafPicker.pick(args), args) };
    const counters = tracker.counters(this);
    this.countStart = counters.countStart;
    this.countEnd = counters.countEnd;
    // Only createSubchannel and updateState are per endpoint; the rest are bound once per balancer.
    const helper: experimental.ChannelControlHelper = {
      ...owner.sharedHelper,
      createSubchannel: (address, args) => owner.createSubchannel(this, address, args),
      updateState: (state, picker) => {
        if (this.removed) return;
        const previous = this.connectivity;
        this.connectivity = state;
        this.leafPicker = picker;
        if (state === CS.READY && previous !== CS.READY) this.readySince = Date.now();
        owner.leafStateChanged(this, previous);
      },
    };
    this.leaf = new LeafLoadBalancer(endpoint, helper, options, resolutionNote);
    this.leafPicker = new QueuePicker(this.leaf as unknown as experimental.LoadBalancer);
  }

  /** The leaf made (or remade) its subchannel. */
  useSubchannel(subchannel: experimental.SubchannelInterface): void {
    this.subchannel?.removeConnectivityStateListener(this.subchannelListener);
    this.closeCounted();
    this.subchannel = subchannel;
    this.subchannelState = subchannel.getConnectivityState();
    subchannel.addConnectivityStateListener(this.subchannelListener);
    // A connection already open (shared from grpc-js's subchannel pool) is open for this channel too.
    if (this.subchannelState === this.READY && this.tracker.metrics) this.openCounted();
  }

  /** The leaf and its connection go; nothing it reports afterwards is heard. */
  destroy(): void {
    this.removed = true;
    this.subchannel?.removeConnectivityStateListener(this.subchannelListener);
    this.closeCounted();
    this.leaf.destroy();
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
