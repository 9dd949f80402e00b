/**
 * Istio routing without Istio. The hello2 routing of a published VMs-and-pods walk-through — a
 * VirtualService `hello2-vs` shifting SayHello 30/60/10 over subsets v1/v2/v3 of hello2, and the
 * DestinationRule `hello2-dr` defining those subsets by the `version` label (with a connection
 * pool) — is applied to a real kube-apiserver and drives a plain grpc-js client, with no sidecar:
 *
 *   k8s:///hello2-svc.grpc-reciprocal-hello:grpc?istio=true
 *
 * Istio itself is not installed: the example installs minimal CustomResourceDefinitions of its own
 * for VirtualService and DestinationRule (networking.istio.io v1, v1beta1 and v1alpha3 served, open
 * schemas), so the API server stores and watches the resources as it would Istio's. The resources
 * are the walk-through's, written at its `v1alpha3`; one change: the route's uri prefix is this
 * repository's Greeter (`/grpclb.test.Greeter/SayHello`) instead of the walk-through's
 * `/org.feuyeux.grpc.Greeter/SayHello`, the service the backends here implement.
 *
 * Six backends (two per version) run on pod-like addresses (10.244.N.2–7) behind ONE Service
 * `hello2-svc` of namespace `grpc-reciprocal-hello` (a real kube-apiserver with no controllers: the
 * example writes the Pod objects, labelled `app: hello2` and `version: v1|v2|v3`, and the Service's
 * EndpointSlice as the EndpointSlice controller would). The example process is hello1, the client.
 *
 * Step 1: under steady load (several calls in flight all the time), 10,000 SayHello calls; each
 * version's share is 30/60/10 within ±0.5 points. Step 2: still under load, the VirtualService is
 * edited (a PUT, as `kubectl apply` does) to 0/100/0; the time from the edit to the first call
 * started under the new weights (after the observer's `config` event for the new resourceVersion)
 * is measured, then 2,000 more calls must all land on v2. Every call succeeds and no backend sees a
 * second connection from the client.
 *
 * It ends with one JSON line: the shares per step, the failed calls, the time from the edit to the
 * first call under the new weights, the reconnects, and the translation's warnings (the fields of
 * the resources the client does not carry over).
 *
 *   npm run example -- istio-routes [--concurrency 8] [--calls 10000] [--calls-after-edit 2000]
 *
 * Needs root (a network namespace, as examples/k8s-rolling-update) and Go the first time (the API
 * server is built once from Go modules, test/testbin).
 */
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION, register } from '@grpc-lb/core';
import { registerK8s } from '@grpc-lb/resolver-k8s';
import {
  type Backend,
  type BackendSet,
  type GreeterClient,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from '@grpc-lb/test/harness';
import { installIstioCrds } from '@grpc-lb/test/support/istio-crds';
import { startKubeApiserver, type KubeApiserver } from '@grpc-lb/test/support/kube-apiserver';
import { reexecInTestNetns } from '@grpc-lb/test/support/netns';
import { createPodAddresses } from '@grpc-lb/test/support/pod-addresses';
import { intFlag, run, Tally } from '../shared/cli';

const NAMESPACE = 'grpc-reciprocal-hello';
const SERVICE = 'hello2-svc';
const VIRTUAL_SERVICE = 'hello2-vs';
const DESTINATION_RULE = 'hello2-dr';
const SAY_HELLO = '/grpclb.test.Greeter/SayHello';
const VERSIONS = ['v1', 'v2', 'v3'] as const;
type Version = (typeof VERSIONS)[number];
type Weights = Record<Version, number>;
/** The walk-through's split, then the edit. */
const BEFORE: Weights = { v1: 30, v2: 60, v3: 10 };
const AFTER: Weights = { v1: 0, v2: 100, v3: 0 };
/** Backends per version. */
const PER_VERSION = 2;

/** The walk-through's VirtualService (its uri prefix on this repository's Greeter), at `weights`. */
function virtualService(weights: Weights): Record<string, unknown> {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'VirtualService',
    metadata: { name: VIRTUAL_SERVICE, namespace: NAMESPACE },
    spec: {
      hosts: [SERVICE],
      http: [
        {
          name: 'grpc-hello-route',
          match: [{ uri: { prefix: SAY_HELLO } }],
          route: VERSIONS.map((subset) => ({
            destination: { host: SERVICE, subset },
            weight: weights[subset],
          })),
        },
      ],
    },
  };
}

/** The walk-through's DestinationRule, connection pool included. */
const DESTINATION_RULE_OBJECT = {
  apiVersion: 'networking.istio.io/v1alpha3',
  kind: 'DestinationRule',
  metadata: { name: DESTINATION_RULE, namespace: NAMESPACE },
  spec: {
    host: SERVICE,
    subsets: VERSIONS.map((version) => ({ labels: { version }, name: version })),
    trafficPolicy: {
      connectionPool: {
        http: {
          http1MaxPendingRequests: 20,
          http2MaxRequests: 100,
          maxRequestsPerConnection: 10,
          maxRetries: 1,
        },
        tcp: { connectTimeout: '10s', maxConnections: 10 },
      },
    },
  },
};

async function must(k: KubeApiserver, method: string, path: string, body?: unknown) {
  const result = await k.request(method, path, body);
  if (result.status >= 300) throw new Error(`${method} ${path}: ${result.status} ${result.body}`);
  return result;
}

const resourceVersion = (json: unknown) =>
  (json as { metadata: { resourceVersion: string } }).metadata.resourceVersion;

/**
 * Service hello2-svc, one Pod object per backend (labelled `app: hello2`, `version: <v>`; the API
 * server has no kubelet, so a bare Pod is only its record) and the Service's EndpointSlice as the
 * EndpointSlice controller writes it: every pod ready, each naming its Pod, none of its labels.
 */
async function createService(k: KubeApiserver, pods: readonly Backend[]): Promise<void> {
  const port = pods[0]!.port;
  await must(k, 'POST', `/api/v1/namespaces/${NAMESPACE}/services`, {
    metadata: { name: SERVICE, labels: { app: 'hello2' } },
    spec: { selector: { app: 'hello2' }, ports: [{ name: 'grpc', port: 80, targetPort: port }] },
  });
  for (const pod of pods) {
    await must(k, 'POST', `/api/v1/namespaces/${NAMESPACE}/pods`, {
      metadata: { name: pod.name, labels: { app: 'hello2', version: pod.labels['version']! } },
      spec: {
        containers: [{ name: 'hello2', image: `registry.example/hello2:${pod.labels['version']}` }],
      },
    });
  }
  await must(k, 'POST', `/apis/discovery.k8s.io/v1/namespaces/${NAMESPACE}/endpointslices`, {
    metadata: {
      name: `${SERVICE}-x7k2p`,
      labels: {
        'kubernetes.io/service-name': SERVICE,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
      },
    },
    addressType: 'IPv4',
    endpoints: pods.map((pod) => ({
      addresses: [pod.host],
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: 'Pod', name: pod.name, namespace: NAMESPACE },
    })),
    ports: [{ name: 'grpc', port, protocol: 'TCP' }],
  });
}

const istioPath = (plural: string, name?: string) =>
  `/apis/networking.istio.io/v1alpha3/namespaces/${NAMESPACE}/${plural}${name ? `/${name}` : ''}`;

/** One call of the load: when it started, and who answered (undefined: it failed). */
interface Call {
  startedAt: number;
  version: Version | undefined;
  backend: string | undefined;
}

/** Steady load: `concurrency` callers back to back, every call recorded with its start time. */
function startLoad(
  client: GreeterClient,
  concurrency: number,
  versionOf: (address: string) => Version,
) {
  const calls: Call[] = [];
  const errors = new Tally();
  let running = true;
  const caller = async (): Promise<void> => {
    while (running) {
      const call: Call = { startedAt: performance.now(), version: undefined, backend: undefined };
      try {
        const reply = await sayHello(client, 'eric', { deadlineMs: 5_000 });
        call.version = versionOf(reply.address);
        call.backend = reply.backend;
      } catch (error) {
        errors.add(error instanceof Error ? error.message : String(error));
      }
      calls.push(call);
    }
  };
  const callers = Array.from({ length: concurrency }, caller);
  return {
    calls,
    errors,
    stop: async () => {
      running = false;
      await Promise.all(callers);
    },
  };
}

interface StepResult {
  weights: Weights;
  shares: Record<Version, number>;
  calls: number;
  failed: number;
  shareErrorPp: number;
  /** Calls per backend. */
  perBackend: Record<string, number>;
  /** The resources the channel followed, with their resourceVersions. */
  source: string;
}

const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;

async function main(): Promise<number> {
  // From here on this process is the copy inside the namespace (the first one waits and exits).
  await reexecInTestNetns();
  const concurrency = intFlag('concurrency', 8);
  const callsBefore = intFlag('calls', 10_000);
  const callsAfter = intFlag('calls-after-edit', 2_000);

  const backendCount = VERSIONS.length * PER_VERSION;
  const started = await Promise.allSettled([
    startKubeApiserver(),
    createPodAddresses(backendCount),
  ] as const);
  const [kubeStart, podsStart] = started;
  if (kubeStart.status === 'rejected' || podsStart.status === 'rejected') {
    if (kubeStart.status === 'fulfilled') await kubeStart.value.dispose();
    if (podsStart.status === 'fulfilled') await podsStart.value.remove();
    throw started.find((r) => r.status === 'rejected')?.reason;
  }
  const [kube, pods] = [kubeStart.value, podsStart.value];
  let backendSet: BackendSet | undefined;
  let client: GreeterClient | undefined;
  let load: ReturnType<typeof startLoad> | undefined;
  try {
    const versionAt = (i: number): Version => VERSIONS[Math.floor(i / PER_VERSION)]!;
    backendSet = await startBackends({
      count: backendCount,
      network: pods.network,
      names: Array.from({ length: backendCount }, (_, i) => `hello2-${versionAt(i)}-${i % 2}`),
      labels: Array.from({ length: backendCount }, (_, i) => ({ version: versionAt(i) })),
    });
    const backends = backendSet.backends;
    console.log(
      `kube-apiserver ${kube.version} at ${kube.url}; pods on ${pods.network}.2-${1 + backendCount} in network namespace ${pods.netns}`,
    );

    await installIstioCrds(kube);
    console.log('kubernetes: CRDs virtualservices and destinationrules.networking.istio.io served');
    await must(kube, 'POST', '/api/v1/namespaces', { metadata: { name: NAMESPACE } });
    await createService(kube, backends);
    for (const b of backends) {
      console.log(
        `kubernetes: Pod ${b.name} ${b.address} (version=${b.labels['version']}) behind Service ${NAMESPACE}/${SERVICE}`,
      );
    }
    await must(kube, 'POST', istioPath('destinationrules'), DESTINATION_RULE_OBJECT);
    const firstRevision = resourceVersion(
      (await must(kube, 'POST', istioPath('virtualservices'), virtualService(BEFORE))).json,
    );
    console.log(
      `kubernetes: DestinationRule ${NAMESPACE}/${DESTINATION_RULE} (subsets v1/v2/v3 by label version), ` +
        `VirtualService ${NAMESPACE}/${VIRTUAL_SERVICE} (SayHello ${VERSIONS.map((v) => BEFORE[v]).join('/')})`,
    );

    const warnings: string[] = [];
    register({ grpc });
    registerK8s({
      grpc,
      kubeconfig: kube.adminKubeconfig,
      logger: {
        warn(message: string): void {
          warnings.push(message);
          console.log(`warning: ${message}`);
        },
      },
    });
    const target = `k8s:///${SERVICE}.${NAMESPACE}:grpc?istio=true`;
    console.log(`hello1: client target ${target}`);

    const observer = new LoadBalancerObserver();
    /** The configs the channel applied, as the observer reports them, with when. */
    const applied: { at: number; source: string }[] = [];
    const rejected: string[] = [];
    observer.on('config', (event) => {
      if (event.status === 'applied') {
        applied.push({ at: performance.now(), source: event.source });
      } else {
        rejected.push(`${event.source}: ${event.error}`);
      }
    });
    const Greeter = loadGreeterService();
    client = new Greeter(target, grpc.credentials.createInsecure(), {
      [OBSERVER_OPTION]: observer,
    });
    const versions = new Map(backends.map((b, i): [string, Version] => [b.address, versionAt(i)]));
    const versionOf = (address: string): Version => {
      const version = versions.get(address);
      if (!version) throw new Error(`an answer from ${address}, not a backend of ${SERVICE}`);
      return version;
    };

    /** The observer's event saying the channel follows the VirtualService at `revision`. */
    const appliedAt = (revision: string) =>
      waitFor(
        () =>
          applied.find((e) =>
            e.source.includes(
              `VirtualService ${NAMESPACE}/${VIRTUAL_SERVICE} (resourceVersion ${revision})`,
            ),
          ),
        {
          timeoutMs: 10_000,
          message: `the channel following VirtualService ${VIRTUAL_SERVICE} at resourceVersion ${revision}`,
        },
      );

    load = startLoad(client, concurrency, versionOf);
    const running = load;
    const firstApplied = await appliedAt(firstRevision);
    console.log(`hello1: the channel follows ${firstApplied.source}`);

    const measure = (
      weights: Weights,
      calls: readonly Call[],
      failed: number,
      source: string,
    ): StepResult => {
      const tally = new Map<Version, number>(VERSIONS.map((v) => [v, 0]));
      const perBackend: Record<string, number> = {};
      for (const b of backends) perBackend[b.name] = 0;
      for (const c of calls) {
        tally.set(c.version!, tally.get(c.version!)! + 1);
        perBackend[c.backend!] = (perBackend[c.backend!] ?? 0) + 1;
      }
      const shares = {} as Record<Version, number>;
      let errorPp = 0;
      for (const v of VERSIONS) {
        const share = tally.get(v)! / calls.length;
        shares[v] = round(share);
        errorPp = Math.max(errorPp, Math.abs(share * 100 - weights[v]));
      }
      return {
        weights,
        shares,
        calls: calls.length,
        failed,
        shareErrorPp: round(errorPp, 3),
        perBackend,
        source,
      };
    };

    // Step 1: the first `callsBefore` calls started once the channel followed the resources.
    const firstFrom = firstApplied.at;
    await waitFor(
      () => running.calls.filter((c) => c.startedAt >= firstFrom).length >= callsBefore,
      { timeoutMs: 120_000, message: `${callsBefore} calls at 30/60/10` },
    );
    const before = running.calls
      .filter((c) => c.startedAt >= firstFrom)
      .sort((a, b) => a.startedAt - b.startedAt)
      .slice(0, callsBefore);
    const step1Failed = before.filter((c) => c.version === undefined).length;
    const step1 = measure(
      BEFORE,
      before.filter((c) => c.version !== undefined),
      step1Failed,
      firstApplied.source,
    );

    // Step 2: the edit, under the same load (read, then written whole at its resourceVersion).
    const path = istioPath('virtualservices', VIRTUAL_SERVICE);
    const current = (await must(kube, 'GET', path)).json as Record<string, unknown>;
    const edited = { ...current, spec: virtualService(AFTER)['spec'] };
    const editedAt = performance.now();
    const editRevision = resourceVersion((await must(kube, 'PUT', path, edited)).json);
    const editApplied = await appliedAt(editRevision);
    console.log(
      `kubernetes: VirtualService ${NAMESPACE}/${VIRTUAL_SERVICE} edited to SayHello ${VERSIONS.map((v) => AFTER[v]).join('/')} ` +
        `(resourceVersion ${editRevision}); the channel follows it ${Math.round(editApplied.at - editedAt)} ms later`,
    );
    await waitFor(
      () => running.calls.filter((c) => c.startedAt >= editApplied.at).length >= callsAfter,
      { timeoutMs: 120_000, message: `${callsAfter} calls at 0/100/0` },
    );
    await running.stop();
    const sorted = [...running.calls].sort((a, b) => a.startedAt - b.startedAt);
    const after = sorted.filter((c) => c.startedAt >= editApplied.at);
    const firstAfter = after[0]!;
    // The last call the old weights sent to v1 or v3, from the edit on.
    const lastOld = sorted
      .filter((c) => c.startedAt >= editedAt && c.version !== undefined && c.version !== 'v2')
      .at(-1);
    const step2 = measure(
      AFTER,
      after.filter((c) => c.version !== undefined),
      after.filter((c) => c.version === undefined).length,
      editApplied.source,
    );
    const editToFirstCallMs = round(firstAfter.startedAt - editedAt, 1);
    const editToConfigAppliedMs = round(editApplied.at - editedAt, 1);
    const oldWeightCallsAfterApplied = after.filter(
      (c) => c.version !== undefined && c.version !== 'v2',
    ).length;

    // One client connection per backend for the whole run: any further peer is a reconnect.
    const connections: Record<string, number> = {};
    let reconnects = 0;
    for (const b of backends) {
      const stats = await b.stats();
      connections[b.name] = stats.peers.length;
      reconnects += Math.max(0, stats.peers.length - 1);
    }
    running.errors.print('ERROR ');
    const failedCalls = running.errors.total;
    for (const [i, step] of [step1, step2].entries()) {
      console.log(
        `step ${i + 1}: SayHello ${VERSIONS.map((v) => step.weights[v]).join('/')}: ${step.calls} calls, ` +
          VERSIONS.map((v) => `${v} ${(step.shares[v] * 100).toFixed(2)} %`).join(', ') +
          `; max error ${step.shareErrorPp} pp, ${step.failed} failed`,
      );
    }
    console.log(
      `edit → first call under the new weights ${editToFirstCallMs} ms; ` +
        `last call on v1/v3 started ${lastOld ? round(lastOld.startedAt - editedAt, 1) : '-'} ms after the edit`,
    );
    const summary = {
      example: 'istio-routes',
      target,
      resources: [
        `VirtualService ${NAMESPACE}/${VIRTUAL_SERVICE}`,
        `DestinationRule ${NAMESPACE}/${DESTINATION_RULE}`,
      ],
      steps: [step1, step2],
      maxShareErrorPp: Math.max(step1.shareErrorPp, step2.shareErrorPp),
      failedCalls,
      editToConfigAppliedMs,
      editToFirstCallMs,
      lastOldWeightCallMs: lastOld ? round(lastOld.startedAt - editedAt, 1) : null,
      oldWeightCallsAfterApplied,
      reconnects,
      connections,
      // Each distinct warning once (the resolver repeats a resource's warnings for each of its
      // versions: the edited VirtualService's come again).
      warnings: [...new Set(warnings)],
      warningsLogged: warnings.length,
      rejectedConfigs: rejected,
    };
    console.log(JSON.stringify(summary));
    const kept =
      failedCalls === 0 &&
      reconnects === 0 &&
      summary.maxShareErrorPp <= 0.5 &&
      oldWeightCallsAfterApplied === 0 &&
      editToFirstCallMs <= 1_000 &&
      rejected.length === 0;
    return kept ? 0 : 1;
  } finally {
    await load?.stop();
    client?.close();
    await backendSet?.stopAll();
    await pods.remove();
    await kube.dispose();
  }
}

run(main);
