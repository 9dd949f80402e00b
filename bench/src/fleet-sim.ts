/**
 * The fleet simulation (the cases and statistics are in fleet.ts): one real
 * `grpc-lb.round_robin` balancer per client, registered into grpc-js and
 * driven through `ChildLoadBalancerHandler` as a channel drives it, over
 * stand-in connections (`FakeSubchannel`, READY when created). Nothing
 * waits on a clock: a change is applied to every client, the balancers are
 * let settle (two event-loop turns), and what they did is counted:
 *
 * - connections: the subchannels each balancer holds a ref on;
 * - calls: each client's picker is asked 10 × (its connections) times (70 ×
 *   when zone-aware) and its `CALLS_PER_CLIENT` calls are spread in those
 *   proportions (round robin: evenly over its members; zone-aware: as the
 *   real zone routing splits them over zones, then evenly within a zone);
 * - churn: the connections each client opened and closed when one backend
 *   was added to the list, and (from the original list) when the first one
 *   was removed.
 *
 * Runs in a bench worker process (grpc-lb registered there).
 */
import * as grpc from '@grpc/grpc-js';
import type { experimental } from '@grpc/grpc-js';
import { normalizeEndpoint, register } from '@grpc-lb/core';
import { FakeChannel, FakeSubchannel } from './fake-subchannel';
import {
  CALLS_PER_CLIENT,
  clientZonesOf,
  fleetCases,
  fleetRow,
  SRE_BOOK_RANDOM,
  zoneOf,
  type Churn,
  type FleetCase,
  type FleetCounts,
  type FleetReport,
  picksPerConnection,
  policyJson,
} from './fleet';

const { ChildLoadBalancerHandler, PickResultType, parseLoadBalancingConfig, statusOrFromValue } =
  grpc.experimental;
const CS = grpc.connectivityState;
const PORT = 50051;

type LbConfigJson = Parameters<typeof parseLoadBalancingConfig>[0];

function hostOf(index: number): string {
  return `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`;
}

interface Backends {
  /** The fleet's backends, in order; `keys[i]` is the address of `endpoints[i]`. */
  readonly endpoints: experimental.Endpoint[];
  readonly keys: string[];
  readonly zoneOfKey: ReadonlyMap<string, string>;
  /** One more backend (in the first zone), for the "+1 backend" change. */
  readonly extra: experimental.Endpoint;
}

function backendsOf(fleetCase: FleetCase): Backends {
  const { backends, zones } = fleetCase.fleet;
  const endpoints: experimental.Endpoint[] = [];
  const keys: string[] = [];
  const zoneOfKey = new Map<string, string>();
  const make = (index: number, zone: string) => {
    const host = hostOf(index + 1);
    const grpcLb = normalizeEndpoint({ host, port: PORT, zone });
    zoneOfKey.set(grpcLb.key, zone);
    return { endpoint: { addresses: [{ host, port: PORT }], grpcLb }, key: grpcLb.key };
  };
  for (let i = 0; i < backends; i++) {
    const { endpoint, key } = make(i, zoneOf(i, backends, zones));
    endpoints.push(endpoint);
    keys.push(key);
  }
  return { endpoints, keys, zoneOfKey, extra: make(backends, zones[0]!.zone).endpoint };
}

/** A channel that remembers every stand-in it made, to tell which ones a balancer holds. */
class FleetChannel extends FakeChannel {
  private readonly made = new Map<string, FakeSubchannel>();

  constructor() {
    super(grpc, 'connected');
  }

  override createSubchannel(address: experimental.SubchannelAddress): FakeSubchannel {
    const subchannel = super.createSubchannel(address) as FakeSubchannel;
    this.made.set(subchannel.address, subchannel);
    return subchannel;
  }

  /** The addresses whose stand-in connection a balancer holds now. */
  connected(): Set<string> {
    const held = new Set<string>();
    for (const [address, subchannel] of this.made) if (subchannel.refCount > 0) held.add(address);
    return held;
  }
}

class Client {
  readonly channel = new FleetChannel();
  private readonly handler = new ChildLoadBalancerHandler(this.channel);
  private readonly config: experimental.TypedLoadBalancingConfig;
  connections = new Set<string>();

  constructor(
    readonly zone: string,
    json: Record<string, unknown>,
    private readonly picksPerConnection: number,
  ) {
    this.config = parseLoadBalancingConfig(json as LbConfigJson);
  }

  update(endpoints: experimental.Endpoint[]): void {
    if (!this.handler.updateAddressList(statusOrFromValue(endpoints), this.config, {}, 'fleet')) {
      throw new Error('the balancer rejected the update');
    }
  }

  /** Calls per address: `CALLS_PER_CLIENT` spread as `picksPerConnection` × (connections) picks fell. */
  calls(): Map<string, number> {
    const { state, picker, errorMessage } = this.channel;
    if (state !== CS.READY || !picker) {
      throw new Error(`balancer is ${CS[state]}, not READY: ${errorMessage ?? ''}`);
    }
    const picks = this.picksPerConnection * this.connections.size;
    const args = { metadata: new grpc.Metadata(), extraPickInfo: {} };
    const counts = new Map<string, number>();
    for (let i = 0; i < picks; i++) {
      const result = picker.pick(args);
      if (
        result.pickResultType !== PickResultType.COMPLETE ||
        !(result.subchannel instanceof FakeSubchannel)
      ) {
        throw new Error(`pick was ${PickResultType[result.pickResultType]}`);
      }
      const address = result.subchannel.address;
      if (!this.connections.has(address))
        throw new Error(`picked ${address}, which it is not connected to`);
      counts.set(address, (counts.get(address) ?? 0) + 1);
    }
    for (const [address, n] of counts) counts.set(address, (n * CALLS_PER_CLIENT) / picks);
    return counts;
  }

  destroy(): void {
    this.handler.destroy();
    if (this.channel.refs !== 0) throw new Error(`${this.channel.refs} refs held after destroy`);
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Applies `endpoints` to every client and counts the connections opened and closed. */
async function change(
  clients: readonly Client[],
  endpoints: experimental.Endpoint[],
  weight: number,
): Promise<Churn> {
  for (const client of clients) client.update(endpoints);
  await settle();
  const churn: Churn = { opened: 0, closed: 0, clientsChanged: 0 };
  for (const client of clients) {
    const now = client.channel.connected();
    let opened = 0;
    let closed = 0;
    for (const a of now) if (!client.connections.has(a)) opened++;
    for (const a of client.connections) if (!now.has(a)) closed++;
    churn.opened += opened * weight;
    churn.closed += closed * weight;
    if (opened + closed > 0) churn.clientsChanged += weight;
    client.connections = now;
  }
  return churn;
}

/** One run of `fleetCase`: what every client connected to and called, and the churn. */
export async function simulateFleetCase(fleetCase: FleetCase): Promise<FleetCounts> {
  const { fleet, variant, simulatedClients } = fleetCase;
  const backends = backendsOf(fleetCase);
  const weight = fleet.clients / simulatedClients;
  const index = new Map(backends.keys.map((key, i) => [key, i]));
  const clients: Client[] = [];
  try {
    for (let c = 0; c < simulatedClients; c++) {
      // A sample of clients (no subsetting) is spread over the zones as the whole fleet is.
      const client = Math.floor(c * weight);
      clients.push(
        new Client(
          zoneOf(client, fleet.clients, clientZonesOf(fleet)),
          policyJson(variant, client, fleet),
          picksPerConnection(variant),
        ),
      );
    }
    for (const client of clients) client.update(backends.endpoints);
    await settle();
    const connections = new Array<number>(fleet.backends).fill(0);
    const calls = new Array<number>(fleet.backends).fill(0);
    let crossZoneCalls = 0;
    let totalCalls = 0;
    let connectionsWithCalls = 0;
    for (const client of clients) {
      client.connections = client.channel.connected();
      for (const address of client.connections) connections[index.get(address)!]! += weight;
      const spread = client.calls();
      connectionsWithCalls += spread.size * weight;
      for (const [address, n] of spread) {
        calls[index.get(address)!]! += n * weight;
        totalCalls += n * weight;
        if (backends.zoneOfKey.get(address) !== client.zone) crossZoneCalls += n * weight;
      }
    }
    const add = await change(clients, [...backends.endpoints, backends.extra], weight);
    // Back to the fleet's own list, so that the removal is from n (⌊n / subsetSize⌋ as in the table).
    await change(clients, backends.endpoints, weight);
    const remove = await change(clients, backends.endpoints.slice(1), weight);
    return { connections, calls, crossZoneCalls, totalCalls, connectionsWithCalls, add, remove };
  } finally {
    for (const client of clients) client.destroy();
  }
}

/** Every case of `fleetCases(quick)`, each run `repeats` times. */
export async function runFleet(
  quick: boolean,
  log: (line: string) => void = () => {},
): Promise<FleetReport> {
  register({ grpc, logger: { warn: (message) => log(`warning: ${message}`) } });
  const rows = [];
  for (const fleetCase of fleetCases(quick)) {
    const started = performance.now();
    const runs: FleetCounts[] = [];
    for (let r = 0; r < fleetCase.repeats; r++) runs.push(await simulateFleetCase(fleetCase));
    const row = fleetRow(fleetCase, runs, performance.now() - started);
    log(
      `${row.fleet} ${row.subsetting} ${row.subsetSize ?? ''} zone-aware ${row.zoneAware}: connections ` +
        `per backend ${row.connMin.median}-${row.connMax.median}, load max/mean ` +
        `${row.loadMaxOverMean.median.toFixed(2)}, cross-zone ${(row.crossZoneShare * 100).toFixed(1)} % ` +
        `(${row.repeats} run${row.repeats === 1 ? '' : 's'}, ${Math.round(row.ms)} ms)`,
    );
    rows.push(row);
  }
  return { callsPerClient: CALLS_PER_CLIENT, rows, sreBook: { ...SRE_BOOK_RANDOM } };
}
