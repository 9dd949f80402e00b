/**
 * The scenarios: what target and channel options each one gives its client, which proxy it
 * needs, and which backends (and shares) it should reach. Pure: addresses and ports come in.
 */
import {
  serviceConfig,
  trafficSplit,
  weightedRoundRobin,
  type LoadBalancingConfigJson,
} from '@grpc-lb/core';

export const SAY_HELLO = '/grpclb.test.Greeter/SayHello';

export type ProxyKind = 'nginx' | 'haproxy';

export interface ScenarioDef {
  name: string;
  /** One line for the report. */
  title: string;
  target: string;
  channelOptions: Record<string, string | number>;
  /** Client channels (separate connections). */
  channels: number;
  proxy: ProxyKind | null;
  /** Addresses of the backends the calls should reach (idle ones count against evenness). */
  backends: string[];
  /** For weighted scenarios: address → configured share (fractions summing to 1). */
  expectedShares?: Record<string, number>;
}

export interface BackendInfo {
  address: string;
  host: string;
  port: number;
  labels: Readonly<Record<string, string>>;
}

export interface ScenarioInputs {
  backends: readonly BackendInfo[];
  nginxPort: number | null;
  haproxyH2Port: number | null;
  haproxyTcpPort: number | null;
}

/** The main set's labels, and the traffic split between them. */
export const VERSION_LABELS = ['v1', 'v2', 'v3'] as const;
export const SPLIT: Readonly<Record<string, number>> = { v1: 30, v2: 60, v3: 10 };
/** Endpoint weights for the weighted round robin scenario (same proportions). */
export const WEIGHTS = [3, 6, 1] as const;

export const NAMES = {
  direct: 'direct',
  grpcJsRoundRobin: 'grpc-js-round_robin',
  ours: 'grpc-lb-round_robin',
  oursWeighted: 'grpc-lb-weighted_round_robin',
  oursTrafficSplit: 'grpc-lb-traffic_split',
  nginx: 'nginx-grpc',
  haproxyH2: 'haproxy-h2',
  haproxyTcp: 'haproxy-tcp',
  evenness: 'evenness',
  evennessL4: 'evenness-l4',
} as const;

function serviceConfigOption(policy: LoadBalancingConfigJson | ReturnType<typeof trafficSplit>) {
  return { 'grpc.service_config': JSON.stringify(serviceConfig(policy)) };
}

function hostPort(b: BackendInfo): string {
  return b.host.includes(':') ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`;
}

function labelAttributes(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([key, value]) => `;${key}=${encodeURIComponent(value)}`)
    .join('');
}

/** `static:///a;version=v1,b;version=v2,…` with each backend's labels (and optional weight). */
export function staticTarget(
  backends: readonly BackendInfo[],
  weights?: readonly number[],
): string {
  const endpoints = backends.map((b, i) => {
    const weight = weights?.[i] === undefined ? '' : `;weight=${weights[i]}`;
    return `${hostPort(b)}${weight}${labelAttributes(b.labels)}`;
  });
  return `static:///${endpoints.join(',')}`;
}

export function ipv4Target(backends: readonly BackendInfo[]): string {
  return `ipv4:${backends.map(hostPort).join(',')}`;
}

/** Shares from integer weights: address → weight / sum. */
export function sharesOf(addresses: readonly string[], weights: readonly number[]) {
  const sum = weights.reduce((a, b) => a + b, 0);
  return Object.fromEntries(addresses.map((a, i) => [a, (weights[i] ?? 0) / sum]));
}

/**
 * The interleaved scenarios over the main backend set (labelled v1, v2, v3 in order). A proxy
 * scenario is left out when its proxy has no port (not installed).
 */
export function mainScenarios(inputs: ScenarioInputs): ScenarioDef[] {
  const { backends } = inputs;
  if (backends.length === 0) throw new RangeError('no backends');
  const all = backends.map((b) => b.address);
  const first = backends[0]!;
  const scenarios: ScenarioDef[] = [
    {
      name: NAMES.direct,
      title: 'one channel to one backend (pick_first, ipv4: target)',
      target: ipv4Target([first]),
      channelOptions: {},
      channels: 1,
      proxy: null,
      backends: [first.address],
    },
    {
      name: NAMES.grpcJsRoundRobin,
      title: "grpc-js's built-in round_robin (ipv4:a,b,c + service config)",
      target: ipv4Target(backends),
      channelOptions: {
        'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      },
      channels: 1,
      proxy: null,
      backends: all,
    },
    {
      name: NAMES.ours,
      title: 'grpc-lb.round_robin (static:/// target, default policy)',
      target: staticTarget(backends),
      channelOptions: {},
      channels: 1,
      proxy: null,
      backends: all,
    },
  ];
  const labelled = backends.length === VERSION_LABELS.length;
  if (labelled) {
    const weights = [...WEIGHTS];
    scenarios.push(
      {
        name: NAMES.oursWeighted,
        title: `grpc-lb.weighted_round_robin, endpoint weights ${weights.join('/')}`,
        target: staticTarget(backends, weights),
        channelOptions: serviceConfigOption(weightedRoundRobin()),
        channels: 1,
        proxy: null,
        backends: all,
        expectedShares: sharesOf(all, weights),
      },
      {
        name: NAMES.oursTrafficSplit,
        title: `grpc-lb.traffic_split, SayHello split v1/v2/v3 ${Object.values(SPLIT).join('/')}`,
        target: staticTarget(backends),
        channelOptions: serviceConfigOption(
          trafficSplit()
            .subset('v1', { version: 'v1' })
            .subset('v2', { version: 'v2' })
            .subset('v3', { version: 'v3' })
            .route({ method: SAY_HELLO }, SPLIT)
            .defaultRoute({ v2: 100 }),
        ),
        channels: 1,
        proxy: null,
        backends: all,
        expectedShares: sharesOf(
          all,
          VERSION_LABELS.map((v) => SPLIT[v] ?? 0),
        ),
      },
    );
  }
  const viaProxy = (port: number) => `ipv4:127.0.0.1:${port}`;
  if (inputs.nginxPort !== null) {
    scenarios.push({
      name: NAMES.nginx,
      title: 'one channel to nginx grpc_pass (L7), round robin over the backends',
      target: viaProxy(inputs.nginxPort),
      channelOptions: {},
      channels: 1,
      proxy: 'nginx',
      backends: all,
    });
  }
  if (inputs.haproxyH2Port !== null) {
    scenarios.push({
      name: NAMES.haproxyH2,
      title: 'one channel to HAProxy mode http, proto h2 (L7), round robin',
      target: viaProxy(inputs.haproxyH2Port),
      channelOptions: {},
      channels: 1,
      proxy: 'haproxy',
      backends: all,
    });
  }
  if (inputs.haproxyTcpPort !== null) {
    scenarios.push({
      name: NAMES.haproxyTcp,
      title: 'one channel to HAProxy mode tcp (L4): one connection, one backend',
      target: viaProxy(inputs.haproxyTcpPort),
      channelOptions: {},
      channels: 1,
      proxy: 'haproxy',
      backends: all,
    });
  }
  return scenarios;
}

/** Our round robin over the evenness set (10 backends), one channel. */
export function evennessScenario(backends: readonly BackendInfo[]): ScenarioDef {
  return {
    name: NAMES.evenness,
    title: `grpc-lb.round_robin over ${backends.length} backends`,
    target: staticTarget(backends),
    channelOptions: {},
    channels: 1,
    proxy: null,
    backends: backends.map((b) => b.address),
  };
}

/** The same backends behind HAProxy mode tcp, from `channels` clients (say, client pods). */
export function evennessL4Scenario(
  backends: readonly BackendInfo[],
  haproxyTcpPort: number,
  channels: number,
): ScenarioDef {
  return {
    name: NAMES.evennessL4,
    title: `${channels} channels through HAProxy mode tcp (L4) to ${backends.length} backends`,
    target: `ipv4:127.0.0.1:${haproxyTcpPort}`,
    channelOptions: {},
    channels,
    proxy: 'haproxy',
    backends: backends.map((b) => b.address),
  };
}
