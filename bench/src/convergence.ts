/**
 * The convergence scenarios: how long a client takes to follow a change in the registry its
 * resolver watches. Two backends are registered, a client keeps a light closed-loop load on them
 * through the resolver, then a third endpoint is added (DNS: an A record by nsupdate; etcd: a key
 * written by `registerEndpoint`; Kubernetes: the Service's EndpointSlice rewritten with it by a PUT;
 * Consul: an instance registered with the agent by `registerService`, one PUT, no health check)
 * and removed again, round after round. Measured: registry change
 * → first call answered by the new endpoint, and removal → last call answered by it.
 * Pure: names, timings, the schedule and `--scenarios` selection; convergence-run.ts runs them,
 * convergence-stats.ts measures.
 */

export const CONVERGENCE = 'convergence';

export const RESOLVERS = ['dns', 'etcd', 'k8s', 'consul'] as const;
export type ConvergenceResolver = (typeof RESOLVERS)[number];

/** Whose resolver the client uses: ours, or (DNS only, for comparison) grpc-js's built-in `dns:`. */
export type ConvergenceClient = 'grpc-lb' | 'grpc-js';

/** Re-resolution interval of the `dns+lb:` client (the resolver's floor, `min_interval`, is 1 s). */
export const DNS_INTERVAL_MS = 1000;
/** The etcd target: "put → first call" at p99. */
export const ETCD_TARGET_P99_MS = 250;
/** Kubernetes, the other resolver that watches: read against the etcd target. */
export const K8S_TARGET_P99_MS = ETCD_TARGET_P99_MS;
/** Consul (blocking queries on the agent): read against the same bound. */
export const CONSUL_TARGET_P99_MS = ETCD_TARGET_P99_MS;
/** Calls in flight of the client (closed loop): a light, steady load. */
export const CONVERGENCE_CONCURRENCY = 4;
export const CONVERGENCE_DEADLINE_MS = 2000;
/** Registered before the load starts; the added-and-removed endpoint is one more. */
export const BASE_ENDPOINTS = 2;
/** The DNS name the scenario's records live under (bind9's test zone). */
export const DNS_NAME = 'api.svc.test';
/** The etcd service (key prefix) of the scenario. */
export const ETCD_SERVICE = 'services/bench';
/** Kubernetes: the namespace, Service, its port name and the one EndpointSlice of the scenario. */
export const K8S_NAMESPACE = 'grpc-lb-bench';
export const K8S_SERVICE = 'bench';
export const K8S_PORT_NAME = 'grpc';
export const K8S_SLICE = 'bench-1';
/** The Service's port (what a `k8s:` target may name by number); the pods listen elsewhere. */
export const K8S_SERVICE_PORT = 80;
/** The Consul service the scenario's instances are registered under. */
export const CONSUL_SERVICE = 'bench';

export interface ConvergenceTiming {
  /** Steady load on the base endpoints before the first change, ms into the measured window. */
  leadMs: number;
  /** From an add to the removal of the same endpoint: its first call must come within this. */
  addPhaseMs: number;
  /** From a removal to the next add (or the end of the run). */
  removePhaseMs: number;
  /**
   * Each add is delayed by a random 0…jitterMs, so that over the rounds the changes fall at every
   * point of a re-resolution interval instead of at the same one.
   */
  jitterMs: number;
  /**
   * A removal has converged when the removed endpoint answered no call in the last `quietMs` of
   * its phase; an add, when the new endpoint answered a call before its removal.
   */
  quietMs: number;
}

/**
 * DNS: phases of two and a half intervals (quick: one and a half), so a change made just after a
 * lookup is still seen with time to spare; each add jittered over one interval. etcd,
 * Kubernetes and Consul push changes (a watch; Consul's blocking query): 1 s phases (quick: 0.5 s).
 */
export function convergenceTiming(
  resolver: ConvergenceResolver,
  quick: boolean,
): ConvergenceTiming {
  if (resolver === 'dns') {
    const phaseMs = (quick ? 1 : 2) * DNS_INTERVAL_MS + 500;
    return {
      leadMs: quick ? 300 : 500,
      addPhaseMs: phaseMs,
      removePhaseMs: phaseMs,
      jitterMs: DNS_INTERVAL_MS,
      quietMs: quick ? 300 : 500,
    };
  }
  return quick
    ? { leadMs: 300, addPhaseMs: 500, removePhaseMs: 500, jitterMs: 100, quietMs: 250 }
    : { leadMs: 500, addPhaseMs: 1000, removePhaseMs: 1000, jitterMs: 250, quietMs: 500 };
}

export interface ConvergenceStep {
  round: number;
  /** When the add is due, ms into the measured window. */
  addAtMs: number;
  /** When the removal is due. */
  removeAtMs: number;
}

export interface ConvergenceSchedule {
  steps: ConvergenceStep[];
  /** The measured window: the last removal's phase ends here. */
  durationMs: number;
}

/** The rounds' add and removal times; `random` in [0, 1) gives each add's jitter. */
export function convergenceSchedule(
  timing: ConvergenceTiming,
  rounds: number,
  random: () => number = Math.random,
): ConvergenceSchedule {
  const steps: ConvergenceStep[] = [];
  let at = timing.leadMs;
  for (let round = 1; round <= rounds; round++) {
    const addAtMs = at + Math.floor(random() * timing.jitterMs);
    const removeAtMs = addAtMs + timing.addPhaseMs;
    steps.push({ round, addAtMs, removeAtMs });
    at = removeAtMs + timing.removePhaseMs;
  }
  return { steps, durationMs: at };
}

/** The name a resolver's runs go by in reports and in `--scenarios`: `convergence-dns`. */
export function convergenceScenarioName(resolver: ConvergenceResolver): string {
  return `${CONVERGENCE}-${resolver}`;
}

/** Whether `--scenarios` selects this resolver's runs: `convergence` or `convergence-<resolver>`. */
export function convergenceWanted(
  scenarios: readonly string[] | null,
  resolver: ConvergenceResolver,
): boolean {
  return (
    scenarios === null ||
    scenarios.includes(CONVERGENCE) ||
    scenarios.includes(convergenceScenarioName(resolver))
  );
}

/** The `dns+lb:` target asking the given DNS server, re-resolving every `intervalMs`. */
export function dnsLbTarget(server: string, port: number, intervalMs: number): string {
  return `dns+lb://${server}/${DNS_NAME}:${port}?interval=${intervalMs}ms`;
}

/** grpc-js's built-in resolver on the same server (needs GRPC_NODE_USE_ALTERNATIVE_RESOLVER). */
export function builtinDnsTarget(server: string, port: number): string {
  return `dns://${server}/${DNS_NAME}:${port}`;
}

export function etcdTarget(endpoint: string): string {
  return `etcd://${endpoint}/${ETCD_SERVICE}`;
}

/**
 * The scenario's Consul service through the default agent (the worker is given the agent's
 * address in CONSUL_HTTP_ADDR): passing instances only, the resolver's default.
 */
export function consulTarget(): string {
  return `consul:///${CONSUL_SERVICE}`;
}

/** The Service's named port in the scenario's namespace (the API server comes from a kubeconfig). */
export function k8sTarget(): string {
  return `k8s:///${K8S_SERVICE}.${K8S_NAMESPACE}:${K8S_PORT_NAME}`;
}

export const K8S_SLICES_PATH = `/apis/discovery.k8s.io/v1/namespaces/${K8S_NAMESPACE}/endpointslices`;
export const K8S_SERVICES_PATH = `/api/v1/namespaces/${K8S_NAMESPACE}/services`;

/** The scenario's namespace, for a POST to /api/v1/namespaces. */
export function k8sNamespaceBody(): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: K8S_NAMESPACE } };
}

/** The Service: its port named `grpc`, mapped to the port the backends listen on. */
export function k8sServiceBody(targetPort: number): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: K8S_SERVICE, namespace: K8S_NAMESPACE },
    spec: {
      ports: [{ name: K8S_PORT_NAME, port: K8S_SERVICE_PORT, targetPort, protocol: 'TCP' }],
      selector: { app: K8S_SERVICE },
    },
  };
}

/**
 * The Service's one EndpointSlice with these pod IPs, all ready, on the backends' port — what the
 * EndpointSlice controller writes. With `resourceVersion`, for a PUT (the update is refused with
 * 409 when the slice changed since); without, for the POST creating it.
 */
export function k8sSliceBody(
  hosts: readonly string[],
  port: number,
  resourceVersion?: string,
): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: K8S_SLICE,
      namespace: K8S_NAMESPACE,
      labels: { 'kubernetes.io/service-name': K8S_SERVICE },
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    },
    addressType: 'IPv4',
    endpoints: hosts.map((host) => ({
      addresses: [host],
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: 'Pod', namespace: K8S_NAMESPACE, name: `pod-${host.replace(/\./g, '-')}` },
    })),
    ports: [{ name: K8S_PORT_NAME, port, protocol: 'TCP' }],
  };
}

/** `metadata.resourceVersion` of an object the API server returned; throws when it has none. */
export function resourceVersionOf(json: unknown): string {
  const metadata = (json as { metadata?: { resourceVersion?: unknown } } | null | undefined)
    ?.metadata;
  const version = metadata?.resourceVersion;
  if (typeof version !== 'string' || version === '') {
    throw new Error(
      `the API server's answer has no metadata.resourceVersion: ${JSON.stringify(json)?.slice(0, 200)}`,
    );
  }
  return version;
}

/** The Consul instance ID of a backend: one per backend, so a re-registration replaces it. */
export function consulInstanceId(host: string, port: number): string {
  return `${CONSUL_SERVICE}-${host}-${port}`;
}

/** nsupdate commands adding and deleting an A record of the scenario's name. */
export function dnsAdd(host: string): string {
  return `add ${DNS_NAME}. 1 A ${host}`;
}

export function dnsDelete(host: string): string {
  return `delete ${DNS_NAME}. A ${host}`;
}
