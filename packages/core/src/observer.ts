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

export interface LoadBalancerObserverEvents {
  eject: [EjectionEvent];
  return: [ReturnEvent];
  health: [HealthEvent];
  panic: [PanicEvent];
}

/** @internal What a balancer registers with an observer. */
export interface ObservedBalancer {
  snapshot(): EndpointSnapshot[];
}

export class LoadBalancerObserver extends EventEmitter<LoadBalancerObserverEvents> {
  private readonly balancers = new Set<ObservedBalancer>();

  /** Every endpoint of every balancer (channel) using this observer. */
  endpoints(): EndpointSnapshot[] {
    return [...this.balancers].flatMap((b) => b.snapshot());
  }

  /** The endpoint with this `host:port`, if any balancer has it. */
  endpoint(address: string): EndpointSnapshot | undefined {
    return this.endpoints().find((e) => e.address === address);
  }

  /** grpc-js prints channel options when tracing: show a name, not the balancers inside. */
  toJSON(): string {
    return `LoadBalancerObserver(${this.balancers.size} balancers)`;
  }

  /** @internal */
  attach(balancer: ObservedBalancer): void {
    this.balancers.add(balancer);
  }

  /** @internal */
  detach(balancer: ObservedBalancer): void {
    this.balancers.delete(balancer);
  }
}

export function isObserver(value: unknown): value is LoadBalancerObserver {
  return value instanceof LoadBalancerObserver;
}
