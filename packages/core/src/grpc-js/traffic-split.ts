/**
 * `grpc-lb.traffic_split`: Istio's VirtualService + DestinationRule subsets,
 * in the client. Endpoints are grouped into named subsets by labels; each
 * call's method (and headers) picks a route; the route's split picks a subset
 * by smooth weighted round robin (30/60/10 is exact over every 10 calls);
 * the subset picks an endpoint (round robin or weighted). One connection per
 * endpoint, shared by every subset it belongs to; new routes or weights apply
 * with the next picker, without reconnecting.
 */
import type { experimental } from '@grpc/grpc-js';
import { routeMatches } from '../route-match';
import {
  parseTrafficSplitConfig,
  TRAFFIC_SPLIT_POLICY,
  type RouteConfig,
  type SubsetConfig,
  type TrafficSplitConfig,
} from '../traffic-split-config';
import { SmoothWeightedRoundRobin } from '../weighted-schedule';
import { METHOD_PICK_KEY } from './config-selector';
import {
  createEndpointPolicy,
  type EndpointChild,
  type PolicyClasses,
  type PolicySpec,
} from './endpoint-policy';
import { RoundRobinPicker, WeightedPicker } from './pickers';
import type { Runtime } from './runtime';

const enum SubsetState {
  Ready,
  Connecting,
  Empty,
}

interface SubsetView {
  readonly config: SubsetConfig;
  readonly state: SubsetState;
  readonly picker: experimental.Picker | undefined;
  /** Why the subset cannot take calls, for error messages. */
  readonly why: string;
}

function hasLabels(child: EndpointChild, wanted: Readonly<Record<string, string>>): boolean {
  const labels = child.info?.labels ?? {};
  for (const key in wanted) {
    if (labels[key] !== wanted[key]) return false;
  }
  return true;
}

function describeLabels(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length ? pairs.join(',') : 'any labels';
}

/** The policy's picking rules, apart from the endpoint machinery (tests drive `makePicker` directly). */
export function trafficSplitSpec(rt: Runtime): PolicySpec<TrafficSplitConfig> {
  const { PickResultType, UnavailablePicker } = rt.grpc.experimental;
  const { Metadata } = rt.grpc;
  const UNAVAILABLE = rt.grpc.status.UNAVAILABLE;
  const CS = rt.grpc.connectivityState;

  const QUEUE: experimental.PickResult = {
    pickResultType: PickResultType.QUEUE,
    subchannel: null,
    status: null,
    onCallStarted: null,
    onCallEnded: null,
  };

  function fail(details: string): experimental.PickResult {
    return {
      pickResultType: PickResultType.TRANSIENT_FAILURE,
      subchannel: null,
      status: { code: UNAVAILABLE, details, metadata: new Metadata() },
      onCallStarted: null,
      onCallEnded: null,
    };
  }

  function viewSubset(
    config: SubsetConfig,
    children: readonly EndpointChild[],
    context: {
      memo: Map<string, unknown>;
      target: string;
      weightOf: (c: EndpointChild) => number;
      rampOf: (c: EndpointChild) => number;
      rampingUp: boolean;
    },
  ): SubsetView {
    const { memo, target, weightOf, rampOf, rampingUp } = context;
    const members = children.filter((c) => hasLabels(c, config.labels));
    const ready = members.filter((c) => c.state === CS.READY);
    const where = `subset "${config.name}" (${describeLabels(config.labels)}) of ${target}`;
    if (ready.length > 0) {
      if (config.policy === 'round_robin' && !rampingUp) {
        return {
          config,
          state: SubsetState.Ready,
          picker: new RoundRobinPicker(ready, memo, `subset:${config.name}`),
          why: '',
        };
      }
      const equal = config.policy === 'round_robin';
      const weighted = new WeightedPicker(
        ready,
        equal ? rampOf : weightOf,
        new UnavailablePicker({ details: `grpc-lb: ${where}: no weight above 0` }),
      );
      if (weighted.size > 0) return { config, state: SubsetState.Ready, picker: weighted, why: '' };
    }
    if (members.some((c) => c.state === CS.CONNECTING || c.state === CS.IDLE)) {
      return {
        config,
        state: SubsetState.Connecting,
        picker: undefined,
        why: `${where} is connecting`,
      };
    }
    const why =
      members.length === 0
        ? `${where} has no endpoints`
        : ready.length > 0
          ? `${where}: its ${ready.length} ready endpoints all have weight 0`
          : `${where}: all ${members.length} endpoints failing`;
    return { config, state: SubsetState.Empty, picker: undefined, why };
  }

  class TrafficSplitPicker implements experimental.Picker {
    /** Redistribution skips subsets that cannot take calls. */
    private readonly available: ((subset: number) => boolean) | undefined;

    constructor(
      private readonly config: TrafficSplitConfig,
      private readonly subsets: readonly SubsetView[],
      /** One schedule per route, indexes into `subsets`; kept across pickers so shares stay exact. */
      private readonly schedules: readonly SmoothWeightedRoundRobin<number>[],
      private readonly unrouted: experimental.Picker,
      private readonly target: string,
    ) {
      this.available =
        config.onEmptySubset === 'redistribute'
          ? (s) => this.subsets[s]!.state !== SubsetState.Empty
          : undefined;
    }

    pick(args: experimental.PickArgs): experimental.PickResult {
      const method = args.extraPickInfo[METHOD_PICK_KEY] ?? '';
      const routes = this.config.routes;
      for (let i = 0; i < routes.length; i++) {
        if (routeMatches(routes[i]!.match, method, (name) => args.metadata.get(name))) {
          return this.pickRoute(routes[i]!, this.schedules[i]!, args);
        }
      }
      return this.unrouted.pick(args);
    }

    private pickRoute(
      route: RouteConfig,
      schedule: SmoothWeightedRoundRobin<number>,
      args: experimental.PickArgs,
    ): experimental.PickResult {
      const available = this.available;
      const at = schedule.choose(available);
      if (at < 0) {
        if (!available)
          return fail(`grpc-lb: route "${route.name}" of ${this.target} has no weight above 0`);
        const reasons = route.split.map(
          (t) => this.subsets.find((v) => v.config.name === t.subset)!.why,
        );
        return fail(
          `grpc-lb: route "${route.name}" of ${this.target}: no subset can take calls: ${reasons.join('; ')}`,
        );
      }
      const subset = this.subsets[schedule.itemAt(at)]!;
      // A call queued while its subset connects takes its turn when it is picked again.
      if (subset.state === SubsetState.Connecting) return QUEUE;
      schedule.commit(at, available);
      return subset.state === SubsetState.Ready
        ? subset.picker!.pick(args)
        : fail(`grpc-lb: ${subset.why} (route "${route.name}")`);
    }
  }

  return {
    name: TRAFFIC_SPLIT_POLICY,
    parse: (json) => parseTrafficSplitConfig(json),
    makePicker({ config, children, ready, target, memo, weightOf, rampOf, rampingUp }) {
      const subsets = config.subsets.map((s) =>
        viewSubset(s, children, { memo, target, weightOf, rampOf, rampingUp }),
      );
      let schedules = memo.get('route-schedules') as SmoothWeightedRoundRobin<number>[] | undefined;
      if (!schedules) {
        schedules = config.routes.map(
          (route) =>
            new SmoothWeightedRoundRobin(
              route.split.map(
                (t) => [config.subsets.findIndex((s) => s.name === t.subset), t.weight] as const,
              ),
            ),
        );
        memo.set('route-schedules', schedules);
      }
      return new TrafficSplitPicker(
        config,
        subsets,
        schedules,
        new RoundRobinPicker(ready, memo, 'all'),
        target,
      );
    },
  };
}

export function createTrafficSplitPolicy(rt: Runtime): PolicyClasses {
  return createEndpointPolicy(rt, trafficSplitSpec(rt));
}
