/**
 * What the balancer knows, for operators: pass an observer in the channel
 * options and read per-endpoint state and counters, or listen for decisions.
 *
 *     const observer = new LoadBalancerObserver();
 *     const client = new GreeterClient(target, creds, { [OBSERVER_OPTION]: observer });
 *     observer.on('eject', (e) => log.warn(`${e.address} ejected: ${e.reason}`));
 *     observer.endpoints(); // [{ address, state, health, ejected, calls, failures, latencyEwmaMs, … }]
 */
import { EventEmitter } from 'node:events';
import { consoleLogger, type Logger } from './logger';

export const OBSERVER_OPTION = 'grpc-lb.observer';

export type EndpointHealth =
  'unknown' | 'serving' | 'not_serving' | 'unimplemented' | 'not_checked';

export interface EndpointSnapshot {
  readonly target: string;
  readonly policy: string;
  readonly address: string;
  /** Connectivity of the endpoint's connection: IDLE, CONNECTING, READY, TRANSIENT_FAILURE. */
  readonly state: string;
  readonly health: EndpointHealth;
  /** Whether calls may go to it now (connected, healthy, not ejected — or everything, in panic mode). */
  readonly inRotation: boolean;
  readonly ejected: boolean;
  /** Epoch ms; 0 when not ejected. */
  readonly ejectedUntil: number;
  readonly timesEjected: number;
  readonly calls: number;
  readonly failures: number;
  readonly outstanding: number;
  readonly latencyEwmaMs: number;
  readonly weight: number;
  /** The weight picks use now (lower during slow start). */
  readonly effectiveWeight: number;
  readonly labels: Readonly<Record<string, string>>;
  /**
   * Epoch ms until which an endpoint the resolver no longer lists keeps taking calls (removal
   * hold-down after a mass removal); 0 for an endpoint the resolver lists.
   */
  readonly heldUntil: number;
}

export interface EjectionEvent {
  readonly target: string;
  readonly address: string;
  readonly reason: string;
  readonly ejectedUntil: number;
  readonly timesEjected: number;
}

export interface ReturnEvent {
  readonly target: string;
  readonly address: string;
}

export interface HealthEvent {
  readonly target: string;
  readonly address: string;
  readonly health: EndpointHealth;
}

export interface PanicEvent {
  readonly target: string;
  readonly active: boolean;
  /** Healthy, non-ejected endpoints as a percentage of all. */
  readonly healthyPercent: number;
  readonly thresholdPercent: number;
}

/**
 * A call the balancer held back under its `limits` or `retryBudget`:
 * `failed` (failed fast with UNAVAILABLE, or a retry ended with the call's
 * own failure), `queued` (waits for a slot) or `deferred` (a hedged attempt
 * waits until the budget allows it or the call ends).
 */
export interface LimitEvent {
  readonly target: string;
  readonly limit: 'maxRequests' | 'maxRequestsPerEndpoint' | 'maxPending' | 'retryBudget';
  /** The configured value (for `retryBudget`, its ratio). */
  readonly value: number;
  readonly action: 'failed' | 'queued' | 'deferred';
  /** The endpoint, for `maxRequestsPerEndpoint`. */
  readonly address?: string;
}

/**
 * Which service config a channel follows. `applied`: the channel took this config (its next
 * picker follows it; every call started after the event does). `rejected`: a document from the
 * resolver was refused (bad JSON, a bad field); the channel keeps the config it had.
 */
export type ConfigEvent =
  | {
      readonly target: string;
      readonly status: 'applied';
      /** Where it came from: a registry document and its revision, the channel option, or the default. */
      readonly source: string;
      /** The effective config (with the default policy filled in). */
      readonly config: Readonly<Record<string, unknown>>;
    }
  | {
      readonly target: string;
      readonly status: 'rejected';
      readonly source: string;
      /** Why, naming the field. */
      readonly error: string;
    };

/** What `serviceConfigs()` reports per channel target. */
export interface ServiceConfigState {
  readonly target: string;
  /** Where the config in force came from (`etcd key config/hello (revision 42)`). */
  readonly source: string;
  readonly config: Readonly<Record<string, unknown>>;
  /** Epoch ms of the last change. */
  readonly appliedAt: number;
  /** The last document refused since then, if any. */
  readonly rejected?: { readonly source: string; readonly error: string; readonly at: number };
}

export interface LoadBalancerObserverEvents {
  eject: [EjectionEvent];
  return: [ReturnEvent];
  health: [HealthEvent];
  panic: [PanicEvent];
  config: [ConfigEvent];
  limit: [LimitEvent];
}

/** @internal What a balancer registers with an observer. */
export interface ObservedBalancer {
  snapshot(): EndpointSnapshot[];
}

/**
 * Listeners are the application's code, called from inside grpc-js (a pick,
 * a call's end, a timer): `emit` calls each in turn and contains what it
 * throws — the other listeners still run, the balancer's state is already
 * updated, and the failure is reported once per listener through the
 * logger of the balancer that emitted — so a bug in a listener can neither
 * change balancing nor crash the process.
 */
export class LoadBalancerObserver extends EventEmitter<LoadBalancerObserverEvents> {
  private readonly balancers = new Set<ObservedBalancer>();
  private logger: Logger = consoleLogger;
  private readonly reported = new WeakSet<object>();
  private readonly configs = new Map<string, ServiceConfigState>();

  /** Every endpoint of every balancer (channel) using this observer. */
  endpoints(): EndpointSnapshot[] {
    return [...this.balancers].flatMap((b) => b.snapshot());
  }

  /** The endpoint with this `host:port`, if any balancer has it. */
  endpoint(address: string): EndpointSnapshot | undefined {
    return this.endpoints().find((e) => e.address === address);
  }

  /**
   * The service config each channel (by target) follows, and where it came from: a registry
   * document with its revision, the channel option, or the default.
   */
  serviceConfigs(): ServiceConfigState[] {
    return [...this.configs.values()];
  }

  /** @internal Called by the resolver adapter when a channel takes or refuses a config. */
  reportConfig(event: ConfigEvent): void {
    const now = Date.now();
    if (event.status === 'applied') {
      this.configs.set(event.target, {
        target: event.target,
        source: event.source,
        config: event.config,
        appliedAt: now,
      });
    } else {
      const current = this.configs.get(event.target);
      if (current) {
        this.configs.set(event.target, {
          ...current,
          rejected: { source: event.source, error: event.error, at: now },
        });
      }
    }
    this.emit('config', event);
  }

  /** grpc-js prints channel options when tracing: show a name, not the balancers inside. */
  toJSON(): string {
    return `LoadBalancerObserver(${this.balancers.size} balancers)`;
  }

  override emit<K extends keyof LoadBalancerObserverEvents>(
    event: K,
    ...args: LoadBalancerObserverEvents[K]
  ): boolean {
    // rawListeners: a once() listener is its wrapper, which removes itself when called.
    const listeners = this.rawListeners(event) as ((...a: unknown[]) => unknown)[];
    for (const listener of listeners) {
      try {
        listener.apply(this, args);
      } catch (error) {
        this.report(event, listener, error);
      }
    }
    return listeners.length > 0;
  }

  /** @internal `logger` receives listener failures (the last balancer attached wins). */
  attach(balancer: ObservedBalancer, logger?: Logger): void {
    this.balancers.add(balancer);
    if (logger) this.logger = logger;
  }

  /** @internal */
  detach(balancer: ObservedBalancer): void {
    this.balancers.delete(balancer);
  }

  private report(event: string, listener: object, error: unknown): void {
    if (this.reported.has(listener)) return;
    this.reported.add(listener);
    const what = error instanceof Error ? error.message : String(error);
    try {
      this.logger.warn(
        `LoadBalancerObserver: a "${event}" listener threw: ${what} (ignored; further failures of this listener are not reported)`,
      );
    } catch {
      // A logger that throws has nowhere left to report to.
    }
  }
}

export function isObserver(value: unknown): value is LoadBalancerObserver {
  return value instanceof LoadBalancerObserver;
}
