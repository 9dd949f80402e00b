/**
 * Zone-aware routing in the balancer: picks a zone by the shares
 * `zoneShares` (zone-aware.ts) gives, then delegates to the policy's own
 * picker built over that zone's endpoints in rotation, so every policy
 * (round robin, weighted, least request, each subset of a traffic split)
 * keeps its rules within a zone. It comes last, after health, ejection and
 * the panic threshold have decided which endpoints are in rotation, and it
 * is off in panic mode.
 *
 * Zones are picked by smooth weighted round robin over the shares (kept
 * across pickers while the shares stay the same), so a spill of 25 % sends
 * exactly one call in four across zones rather than about one.
 */
import type { experimental } from '@grpc/grpc-js';
import { SmoothWeightedRoundRobin } from '../weighted-schedule';
import {
  hintedForZone,
  UNKNOWN_ZONE,
  ZONE_ENV,
  zoneShares,
  type ZoneAwareConfig,
} from '../zone-aware';
import type { EndpointChild, PickerContext, PolicySpec } from './endpoint-policy';
import type { Runtime } from './runtime';

/** Builds the policy's picker over `ready` (never empty); undefined when it cannot take calls. */
export type MakeZonePicker = (
  listed: readonly EndpointChild[],
  ready: readonly EndpointChild[],
  memo: Map<string, unknown>,
) => experimental.Picker | undefined;

/** Share resolution: zone weights are whole numbers out of this. */
const SHARE_SCALE = 1_000_000;

function zoneOf(child: EndpointChild): string {
  return child.info?.zone || UNKNOWN_ZONE;
}

/** The endpoints of each zone, in their order (one pass: 10,000 endpoints cost about a millisecond). */
function groupByZone(children: readonly EndpointChild[]): Map<string, EndpointChild[]> {
  const groups = new Map<string, EndpointChild[]>();
  for (const child of children) {
    const zone = zoneOf(child);
    const group = groups.get(zone);
    if (group) group.push(child);
    else groups.set(zone, [child]);
  }
  return groups;
}

function sizes(groups: ReadonlyMap<string, readonly EndpointChild[]>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [zone, group] of groups) counts.set(zone, group.length);
  return counts;
}

/** A memo of its own for each zone (and scope), inside the balancer's memo. */
function memoFor(memo: Map<string, unknown>, key: string): Map<string, unknown> {
  let own = memo.get(key) as Map<string, unknown> | undefined;
  if (!own) {
    own = new Map();
    memo.set(key, own);
  }
  return own;
}

interface StoredZoneSchedule {
  readonly signature: string;
  readonly schedule: SmoothWeightedRoundRobin<string>;
}

class ZonePicker implements experimental.Picker {
  constructor(
    private readonly schedule: SmoothWeightedRoundRobin<string>,
    private readonly pickers: ReadonlyMap<string, experimental.Picker>,
  ) {}

  pick(args: experimental.PickArgs): experimental.PickResult {
    return this.pickers.get(this.schedule.pick()!)!.pick(args);
  }
}

/** Envoy's routing_enabled below 100 %: that share of calls is routed by zone, the rest is not. */
class PartlyRoutedPicker implements experimental.Picker {
  constructor(
    private readonly routed: experimental.Picker,
    private readonly everywhere: () => experimental.Picker,
    private readonly percent: number,
    private readonly random: () => number = Math.random,
  ) {}

  pick(args: experimental.PickArgs): experimental.PickResult {
    return this.random() * 100 < this.percent
      ? this.routed.pick(args)
      : this.everywhere().pick(args);
  }
}

/** Zone-aware routing for one picker: the config, the client's zone, and the balancer's memo. */
export class ZoneRouter {
  constructor(
    readonly config: ZoneAwareConfig,
    readonly localZone: string,
    private readonly memo: Map<string, unknown>,
    private readonly trace: (text: string) => void,
    /** Warns once per channel for each `key`. */
    private readonly warnOnce: (key: string, message: string) => void = () => {},
  ) {}

  /**
   * A picker over `ready` (the endpoints of `listed` in rotation, not empty)
   * that routes by zone; `make` builds the policy's picker over a set of
   * endpoints. Undefined only when `make` is for every set it is given.
   * `scope` tells apart the sets routed separately (traffic-split subsets).
   */
  route(
    listed: readonly EndpointChild[],
    ready: readonly EndpointChild[],
    make: MakeZonePicker,
    scope = '',
  ): experimental.Picker | undefined {
    const { config, memo } = this;
    const everywhere = (): experimental.Picker | undefined => make(listed, ready, memo);
    const routed = this.routedPicker(listed, ready, make, scope);
    if (!routed) return everywhere();
    if (config.routingEnabledPercent >= 100) return routed;
    let plain: experimental.Picker | undefined;
    return new PartlyRoutedPicker(
      routed,
      () => (plain ??= everywhere() ?? routed),
      config.routingEnabledPercent,
    );
  }

  private routedPicker(
    listed: readonly EndpointChild[],
    ready: readonly EndpointChild[],
    make: MakeZonePicker,
    scope: string,
  ): experimental.Picker | undefined {
    const { config, localZone, memo } = this;
    const where = scope ? ` (${scope})` : '';
    if (config.kubernetesHints) {
      const hintedReady = hintedForZone(listed, ready, localZone, (c) => c.info?.forZones);
      if (hintedReady) {
        const picker = make(
          hintedReady,
          hintedReady,
          memoFor(memo, `zone:${scope}:hints:${localZone}`),
        );
        if (picker) {
          this.trace(
            `zone-aware${where}: Kubernetes hints: ${hintedReady.length} of ${ready.length} endpoints in rotation are for zone ${localZone}`,
          );
          return picker;
        }
      }
    }
    const readyByZone = groupByZone(ready);
    const listedByZone = groupByZone(listed);
    const decision = zoneShares({
      localZone,
      inRotation: sizes(readyByZone),
      clients: config.clientShares ?? sizes(listedByZone),
      minClusterSize: config.minClusterSize,
    });
    if (decision.mode === 'all') {
      this.trace(`zone-aware${where}: every zone: ${decision.reason}`);
      if (listedByZone.size === 1 && listedByZone.has(UNKNOWN_ZONE)) {
        this.warnOnce(
          'no zones',
          `zoneAware is set but none of the ${listed.length} endpoints carries a zone (its resolver gives none): calls go to every zone`,
        );
      }
      return undefined;
    }
    const pickers = new Map<string, experimental.Picker>();
    const weights: [string, number][] = [];
    for (const [zone, share] of decision.shares) {
      const picker = make(
        listedByZone.get(zone) ?? [],
        readyByZone.get(zone)!,
        memoFor(memo, `zone:${scope}:${zone}`),
      );
      const weight = Math.round(share * SHARE_SCALE);
      if (!picker || weight <= 0) continue;
      pickers.set(zone, picker);
      weights.push([zone, weight]);
    }
    if (!pickers.has(localZone)) return undefined;
    this.trace(
      `zone-aware${where}: ${decision.mode}: ${weights
        .map(([zone, w]) => `${zone || '(no zone)'} ${((w / SHARE_SCALE) * 100).toFixed(1)}%`)
        .join(', ')}`,
    );
    if (pickers.size === 1) return pickers.get(localZone);
    return new ZonePicker(this.schedule(scope, weights), pickers);
  }

  /** The zone schedule for these weights, the one of the previous picker when they are the same. */
  private schedule(scope: string, weights: [string, number][]): SmoothWeightedRoundRobin<string> {
    const key = `zone:${scope}:schedule`;
    const signature = JSON.stringify(weights);
    const stored = this.memo.get(key) as StoredZoneSchedule | undefined;
    if (stored?.signature === signature) return stored.schedule;
    const schedule = new SmoothWeightedRoundRobin(weights);
    this.memo.set(key, { signature, schedule } satisfies StoredZoneSchedule);
    return schedule;
  }
}

/** Per balancer: whether zone-aware routing applies now, and the one warning when it cannot. */
export class ZoneRouting {
  private readonly warned = new Set<string>();

  constructor(
    private readonly rt: Runtime,
    private readonly host: { readonly target: string; readonly describe: string },
  ) {}

  /** The router for this picker; undefined when zone-aware routing is off (not set, panic, no zone). */
  router(
    config: ZoneAwareConfig | undefined,
    panic: boolean,
    memo: Map<string, unknown>,
  ): ZoneRouter | undefined {
    if (!config) return undefined;
    const localZone = config.localZone ?? this.rt.zone ?? (process.env[ZONE_ENV] || undefined);
    if (localZone === undefined) {
      this.warnOnce(
        'no local zone',
        `zoneAware is set but this client's zone is unknown (set zoneAware.localZone, register({ zone }) or the ${ZONE_ENV} environment variable): calls go to every zone`,
      );
      return undefined;
    }
    if (panic) return undefined;
    const describe = this.host.describe;
    return new ZoneRouter(
      config,
      localZone,
      memo,
      (text) => this.rt.trace(`${describe}: ${text}`),
      (key, message) => this.warnOnce(key, message),
    );
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.rt.logger.warn(`${this.host.target}: ${message}`);
  }
}

/**
 * The policy's `makePicker`, zone-aware when `zones` is set: over the zones'
 * endpoints here, or — for a policy that routes by zone itself within its
 * own groups (`spec.routesZones`, traffic split) — handed the router.
 */
export function zoneAwareMaker<C>(
  spec: PolicySpec<C>,
  zones: ZoneRouter | undefined,
): (context: PickerContext<C>) => experimental.Picker {
  if (!zones) return (context) => spec.makePicker(context);
  if (spec.routesZones) return (context) => spec.makePicker({ ...context, zones });
  return (context) =>
    zones.route(context.children, context.ready, (children, ready, memo) =>
      spec.makePicker({ ...context, children, ready, memo }),
    ) ?? spec.makePicker(context);
}
