/**
 * The contract between grpc-lb's policies and the balancer they share.
 *
 * Every grpc-lb policy is one `EndpointBalancer` (endpoint-balancer.ts):
 * one pick_first leaf per endpoint, kept across updates (endpoint-child.ts);
 * per-call counters (call-tracking.ts); outlier detection, active health
 * checks, the panic threshold and slow start (resilience-controller.ts);
 * the channel state and failure messages (state-aggregation.ts). A policy
 * only says how to pick among the endpoints in rotation
 * (`PolicySpec.makePicker`): new weights, labels, routes, ejections or
 * health apply by building a new picker, never by reconnecting.
 */
import type { connectivityState as ConnectivityStateEnum, experimental } from '@grpc/grpc-js';
import type { NormalizedEndpoint } from '../endpoint';
import type { EndpointStats } from '../endpoint-stats';
import type { SubsetLabels, TargetMetrics } from '../metrics';
import { splitPolicyJson } from '../resilience-config';
import { EndpointBalancer, EndpointPolicyConfig } from './endpoint-balancer';
import type { Runtime } from './runtime';
import type { ZoneRouter } from './zone-routing';

type ConnectivityState = ConnectivityStateEnum;

/** What a policy sees of one endpoint. */
export interface EndpointChild {
  readonly key: string;
  /** Weight, labels and zone from the resolver; absent for endpoints of non-grpc-lb resolvers. */
  readonly info: NormalizedEndpoint | undefined;
  /**
   * READY when the endpoint is in rotation (connected, healthy, not ejected
   * — or any connected one, in panic); CONNECTING while it may still come
   * (connecting, or connected with its first health answer pending);
   * TRANSIENT_FAILURE when it cannot take calls (unreachable, not serving,
   * no health answer in time, ejected); IDLE while it reconnects from idle.
   */
  readonly state: ConnectivityState;
  readonly picker: experimental.Picker;
  readonly stats: EndpointStats;
}

export interface PickerContext<C> {
  readonly config: C;
  /** Every endpoint, in resolver order. */
  readonly children: readonly EndpointChild[];
  /** The endpoints in rotation, in resolver order (never empty). */
  readonly ready: readonly EndpointChild[];
  readonly target: string;
  /** Per-balancer state that outlives pickers (rotation positions); cleared when the config changes. */
  readonly memo: Map<string, unknown>;
  /** The weight to pick with: the resolver's (1 if none) × `rampOf`. */
  readonly weightOf: (child: EndpointChild) => number;
  /** Slow start: the fraction (0–1] of its share an endpoint gets now; 1 outside the window. */
  readonly rampOf: (child: EndpointChild) => number;
  /** Some endpoint is in its slow-start window: equal-share policies should pick by `weightOf`. */
  readonly rampingUp: boolean;
  /** The channel's metrics, when switched on. */
  readonly metrics?: TargetMetrics | undefined;
  /** Zone-aware routing, given only to a policy that `routesZones` itself (when it is on). */
  readonly zones?: ZoneRouter | undefined;
}

export interface PolicySpec<C> {
  readonly name: string;
  /** The policy's own fields (the shared resilience fields are parsed apart). Pure; throws `ConfigError`. */
  parse(json: Readonly<Record<string, unknown>>): C;
  /** The picker while at least one endpoint is in rotation. */
  makePicker(context: PickerContext<C>): experimental.Picker;
  /**
   * The picker reads per-endpoint latency and outstanding calls (least
   * request): always, or for the configs this returns true for.
   */
  readonly needsLatency?: boolean | ((config: C) => boolean);
  /** The subsets a config selects by labels (`grpc_lb.subset.endpoints`); none when absent. */
  readonly subsetsOf?: (config: C) => readonly SubsetLabels[];
  /**
   * The policy applies zone-aware routing itself, within groups of its own
   * (traffic-split subsets), with `PickerContext.zones`; otherwise the
   * balancer does, around `makePicker`.
   */
  readonly routesZones?: boolean;
}

export interface PolicyClasses {
  readonly name: string;
  readonly LoadBalancer: new (
    helper: experimental.ChannelControlHelper,
  ) => experimental.LoadBalancer;
  readonly Config: Parameters<typeof experimental.registerLoadBalancerType>[2];
}

/** The LoadBalancer and config classes of a policy, for `registerLoadBalancerType`. */
export function createEndpointPolicy<C>(rt: Runtime, spec: PolicySpec<C>): PolicyClasses {
  class PolicyConfig extends EndpointPolicyConfig<C> {
    /** Throws `ConfigError` naming the field: grpc-js then rejects the service config. */
    static createFromJson(json: unknown): PolicyConfig {
      const { own, resilience } = splitPolicyJson(json, spec.name);
      return new PolicyConfig(spec.name, spec.parse(own), resilience, json);
    }
  }

  class PolicyLoadBalancer extends EndpointBalancer<C> {
    constructor(helper: experimental.ChannelControlHelper) {
      super(rt, spec, PolicyConfig, helper);
    }
  }

  return { name: spec.name, LoadBalancer: PolicyLoadBalancer, Config: PolicyConfig };
}
