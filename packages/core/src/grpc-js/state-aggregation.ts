/**
 * State aggregation: from the endpoints' connectivity, health and ejection
 * to what the channel shows — READY with the policy's picker while any
 * endpoint is in rotation, CONNECTING (calls queue) while some endpoint may
 * still come, TRANSIENT_FAILURE (calls fail at once, saying why) when none
 * can — and to the state each endpoint has in the policy's eyes.
 */
import type { connectivityState as ConnectivityStateEnum, experimental } from '@grpc/grpc-js';
import type { ChildEndpoint } from './endpoint-child';
import type { Runtime } from './runtime';

type ConnectivityState = ConnectivityStateEnum;

/** What the resilience controller decided for this aggregation. */
export interface Verdicts {
  /** Panic mode: every connected endpoint is in rotation, whatever its health or ejection. */
  readonly panic: boolean;
  healthOk(child: ChildEndpoint): boolean;
}

export interface Aggregate {
  readonly state: ConnectivityState;
  /** The endpoints in rotation, in resolver order. */
  readonly ready: readonly ChildEndpoint[];
  /** Endpoints whose leaf went IDLE: the balancer reconnects them (every endpoint stays connected). */
  readonly idle: readonly ChildEndpoint[];
  /** Why no call can be taken (TRANSIENT_FAILURE only). */
  readonly failure: string | undefined;
}

/** A picker whose real picker is made on its first pick. */
export function lazyPicker(make: () => experimental.Picker): experimental.Picker {
  let built: experimental.Picker | undefined;
  return {
    pick(args) {
      built ??= make();
      return built.pick(args);
    },
  };
}

export class StateAggregator {
  private readonly CS: typeof import('@grpc/grpc-js').connectivityState;

  constructor(private readonly rt: Runtime) {
    this.CS = rt.grpc.connectivityState;
  }

  /** Sets each child's `state` as policies see it, and says what the channel shows. */
  aggregate(children: readonly ChildEndpoint[], verdicts: Verdicts, target: string): Aggregate {
    const CS = this.CS;
    const ready: ChildEndpoint[] = [];
    const idle: ChildEndpoint[] = [];
    let waiting = 0;
    for (const child of children) {
      const connected = child.connectivity === CS.READY;
      const usable =
        connected && (verdicts.panic || (child.ejectedUntil === 0 && verdicts.healthOk(child)));
      child.state = usable ? CS.READY : connected ? CS.TRANSIENT_FAILURE : child.connectivity;
      if (usable) ready.push(child);
      else if (child.connectivity === CS.CONNECTING || (connected && child.health === 'unknown'))
        waiting++;
      else if (child.connectivity === CS.IDLE) idle.push(child);
    }
    if (ready.length > 0) return { state: CS.READY, ready, idle, failure: undefined };
    if (waiting > 0 || idle.length > 0) {
      return { state: CS.CONNECTING, ready, idle, failure: undefined };
    }
    return {
      state: CS.TRANSIENT_FAILURE,
      ready,
      idle,
      failure: this.describeFailure(children, target),
    };
  }

  /** The picker for an aggregate: the policy's (`makeReady`), a queue, or a failure. */
  pickerFor(
    aggregate: Aggregate,
    makeReady: () => experimental.Picker,
    queueOwner: experimental.LoadBalancer,
  ): experimental.Picker {
    const { QueuePicker, UnavailablePicker } = this.rt.grpc.experimental;
    if (aggregate.state === this.CS.READY) {
      // Built at the first pick: a burst of state changes (10,000 endpoints connecting) costs one build.
      return lazyPicker(makeReady);
    }
    if (aggregate.state === this.CS.CONNECTING) return new QueuePicker(queueOwner);
    return new UnavailablePicker({ details: aggregate.failure ?? '' });
  }

  private describeFailure(children: readonly ChildEndpoint[], target: string): string {
    const connected = children.filter((c) => c.connectivity === this.CS.READY).length;
    return connected > 0
      ? `grpc-lb: no usable endpoint for ${target}: ${connected} of ${children.length} connected, all ejected or unhealthy`
      : `grpc-lb: no reachable endpoint for ${target}: all ${children.length} failing` +
          (this.lastError ? ` (last error: ${this.lastError})` : '');
  }

  /** The most recent error a leaf reported (kept as before; see the balancer). */
  lastError: string | null = null;
}
