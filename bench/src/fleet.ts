/**
 * The fleet group: what subsetting and zone-aware routing do to a large fleet, simulated in one
 * process (fleet-sim.ts drives one real grpc-lb round robin balancer per
 * client over stand-in connections; no sockets, no clock). This module is
 * pure: the cases, the statistics over what the simulation counted, and the
 * table.
 *
 * A case is a fleet (clients × backends over zones of uneven sizes) and a
 * variant (how each client's balancer is configured): its `subsetting` and
 * its `zoneAware` routing. Another dimension is one more field of
 * `FleetVariant`, read by `policyJson`, and one more entry of `FLEET_COLUMNS`.
 */
import { percentile } from './stats';

export const FLEET = 'fleet';

export function fleetWanted(scenarios: readonly string[] | null): boolean {
  return scenarios === null || scenarios.includes(FLEET);
}

export interface ZoneShare {
  readonly zone: string;
  /** Percent of the backends (or of the clients) in this zone. */
  readonly percent: number;
}

export interface Fleet {
  /** e.g. "1,000 × 1,000". */
  readonly name: string;
  readonly clients: number;
  readonly backends: number;
  /** The backends' zones (and the clients', unless `clientZones` says otherwise). */
  readonly zones: readonly ZoneShare[];
  /** The clients' zones when they are not spread like the backends (same zones, same order). */
  readonly clientZones?: readonly ZoneShare[] | undefined;
}

export type SubsettingVariant = 'none' | 'random' | 'deterministic';

/**
 * Zone-aware routing: `off`; `on` (`"zoneAware": { "localZone": <the client's zone> }`, the
 * clients assumed spread like the backends); `clientShares` (and the clients' real spread given).
 */
export type ZoneAwareVariant = 'off' | 'on' | 'clientShares';

export interface FleetVariant {
  readonly subsetting: SubsettingVariant;
  /** Ignored without subsetting. */
  readonly subsetSize: number;
  readonly zoneAware: ZoneAwareVariant;
}

export interface FleetCase {
  readonly fleet: Fleet;
  readonly variant: FleetVariant;
  /**
   * Clients driven through a real balancer. Without subsetting every client
   * connects to every backend and picks round robin over all of them, so a
   * sample stands for the rest (each simulated client counts
   * `clients / simulatedClients` times); with subsetting every client is simulated.
   */
  readonly simulatedClients: number;
  /** Runs with fresh seeds (random subsetting draws one per channel); the report gives medians. */
  readonly repeats: number;
  /** Why this case is in the table, when it is there for one number. */
  readonly note?: string;
}

/** Calls each client makes, spread by its picker (round robin over its members). */
export const CALLS_PER_CLIENT = 1000;

/**
 * Picks asked of each client's picker per connection it holds: round robin over every member is
 * exact in 10 rounds; with zone-aware routing the zone schedule and each zone's round robin end
 * mid-round, so more picks keep that remainder small (under one pick in 70 per member).
 */
export function picksPerConnection(variant: FleetVariant): number {
  return variant.zoneAware === 'off' ? 10 : 70;
}

export const ZONES_50_30_20: readonly ZoneShare[] = [
  { zone: 'zone-a', percent: 50 },
  { zone: 'zone-b', percent: 30 },
  { zone: 'zone-c', percent: 20 },
];

const LARGE: Fleet = {
  name: '1,000 × 1,000',
  clients: 1000,
  backends: 1000,
  zones: ZONES_50_30_20,
};
/** The SRE book's example: 300 clients, 300 backends, a subset of 30 % (90). */
const SRE_BOOK: Fleet = { name: '300 × 300', clients: 300, backends: 300, zones: ZONES_50_30_20 };
/** Most clients in the first zone: 70/20/10 % of the clients over backends at 50/30/20 %. */
const LARGE_SKEWED: Fleet = {
  ...LARGE,
  name: '1,000 × 1,000, clients 70/20/10',
  clientZones: [
    { zone: 'zone-a', percent: 70 },
    { zone: 'zone-b', percent: 20 },
    { zone: 'zone-c', percent: 10 },
  ],
};
/** What the SRE book reports for random subsetting of SRE_BOOK: least / most loaded backend. */
export const SRE_BOOK_RANDOM = { minOverMean: 0.63, maxOverMean: 1.21 } as const;

/**
 * The cases, in table order. Quick: 1,000 × 1,000 without, with random and with deterministic
 * subsetting, the first two zone-aware too, and the SRE book's example. Full: every subsetting
 * zone-aware too, subset 25, and clients not spread like the backends.
 */
export function fleetCases(quick: boolean): FleetCase[] {
  const randomRepeats = quick ? 1 : 5;
  const sreRepeats = quick ? 3 : 20;
  const large = (
    subsetting: SubsettingVariant,
    zoneAware: ZoneAwareVariant,
    repeats = subsetting === 'random' ? randomRepeats : 1,
  ): FleetCase => ({
    fleet: LARGE,
    variant: { subsetting, subsetSize: subsetting === 'none' ? 0 : 30, zoneAware },
    // Without subsetting every client connects to every backend: a sample stands for the rest.
    simulatedClients: subsetting === 'none' ? 20 : 1000,
    repeats,
  });
  return [
    large('none', 'off'),
    large('random', 'off'),
    large('deterministic', 'off'),
    large('none', 'on'),
    large('random', 'on'),
    ...(quick ? [] : [large('deterministic', 'on'), ...boundaryCases, ...skewedCases]),
    {
      fleet: SRE_BOOK,
      variant: { subsetting: 'random', subsetSize: 90, zoneAware: 'off' },
      simulatedClients: 300,
      repeats: sreRepeats,
    },
    {
      fleet: SRE_BOOK,
      variant: { subsetting: 'deterministic', subsetSize: 90, zoneAware: 'off' },
      simulatedClients: 300,
      repeats: 1,
    },
  ];
}

/** Subset size 25 of 1,000: removing one backend changes ⌊n / subsetSize⌋ (deterministic mode's worst case). */
const boundaryCases: readonly FleetCase[] = (['random', 'deterministic'] as const).map(
  (subsetting) => ({
    fleet: LARGE,
    variant: { subsetting, subsetSize: 25, zoneAware: 'off' },
    simulatedClients: 1000,
    repeats: 1,
    note: '1,000 = 40 × 25: one backend fewer changes ⌊n / subsetSize⌋',
  }),
);

/** Clients 70/20/10 over backends 50/30/20, no subsetting: zone-aware off, on, and told the clients' spread. */
const skewedCases: readonly FleetCase[] = (['off', 'on', 'clientShares'] as const).map(
  (zoneAware) => ({
    fleet: LARGE_SKEWED,
    variant: { subsetting: 'none', subsetSize: 0, zoneAware },
    simulatedClients: 20,
    repeats: 1,
  }),
);

/** The policy config of client `client` of `fleet` in `variant`: `{ "grpc-lb.round_robin": {…} }`. */
export function policyJson(
  variant: FleetVariant,
  client: number,
  fleet: Fleet,
): Record<string, unknown> {
  // No removal hold-down: it would keep the connections of members that left for up to 2 s (a
  // deterministic reshuffle is a mass removal), not change where they end up.
  const own: Record<string, unknown> = { removalHoldDownMs: 0 };
  if (variant.subsetting === 'random') own['subsetting'] = { subsetSize: variant.subsetSize };
  if (variant.subsetting === 'deterministic') {
    own['subsetting'] = { subsetSize: variant.subsetSize, mode: 'deterministic', clientId: client };
  }
  if (variant.zoneAware !== 'off') {
    const clientZones = clientZonesOf(fleet);
    const zoneAware: Record<string, unknown> = {
      localZone: zoneOf(client, fleet.clients, clientZones),
    };
    if (variant.zoneAware === 'clientShares') {
      zoneAware['clientShares'] = Object.fromEntries(clientZones.map((z) => [z.zone, z.percent]));
    }
    own['zoneAware'] = zoneAware;
  }
  return { 'grpc-lb.round_robin': own };
}

export function clientZonesOf(fleet: Fleet): readonly ZoneShare[] {
  return fleet.clientZones ?? fleet.zones;
}

/** The zone of item `index` of `count` (backends and clients alike): the first 50 % in the first zone, … */
export function zoneOf(index: number, count: number, zones: readonly ZoneShare[]): string {
  let bound = 0;
  for (const { zone, percent } of zones) {
    bound += (count * percent) / 100;
    if (index < bound) return zone;
  }
  return zones[zones.length - 1]!.zone;
}

/** What one membership change (one backend added or removed) did across the fleet. */
export interface Churn {
  /** Connections opened (by every client together). */
  opened: number;
  /** Connections closed, those to a removed backend included. */
  closed: number;
  /** Clients whose set of connections changed. */
  clientsChanged: number;
}

/** What the simulation counted in one run of a case (scaled to the whole fleet). */
export interface FleetCounts {
  /** Connections per backend, in backend order. */
  connections: number[];
  /** Calls per backend, in backend order. */
  calls: number[];
  /** Calls that went to a backend of another zone than the client's. */
  crossZoneCalls: number;
  totalCalls: number;
  /** Connections that carried calls (zone-aware routing leaves those to other zones idle). */
  connectionsWithCalls: number;
  add: Churn;
  remove: Churn;
}

/** Median and range over repeats. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface FleetRow {
  fleet: string;
  clients: number;
  backends: number;
  /** e.g. "50/30/20". */
  zones: string;
  /** The clients' spread, e.g. "70/20/10". */
  clientZones: string;
  subsetting: SubsettingVariant;
  /** null without subsetting. */
  subsetSize: number | null;
  zoneAware: ZoneAwareVariant;
  simulatedClients: number;
  repeats: number;
  note: string | null;
  /** Connections per backend. */
  connMin: Spread;
  connMean: number;
  connMax: Spread;
  /** Per-backend calls against their mean. */
  loadMaxOverMean: Spread;
  loadP99OverMean: Spread;
  loadMinOverMean: Spread;
  /** Each backend zone's mean load against the mean over every backend (mean over runs). */
  loadByZone: { zone: string; overMean: number }[];
  crossZoneShare: number;
  /** The share of the connections that carried calls (mean over runs). */
  connectionsWithCallsShare: number;
  add: Churn;
  remove: Churn;
  /** Wall time of the runs, ms. */
  ms: number;
}

export interface FleetReport {
  callsPerClient: number;
  rows: FleetRow[];
  /** The SRE book's numbers for its random-subsetting example, for the side-by-side. */
  sreBook: { minOverMean: number; maxOverMean: number };
}

function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Each zone's mean calls per backend against the mean over every backend (backends in order). */
export function loadByZone(
  calls: readonly number[],
  backends: number,
  zones: readonly ZoneShare[],
): { zone: string; overMean: number }[] {
  const totals = new Map<string, { calls: number; backends: number }>();
  for (const { zone } of zones) totals.set(zone, { calls: 0, backends: 0 });
  for (let i = 0; i < backends; i++) {
    const total = totals.get(zoneOf(i, backends, zones))!;
    total.calls += calls[i] ?? 0;
    total.backends++;
  }
  const m = mean(calls);
  return [...totals].map(([zone, t]) => ({ zone, overMean: t.calls / t.backends / m }));
}

/** Per-backend ratios of one run: max, p99 (nearest rank) and min against the mean. */
export function ratiosToMean(values: readonly number[]): { max: number; p99: number; min: number } {
  const sorted = Float64Array.from(values).sort();
  const m = mean(values);
  return {
    max: sorted[sorted.length - 1]! / m,
    p99: percentile(sorted, 0.99) / m,
    min: sorted[0]! / m,
  };
}

/** One table row from the runs of a case (`runs.length === fleetCase.repeats`). */
export function fleetRow(fleetCase: FleetCase, runs: readonly FleetCounts[], ms: number): FleetRow {
  const { fleet, variant } = fleetCase;
  const first = runs[0]!;
  const loads = runs.map((r) => ratiosToMean(r.calls));
  return {
    fleet: fleet.name,
    clients: fleet.clients,
    backends: fleet.backends,
    zones: fleet.zones.map((z) => z.percent).join('/'),
    clientZones: clientZonesOf(fleet)
      .map((z) => z.percent)
      .join('/'),
    subsetting: variant.subsetting,
    subsetSize: variant.subsetting === 'none' ? null : variant.subsetSize,
    zoneAware: variant.zoneAware,
    simulatedClients: fleetCase.simulatedClients,
    repeats: runs.length,
    note: fleetCase.note ?? null,
    connMin: spread(runs.map((r) => Math.min(...r.connections))),
    connMean: mean(first.connections),
    connMax: spread(runs.map((r) => Math.max(...r.connections))),
    loadMaxOverMean: spread(loads.map((l) => l.max)),
    loadP99OverMean: spread(loads.map((l) => l.p99)),
    loadMinOverMean: spread(loads.map((l) => l.min)),
    loadByZone: fleet.zones.map(({ zone }, z) => ({
      zone,
      overMean: mean(
        runs.map((r) => loadByZone(r.calls, fleet.backends, fleet.zones)[z]!.overMean),
      ),
    })),
    crossZoneShare: mean(runs.map((r) => r.crossZoneCalls / r.totalCalls)),
    connectionsWithCallsShare: mean(
      runs.map((r) => r.connectionsWithCalls / r.connections.reduce((a, b) => a + b, 0)),
    ),
    add: first.add,
    remove: first.remove,
    ms,
  };
}

// ---------------------------------------------------------------------------------------------
// The table

const fmt = (value: number, digits = 2): string =>
  Number.isFinite(value) ? value.toFixed(digits) : '–';

function ratio(s: Spread, digits = 2): string {
  return s.min === s.max
    ? fmt(s.median, digits)
    : `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

function count(s: Spread): string {
  return s.min === s.max
    ? String(Math.round(s.median))
    : `${Math.round(s.median)} (${s.min}–${s.max})`;
}

function churn(c: Churn): string {
  return `+${Math.round(c.opened)} / −${Math.round(c.closed)} (${Math.round(c.clientsChanged)})`;
}

/** The columns, in order: a new dimension of the variant adds one here. */
export const FLEET_COLUMNS: readonly { header: string; cell: (row: FleetRow) => string }[] = [
  { header: 'fleet', cell: (r) => r.fleet },
  {
    header: 'subsetting',
    cell: (r) => (r.subsetSize === null ? 'none' : `${r.subsetting} ${r.subsetSize}`),
  },
  {
    header: 'zone-aware',
    cell: (r) =>
      r.zoneAware === 'clientShares' ? `on, clientShares ${r.clientZones}` : r.zoneAware,
  },
  {
    header: 'connections per backend min / mean / max',
    cell: (r) => `${count(r.connMin)} / ${fmt(r.connMean, 1)} / ${count(r.connMax)}`,
  },
  {
    header: 'connections min/mean',
    cell: (r) =>
      ratio({
        median: r.connMin.median / r.connMean,
        min: r.connMin.min / r.connMean,
        max: r.connMin.max / r.connMean,
      }),
  },
  {
    header: 'connections max/mean',
    cell: (r) =>
      ratio({
        median: r.connMax.median / r.connMean,
        min: r.connMax.min / r.connMean,
        max: r.connMax.max / r.connMean,
      }),
  },
  { header: 'load max/mean', cell: (r) => ratio(r.loadMaxOverMean) },
  { header: 'load p99/mean', cell: (r) => ratio(r.loadP99OverMean) },
  {
    header: 'load by zone a / b / c',
    cell: (r) => r.loadByZone.map((z) => fmt(z.overMean)).join(' / '),
  },
  { header: 'cross-zone calls', cell: (r) => `${fmt(r.crossZoneShare * 100, 1)} %` },
  {
    header: 'connections carrying calls',
    cell: (r) => `${fmt(r.connectionsWithCallsShare * 100, 0)} %`,
  },
  { header: '+1 backend: opened / closed (clients)', cell: (r) => churn(r.add) },
  { header: '−1 backend: opened / closed (clients)', cell: (r) => churn(r.remove) },
];

/** Rows of cells, header first. */
export function fleetTableCells(report: FleetReport): string[][] {
  return [
    FLEET_COLUMNS.map((c) => c.header),
    ...report.rows.map((row) => FLEET_COLUMNS.map((c) => c.cell(row))),
  ];
}

/** The table as aligned text, for stdout. */
export function formatFleetTable(report: FleetReport): string {
  const cells = fleetTableCells(report);
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** What the table says, in words: the SRE book's example side by side, and the churn. */
export function fleetReading(report: FleetReport): string {
  const lines: string[] = [];
  const sre = report.rows.find((r) => r.fleet === SRE_BOOK.name && r.subsetting === 'random');
  if (sre) {
    const min = sre.connMin;
    const max = sre.connMax;
    lines.push(
      `SRE book, 300 clients × 300 backends, random subset of 90 (30 %): the book reports the least ` +
        `connected backend at ${fmt(report.sreBook.minOverMean * 100, 0)} % and the most at ` +
        `${fmt(report.sreBook.maxOverMean * 100, 0)} % of the mean; ours (gRFC A68 ranking, ` +
        `${sre.repeats} run${sre.repeats === 1 ? '' : 's'} with fresh seeds): ` +
        `${fmt((min.median / sre.connMean) * 100, 0)} % and ${fmt((max.median / sre.connMean) * 100, 0)} %` +
        (sre.repeats > 1
          ? ` (medians; ${fmt((min.min / sre.connMean) * 100, 0)}–${fmt((min.max / sre.connMean) * 100, 0)} % and ` +
            `${fmt((max.min / sre.connMean) * 100, 0)}–${fmt((max.max / sre.connMean) * 100, 0)} % over the runs)`
          : '') +
        '.',
    );
  }
  for (const on of report.rows) {
    if (on.zoneAware !== 'on') continue;
    const off = report.rows.find(
      (r) =>
        r.zoneAware === 'off' &&
        r.fleet === on.fleet &&
        r.subsetting === on.subsetting &&
        r.subsetSize === on.subsetSize,
    );
    if (!off || on.clientZones !== on.zones) continue;
    lines.push(
      `${on.fleet}, ${on.subsetSize === null ? 'no subsetting' : `${on.subsetting} ${on.subsetSize}`}: ` +
        `zone-aware routing takes cross-zone calls from ${fmt(off.crossZoneShare * 100, 1)} % to ` +
        `${fmt(on.crossZoneShare * 100, 1)} % and the busiest backend's load from ` +
        `${fmt(off.loadMaxOverMean.median)} to ${fmt(on.loadMaxOverMean.median)} × the mean` +
        (on.subsetSize === null
          ? '.'
          : " (only the subset's members in the client's zone take calls)."),
    );
  }
  const skewed = report.rows.filter((r) => r.clientZones !== r.zones && r.subsetSize === null);
  const on = skewed.find((r) => r.zoneAware === 'on');
  const shares = skewed.find((r) => r.zoneAware === 'clientShares');
  if (on && shares) {
    lines.push(
      `Clients ${on.clientZones} over backends ${on.zones}, zone-aware: assumed spread like the ` +
        `backends, every call stays local (${fmt(on.crossZoneShare * 100, 1)} % cross-zone) and the ` +
        `first zone's backends take ${fmt(on.loadByZone[0]?.overMean ?? NaN)} × the mean load; told ` +
        `the spread (clientShares), ${fmt(shares.crossZoneShare * 100, 1)} % spill and the busiest ` +
        `backend takes ${fmt(shares.loadMaxOverMean.median)} × the mean.`,
    );
  }
  for (const row of report.rows) {
    if (row.note)
      lines.push(`${row.fleet}, ${row.subsetting} ${row.subsetSize ?? ''}: ${row.note}.`);
  }
  return lines.join('\n');
}

/** The report's rows for the summary JSON line (numbers rounded). */
export function fleetSummary(report: FleetReport): Record<string, unknown>[] {
  const r2 = (v: number) => Math.round(v * 100) / 100;
  return report.rows.map((row) => ({
    fleet: row.fleet,
    subsetting: row.subsetting,
    subsetSize: row.subsetSize,
    zoneAware: row.zoneAware,
    clientZones: row.clientZones,
    repeats: row.repeats,
    connections: { min: row.connMin.median, mean: r2(row.connMean), max: row.connMax.median },
    loadMaxOverMean: r2(row.loadMaxOverMean.median),
    loadP99OverMean: r2(row.loadP99OverMean.median),
    loadByZone: Object.fromEntries(row.loadByZone.map((z) => [z.zone, r2(z.overMean)])),
    crossZoneShare: r2(row.crossZoneShare),
    connectionsWithCallsShare: r2(row.connectionsWithCallsShare),
    add: row.add,
    remove: row.remove,
  }));
}

/** What the columns mean, for RESULTS.md. */
export const FLEET_METHOD =
  'Simulated in one process, no sockets and no clock: one real `grpc-lb.round_robin` balancer per ' +
  'client over stand-in connections (READY when created), backends and clients spread over 3 zones ' +
  '50/30/20 % (in the "clients 70/20/10" fleet the clients 70/20/10 %). Connections are the stand-ins a balancer ' +
  `holds; each client's ${CALLS_PER_CLIENT} calls are spread as its picker spreads 10 × (its ` +
  'connections) picks (70 × when zone-aware). Zone-aware rows give each balancer ' +
  '`"zoneAware": { "localZone": <its zone> }` (and, for "clientShares", the clients\' spread); the ' +
  "endpoints carry their zone as a resolver gives it, and core's zone routing decides. Load by zone: " +
  'the mean calls per backend of each backend zone against the mean of all. ' +
  'Without subsetting 20 clients are simulated, each standing for 50 (every client connects to every ' +
  'backend). Churn: the connections every client together opened and closed when one backend was ' +
  'added, and (from the original list) when the first backend was removed; in parentheses the clients whose connections ' +
  'changed. Random subsetting rows with several runs (fresh seeds) give the median and the range.';
