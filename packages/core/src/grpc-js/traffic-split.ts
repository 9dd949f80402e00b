/**
 * `grpc-lb.traffic_split`: Istio's VirtualService + DestinationRule subsets,
 * in the client. Endpoints are grouped into named subsets by labels; each
 * call's method (and headers) picks a route; the route's split picks a subset
 * by smooth weighted round robin (30/60/10 is exact over every 10 calls);
 * the subset picks an endpoint (round robin, weighted round robin, least
 * request or random). One connection per
 * endpoint, shared by every subset it belongs to; new routes or weights apply
 * with the next picker, without reconnecting.
 */
import type { experimental } from '@grpc/grpc-js';
import { DEFAULT_CONSISTENT_HASH } from '../consistent-hash-config';
import { DEFAULT_LEAST_REQUEST } from '../least-request-config';
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
import { makeConsistentHashPicker } from './consistent-hash';
import { LeastRequestPicker } from './least-request';
import { RandomPicker, RoundRobinPicker, WeightedPicker } from './pickers';
import type { Runtime } from './runtime';
import type { ZoneRouter } from './zone-routing';

const enum SubsetState {
  /** Some endpoint is in rotation with a weight above 0. */
  Ready,
  /** None is, but one may soon be: connecting, idle, or connected with its first health answer pending. */
  Waiting,
  /** None is and none is on its way: no endpoint, or all failing, ejected or of weight 0. */
  Empty,
}

interface SubsetView {
  readonly config: SubsetConfig;
  readonly state: SubsetState;
  /** Set when the subset is Ready. */
  readonly picker: experimental.Picker | undefined;
  /** Why an Empty subset cannot take calls, for error messages. */
  readonly why: string;
}

/** Subsets of a route as [index into the config's subsets, weight], weight above 0 only. */
type Targets = readonly (readonly [number, number])[];

/** Sets of available subsets a route remembers a spreading schedule for (2^subsets at most). */
const MAX_SPREADS = 64;

/**
 * One route's schedules, kept across pickers (in the balancer's memo) so that
 * shares stay exact through state changes.
 *
 * `turns` runs over every subset of the split and advances on every call the
 * route takes, whatever state the subsets are in: it is never held back, so
 * the route never stalls on one subset, and when a subset comes back its
 * share is exact again at once. A turn that falls to a subset unable to take
 * the call is handed on through a second schedule over the subsets that can
 * (their weights, so in proportion); there is one such schedule per set of
 * available subsets, kept, so a set that recurs resumes its cycle where it
 * stopped instead of restarting on the heaviest subset.
 */
class RouteSchedule {
  readonly turns: SmoothWeightedRoundRobin<number>;
  private readonly spreads = new Map<string, SmoothWeightedRoundRobin<number>>();

  constructor(readonly targets: Targets) {
    this.turns = new SmoothWeightedRoundRobin(targets);
  }

  spreadOver(available: Targets): SmoothWeightedRoundRobin<number> {
    const key = available.map(([subset]) => subset).join(',');
    let spread = this.spreads.get(key);
    if (!spread) {
      if (this.spreads.size >= MAX_SPREADS) this.spreads.clear();
      spread = new SmoothWeightedRoundRobin(available);
      this.spreads.set(key, spread);
    }
    return spread;
  }
}

/** What one picker knows of a route: its schedules and which of its subsets can take calls now. */
interface RoutePlan {
  readonly route: RouteConfig;
  readonly schedule: RouteSchedule;
  /** Over the route's Ready subsets; undefined when none is. */
  readonly spread: SmoothWeightedRoundRobin<number> | undefined;
  /** Some subset of the route is Waiting. */
  readonly waiting: boolean;
}

const SCHEDULES_KEY = 'traffic_split:routes';

interface StoredSchedules {
  /** The subsets and splits the schedules were made for. */
  readonly shape: string;
  readonly routes: readonly RouteSchedule[];
}

/**
 * Balancers already warned that their resolver is not grpc-lb's, by their
 * memo: the map lives as long as its balancer (it is cleared, not replaced,
 * on a config change), so the warning comes once per balancer.
 */
const warnedBalancers = new WeakSet<object>();

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

function quoted(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(', ');
}

function describeEndpoints(children: readonly EndpointChild[]): string {
  const shown = children.slice(0, 3).map((c) => c.key);
  const more = children.length - shown.length;
  return `endpoints ${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
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

  function isWaiting(child: EndpointChild): boolean {
    return child.state === CS.CONNECTING || child.state === CS.IDLE;
  }

  /**
   * The subset's picker over its endpoints in rotation (`ready`, not empty),
   * by its policy; undefined when none of them has a weight above 0 to pick
   * with. `round_robin` and `random` give equal shares (slowed by slow start
   * only); `weighted_round_robin` and `least_request` go by the endpoints'
   * weights.
   */
  function subsetPicker(
    config: SubsetConfig,
    ready: readonly EndpointChild[],
    members: readonly EndpointChild[],
    context: {
      memo: Map<string, unknown>;
      where: string;
      weightOf: (c: EndpointChild) => number;
      rampOf: (c: EndpointChild) => number;
      rampingUp: boolean;
    },
  ): experimental.Picker | undefined {
    const { memo, where, weightOf, rampOf, rampingUp } = context;
    switch (config.policy) {
      case 'round_robin':
      case 'weighted_round_robin': {
        if (config.policy === 'round_robin' && !rampingUp) {
          return new RoundRobinPicker(ready, memo, `subset:${config.name}`);
        }
        const weighted = new WeightedPicker(
          ready,
          config.policy === 'round_robin' ? rampOf : weightOf,
          new UnavailablePicker({ details: `grpc-lb: ${where}: no weight above 0` }),
        );
        return weighted.size > 0 ? weighted : undefined;
      }
      case 'least_request': {
        const weighted = ready.filter((c) => weightOf(c) > 0);
        return weighted.length > 0
          ? new LeastRequestPicker(weighted, DEFAULT_LEAST_REQUEST, weightOf)
          : undefined;
      }
      case 'random':
        return new RandomPicker(ready, rampingUp ? rampOf : undefined);
      case 'consistent_hash':
        return makeConsistentHashPicker({
          config: config.consistentHash ?? DEFAULT_CONSISTENT_HASH,
          children: members,
          ready,
          memo,
          scope: `subset:${config.name}`,
          rampOf,
          rampingUp,
          warn: (message) => rt.logger.warn(`${TRAFFIC_SPLIT_POLICY}: ${where}: ${message}`),
        });
    }
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
      zones: ZoneRouter | undefined;
    },
  ): SubsetView {
    const { target } = context;
    const members = children.filter((c) => hasLabels(c, config.labels));
    const ready = members.filter((c) => c.state === CS.READY);
    const where = `subset "${config.name}" (${describeLabels(config.labels)}) of ${target}`;
    if (ready.length > 0) {
      // Zone-aware routing, when on, applies within each subset (its own members' zones).
      const picker = context.zones
        ? context.zones.route(
            members,
            ready,
            (inZoneMembers, inZone, memo) =>
              subsetPicker(config, inZone, inZoneMembers, { ...context, memo, where }),
            `subset ${config.name}`,
          )
        : subsetPicker(config, ready, members, { ...context, where });
      if (picker) return { config, state: SubsetState.Ready, picker, why: '' };
    }
    if (members.some(isWaiting)) {
      return { config, state: SubsetState.Waiting, picker: undefined, why: '' };
    }
    const why =
      members.length === 0
        ? `${where} has no endpoints`
        : ready.length > 0
          ? `${where}: its ${ready.length} ready endpoints all have weight 0`
          : `${where}: all ${members.length} endpoints failing`;
    return { config, state: SubsetState.Empty, picker: undefined, why };
  }

  /** The routes' schedules from the memo, made afresh when the config's subsets or splits differ. */
  function routeSchedules(
    config: TrafficSplitConfig,
    memo: Map<string, unknown>,
  ): readonly RouteSchedule[] {
    const shape = JSON.stringify([
      config.subsets.map((s) => s.name),
      config.routes.map((r) => r.split),
    ]);
    const stored = memo.get(SCHEDULES_KEY) as StoredSchedules | undefined;
    if (stored?.shape === shape) return stored.routes;
    const routes = config.routes.map(
      (route) =>
        new RouteSchedule(
          route.split
            .filter((t) => t.weight > 0)
            .map((t) => [config.subsets.findIndex((s) => s.name === t.subset), t.weight] as const),
        ),
    );
    memo.set(SCHEDULES_KEY, { shape, routes } satisfies StoredSchedules);
    return routes;
  }

  /**
   * Our resolvers put labels on every endpoint, and our ConfigSelector puts
   * the method in every pick; another resolver does neither, and then routes
   * by method, prefix or regex never match and subsets by labels stay empty. Says so
   * once per balancer: `noLabels` / `noMethod` are what is missing.
   */
  function warnForeignResolver(
    context: {
      config: TrafficSplitConfig;
      children: readonly EndpointChild[];
      target: string;
      memo: Map<string, unknown>;
    },
    noLabels: boolean,
    noMethod: boolean,
  ): void {
    const { config, children, target, memo } = context;
    if (warnedBalancers.has(memo)) return;
    const methodRoutes = config.routes
      .filter(
        (r) =>
          r.match.method !== undefined ||
          r.match.prefix !== undefined ||
          (r.match.regex !== undefined && !r.match.regex.matches('')),
      )
      .map((r) => r.name);
    const labelSubsets = config.subsets
      .filter((s) => Object.keys(s.labels).length > 0)
      .map((s) => s.name);
    const effects: string[] = [];
    if (noMethod && methodRoutes.length > 0) {
      effects.push(
        methodRoutes.length === 1
          ? `calls carry no method name (route ${quoted(methodRoutes)}, which matches by method, prefix or regex, never matches)`
          : `calls carry no method name (routes ${quoted(methodRoutes)}, which match by method, prefix or regex, never match)`,
      );
    }
    if (noLabels && labelSubsets.length > 0) {
      effects.push(
        labelSubsets.length === 1
          ? `endpoints carry no labels (subset ${quoted(labelSubsets)}, which selects by labels, stays empty)`
          : `endpoints carry no labels (subsets ${quoted(labelSubsets)}, which select by labels, stay empty)`,
      );
    }
    if (effects.length === 0) return;
    warnedBalancers.add(memo);
    const where = noLabels ? `the channel to ${describeEndpoints(children)}` : target;
    rt.logger.warn(
      `${TRAFFIC_SPLIT_POLICY} on ${where}: its resolver is not a grpc-lb one, so ${effects.join(' and ')}; use a target whose scheme grpc-lb registered`,
    );
  }

  class TrafficSplitPicker implements experimental.Picker {
    private readonly redistribute: boolean;
    /** The first pick checks that the method reaches the picker (it does on every pick, or on none). */
    private checkMethod: boolean;

    constructor(
      private readonly config: TrafficSplitConfig,
      private readonly subsets: readonly SubsetView[],
      private readonly plans: readonly RoutePlan[],
      private readonly unrouted: experimental.Picker,
      private readonly target: string,
      private readonly onNoMethod: () => void,
    ) {
      this.redistribute = config.onEmptySubset === 'redistribute';
      this.checkMethod = true;
    }

    pick(args: experimental.PickArgs): experimental.PickResult {
      if (this.checkMethod) {
        this.checkMethod = false;
        if (!(METHOD_PICK_KEY in args.extraPickInfo)) this.onNoMethod();
      }
      const method = args.extraPickInfo[METHOD_PICK_KEY] ?? '';
      const plans = this.plans;
      for (let i = 0; i < plans.length; i++) {
        const plan = plans[i]!;
        if (routeMatches(plan.route.match, method, (name) => args.metadata.get(name))) {
          return this.pickRoute(plan, args);
        }
      }
      return this.unrouted.pick(args);
    }

    private pickRoute(plan: RoutePlan, args: experimental.PickArgs): experimental.PickResult {
      const subsets = this.subsets;
      if (this.redistribute) {
        // Nothing can take the call: it waits only if a subset is on its way.
        if (!plan.spread) return plan.waiting ? QUEUE : this.noSubset(plan);
        let view = subsets[plan.schedule.turns.pick()!]!;
        if (view.state !== SubsetState.Ready) view = subsets[plan.spread.pick()!]!;
        return view.picker!.pick(args);
      }
      const at = plan.schedule.turns.pick();
      if (at === undefined)
        return fail(`grpc-lb: route "${plan.route.name}" of ${this.target} has no weight above 0`);
      const view = subsets[at]!;
      switch (view.state) {
        case SubsetState.Ready:
          return view.picker!.pick(args);
        case SubsetState.Waiting:
          // This subset's share may not go elsewhere: its calls wait for it, the others' do not.
          return QUEUE;
        case SubsetState.Empty:
          return fail(`grpc-lb: ${view.why} (route "${plan.route.name}")`);
      }
    }

    private noSubset(plan: RoutePlan): experimental.PickResult {
      const reasons = plan.schedule.targets.map(([s]) => this.subsets[s]!.why);
      return fail(
        `grpc-lb: route "${plan.route.name}" of ${this.target}: no subset can take calls: ${reasons.join('; ')}`,
      );
    }
  }

  return {
    name: TRAFFIC_SPLIT_POLICY,
    parse: (json) => parseTrafficSplitConfig(json),
    // A least_request subset compares its endpoints' calls in flight and latency: every call of
    // the channel is then tracked (calls of other subsets and of no route too, which costs little
    // and keeps each endpoint's load right when it belongs to several subsets).
    needsLatency: (config) => config.subsets.some((s) => s.policy === 'least_request'),
    subsetsOf: (config) => config.subsets,
    routesZones: true,
    makePicker(context) {
      const { config, children, ready, target, memo, weightOf, rampOf, rampingUp, zones } = context;
      if (children.length > 0 && children.every((c) => c.info === undefined)) {
        warnForeignResolver(context, true, true);
      }
      const subsets = config.subsets.map((s) =>
        viewSubset(s, children, { memo, target, weightOf, rampOf, rampingUp, zones }),
      );
      const schedules = routeSchedules(config, memo);
      const plans = config.routes.map((route, i): RoutePlan => {
        const schedule = schedules[i]!;
        const available = schedule.targets.filter(([s]) => subsets[s]!.state === SubsetState.Ready);
        return {
          route,
          schedule,
          spread: available.length > 0 ? schedule.spreadOver(available) : undefined,
          waiting: schedule.targets.some(([s]) => subsets[s]!.state === SubsetState.Waiting),
        };
      });
      const unrouted =
        ready.length > 0
          ? ((zones &&
              zones.route(
                children,
                ready,
                (_, inZone, zoneMemo) => new RoundRobinPicker(inZone, zoneMemo, 'all'),
                'unrouted calls',
              )) ??
            new RoundRobinPicker(ready, memo, 'all'))
          : children.some(isWaiting)
            ? { pick: () => QUEUE }
            : new UnavailablePicker({
                details: `grpc-lb: no reachable endpoint for ${target} (call matched no route)`,
              });
      return new TrafficSplitPicker(config, subsets, plans, unrouted, target, () =>
        warnForeignResolver(context, false, true),
      );
    },
  };
}

export function createTrafficSplitPolicy(rt: Runtime): PolicyClasses {
  return createEndpointPolicy(rt, trafficSplitSpec(rt));
}
