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

/** What the resilience controller decided for this aggregation, and what failure messages name. */
export interface Verdicts {
  /** Panic mode: every connected endpoint is in rotation, whatever its health or ejection. */
  readonly panic: boolean;
  healthOk(child: ChildEndpoint): boolean;
  /** Connected, its first health answer pending within the bounded wait. */
  awaitingHealth(child: ChildEndpoint): boolean;
  /** The health check's answer for an endpoint that failed it (`NOT_SERVING`, …). */
  healthDetail(child: ChildEndpoint): string;
  /** The health-checked service name; undefined when health checks are off. */
  readonly healthService: string | undefined;
  readonly target: string;
  /** The resolver's note on its last update ('' for none). */
  readonly note: string;
}

export interface Aggregate {
  readonly state: ConnectivityState;
  /** The endpoints in rotation, in resolver order. */
  readonly ready: readonly ChildEndpoint[];
  /** Endpoints whose leaf went IDLE: the balancer reconnects them (every endpoint stays connected). */
  readonly idle: readonly ChildEndpoint[];
  /** How many endpoints are connecting, or connected with their first health answer pending. */
  readonly waiting: number;
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
  aggregate(children: readonly ChildEndpoint[], verdicts: Verdicts): Aggregate {
    const CS = this.CS;
    const ready: ChildEndpoint[] = [];
    const idle: ChildEndpoint[] = [];
    let waiting = 0;
    for (const child of children) {
      const connected = child.connectivity === CS.READY;
      const usable =
        connected && (verdicts.panic || (child.ejectedUntil === 0 && verdicts.healthOk(child)));
      // Connected, first health answer pending: it may still come, like a connection being made.
      const pending =
        connected && !usable && child.ejectedUntil === 0 && verdicts.awaitingHealth(child);
      child.state = usable
        ? CS.READY
        : pending
          ? CS.CONNECTING
          : connected
            ? CS.TRANSIENT_FAILURE
            : child.connectivity;
      if (usable) ready.push(child);
      else if (pending || child.connectivity === CS.CONNECTING) waiting++;
      else if (child.connectivity === CS.IDLE) idle.push(child);
    }
    if (ready.length > 0) return { state: CS.READY, ready, idle, waiting, failure: undefined };
    if (waiting > 0 || idle.length > 0) {
      return { state: CS.CONNECTING, ready, idle, waiting, failure: undefined };
    }
    return {
      state: CS.TRANSIENT_FAILURE,
      ready,
      idle,
      waiting,
      failure: this.describeFailure(children, verdicts),
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

  /**
   * One sentence: which target, how many endpoints in which state, and the
   * most recent relevant error — a connection error of an endpoint still
   * failing, the health check's answers — then the resolver's note if any.
   */
  private describeFailure(children: readonly ChildEndpoint[], verdicts: Verdicts): string {
    const READY = this.CS.READY;
    let unreachable = 0;
    let connected = 0;
    let ejected = 0;
    let unhealthy = 0;
    const answers = new Set<string>();
    let lastError: ChildEndpoint | undefined;
    for (const child of children) {
      if (child.connectivity !== READY) {
        unreachable++;
        if (
          child.lastError !== undefined &&
          (!lastError || child.lastErrorSequence > lastError.lastErrorSequence)
        ) {
          lastError = child;
        }
        continue;
      }
      connected++;
      if (child.ejectedUntil !== 0) {
        ejected++;
      } else if (!verdicts.healthOk(child)) {
        unhealthy++;
        answers.add(verdicts.healthDetail(child));
      }
    }
    const parts: string[] = [];
    if (unreachable > 0) {
      parts.push(
        `${unreachable} of ${children.length} endpoints in TRANSIENT_FAILURE` +
          (lastError ? ` (last error: ${lastError.lastError})` : ''),
      );
    }
    if (unhealthy > 0) {
      parts.push(
        `${unhealthy} of ${connected} connected endpoints failed their health check ` +
          `(service ${JSON.stringify(verdicts.healthService ?? '')}: ${[...answers].join(', ')})`,
      );
    }
    if (ejected > 0)
      parts.push(`${ejected} of ${connected} connected endpoints ejected as outliers`);
    return (
      `grpc-lb: no endpoint of ${verdicts.target} can take calls: ${parts.join('; ')}` +
      (verdicts.note ? `; resolver: ${verdicts.note}` : '')
    );
  }
}

/** The failure of a balancer whose resolver gave it no endpoints. */
export function describeNoEndpoints(target: string, note: string): string {
  return `grpc-lb: no endpoints for ${target}` + (note ? ` (resolver: ${note})` : '');
}
