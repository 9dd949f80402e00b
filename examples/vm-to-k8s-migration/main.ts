/**
 * Moving a service from VMs to Kubernetes while both run, with no mesh. Service `hello` has three
 * "VM" backends (127.0.0.2–4, versions v1/v2/v3) registered in a Consul agent with meta `version`,
 * and three "pods" (10.244.N.2–4, one per version) behind ONE Kubernetes Service `hello` of
 * namespace `prod` (a real kube-apiserver with no controllers: the example writes the Pod objects,
 * labelled `app: hello` and `version: v1|v2|v3`, and the Service's EndpointSlice as the EndpointSlice
 * controller would, its endpoints naming their Pods and carrying none of their labels). One client
 * channel follows both worlds through one composite target:
 *
 *   composite:///hello?vms=consul:///hello&pods=k8s:///hello.prod:grpc?config=hello-lb&pod_labels=version
 *
 * (`&pod_labels=version` starts no new source, so it belongs to the pods' target.) Every endpoint
 * is labelled with its source (`source=vms`, `source=pods`), the VMs also with their Consul meta
 * (`version=v2`) and the pods with their Pod's `version` label. The traffic policy is a `grpc-lb.traffic_split` service config
 * held in ConfigMap `prod/hello-lb` (data key `service-config.json`): one subset per version and
 * world, SayHello split 30/60/10 across v1/v2/v3 and SayGoodbye pinned to v2, each version's share
 * divided between VMs and pods by the pods' share. Under steady load (several calls in flight all
 * the time) the example rewrites the ConfigMap to move the pods' share 0 → 10 → 50 → 100 %; at
 * each step it waits until the channel follows the new document (the observer's `config` event),
 * then counts calls. At 50 % it also writes a bad document (a route naming a subset that does not
 * exist): the channel refuses it and keeps the last good one. Last, the VMs are deregistered from
 * Consul, leave the channel and are stopped.
 *
 * It ends with one JSON line: every call succeeded, every step's split is the policy's within
 * ±0.5 points, no backend saw a second connection from the client (a policy change reconnects
 * nothing), and how long a ConfigMap write took to reach the channel's picker.
 *
 *   npm run example -- vm-to-k8s-migration [--concurrency 8] [--calls-per-step 2000]
 *
 * Needs root (a network namespace, as examples/k8s-rolling-update) and Go the first time (Consul
 * and the API server are built once from Go modules, test/testbin).
 */
import * as grpc from '@grpc/grpc-js';
import {
  LoadBalancerObserver,
  OBSERVER_OPTION,
  register,
  serviceConfig,
  trafficSplit,
} from '@grpc-lb/core';
import { registerConsul, registerService, type ConsulRegistration } from '@grpc-lb/resolver-consul';
import { registerK8s } from '@grpc-lb/resolver-k8s';
import {
  type Backend,
  type GreeterClient,
  loadGreeterService,
  sayGoodbye,
  sayHello,
  startBackends,
  waitFor,
} from '@grpc-lb/test/harness';
import { startConsul } from '@grpc-lb/test/support/consul';
import { startKubeApiserver, type KubeApiserver } from '@grpc-lb/test/support/kube-apiserver';
import { reexecInTestNetns } from '@grpc-lb/test/support/netns';
import { createPodAddresses } from '@grpc-lb/test/support/pod-addresses';
import { intFlag, run, Tally } from '../shared/cli';

const SERVICE = 'hello';
const NAMESPACE = 'prod';
const CONFIG_MAP = 'hello-lb';
const CONFIG_KEY = 'service-config.json';
const SAY_HELLO = '/grpclb.test.Greeter/SayHello';
const SAY_GOODBYE = '/grpclb.test.Greeter/SayGoodbye';
const VERSIONS = ['v1', 'v2', 'v3'] as const;
type Version = (typeof VERSIONS)[number];
/** SayHello's split across versions, in percent; SayGoodbye goes to PINNED only. */
const HELLO_SPLIT: Record<Version, number> = { v1: 30, v2: 60, v3: 10 };
const PINNED: Version = 'v2';
/** The pods' share of every version, in percent, step by step. */
const PODS_PERCENT = [0, 10, 50, 100] as const;
type Method = typeof SAY_HELLO | typeof SAY_GOODBYE;
const METHODS: readonly Method[] = [SAY_HELLO, SAY_GOODBYE];

const subsetName = (world: 'vms' | 'pods', v: Version) => `${world}-${v}`;

/**
 * The policy document for a pods share of `podsPercent`: subsets per version and world, and
 * weights (percent of the method's calls) = version share × world share.
 */
function policy(podsPercent: number): Record<string, unknown> {
  const split = trafficSplit();
  for (const v of VERSIONS) {
    split.subset(subsetName('vms', v), { source: 'vms', version: v });
    split.subset(subsetName('pods', v), { source: 'pods', version: v });
  }
  return serviceConfig(
    split
      .route({ method: SAY_HELLO }, expectedShares(SAY_HELLO, podsPercent, 100), {
        name: 'say-hello',
      })
      .route({ method: SAY_GOODBYE }, expectedShares(SAY_GOODBYE, podsPercent, 100), {
        name: 'say-goodbye',
      }),
  );
}

/** Each subset's share of `method` at this pods share, out of `scale` (100: percent, 1: fraction). */
function expectedShares(
  method: Method,
  podsPercent: number,
  scale: number,
): Record<string, number> {
  const shares: Record<string, number> = {};
  for (const v of VERSIONS) {
    const versionPercent = method === SAY_HELLO ? HELLO_SPLIT[v] : v === PINNED ? 100 : 0;
    if (versionPercent === 0) continue;
    shares[subsetName('vms', v)] = (versionPercent * (100 - podsPercent) * scale) / 10_000;
    shares[subsetName('pods', v)] = (versionPercent * podsPercent * scale) / 10_000;
  }
  return shares;
}

/** The SayHello route's weights in a config the channel reports, to tell which step it is. */
function helloWeights(config: Readonly<Record<string, unknown>>): string {
  const lb = (config['loadBalancingConfig'] as Record<string, unknown>[] | undefined)?.[0];
  const split = lb?.['grpc-lb.traffic_split'] as
    { routes?: { name?: string; split?: { subset: string; weight: number }[] }[] } | undefined;
  const route = split?.routes?.find((r) => r.name === 'say-hello');
  return JSON.stringify(route?.split?.map((s) => [s.subset, s.weight]) ?? null);
}

async function must(k: KubeApiserver, method: string, path: string, body?: unknown) {
  const result = await k.request(method, path, body);
  if (result.status >= 300) throw new Error(`${method} ${path}: ${result.status} ${result.body}`);
  return result;
}

/**
 * Service hello, one Pod object per pod backend (labelled `app: hello`, `version: <v>`; the API
 * server has no kubelet, so a bare Pod is only its record) and the Service's EndpointSlice as the
 * EndpointSlice controller writes it: the Service's name, every pod ready, each naming its Pod —
 * and none of the Pods' labels, which the resolver reads from the Pods (`pod_labels=version`).
 */
async function createService(k: KubeApiserver, pods: readonly Backend[]): Promise<void> {
  const port = pods[0]!.port;
  await must(k, 'POST', `/api/v1/namespaces/${NAMESPACE}/services`, {
    metadata: { name: SERVICE, labels: { app: SERVICE } },
    spec: { selector: { app: SERVICE }, ports: [{ name: 'grpc', port: 80, targetPort: port }] },
  });
  for (const [i, pod] of pods.entries()) {
    await must(k, 'POST', `/api/v1/namespaces/${NAMESPACE}/pods`, {
      metadata: { name: pod.name, labels: { app: SERVICE, version: VERSIONS[i]! } },
      spec: {
        containers: [{ name: SERVICE, image: `registry.example/${SERVICE}:${VERSIONS[i]}` }],
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

/**
 * Writes `text` as the policy document of ConfigMap prod/hello-lb (`create`: the first time; then
 * a PUT replaces the ConfigMap whole, as `kubectl replace` does) in one request; resolves with the
 * ConfigMap's new resourceVersion.
 */
async function writeDocument(k: KubeApiserver, text: string, create: boolean): Promise<string> {
  const base = `/api/v1/namespaces/${NAMESPACE}/configmaps`;
  const body = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: CONFIG_MAP },
    data: { [CONFIG_KEY]: text },
  };
  const result = create
    ? await must(k, 'POST', base, body)
    : await must(k, 'PUT', `${base}/${CONFIG_MAP}`, body);
  return (result.json as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
}

const writePolicy = (k: KubeApiserver, podsPercent: number, create: boolean) =>
  writeDocument(k, JSON.stringify(policy(podsPercent), null, 2), create);

/** A mistake an operator could make: subset pods-v3 renamed, so the routes name a subset the document lacks. */
function badPolicy(podsPercent: number): string {
  return JSON.stringify(policy(podsPercent), null, 2).replace('"pods-v3"', '"pods-v4"');
}

interface StepResult {
  podsShare: number;
  expected: Record<string, Record<string, number>>;
  measured: Record<string, Record<string, number>>;
  calls: number;
  failed: number;
  shareErrorPp: number;
  podsShareMeasured: number;
  /** ConfigMap write → the channel follows it (undefined for the first document). */
  configAppliedMs?: number;
  /** ConfigMap write → first call answered by a pod (the step that opens the pods). */
  firstPodCallMs?: number;
  /** The VMs' deregistration → none of them is an endpoint of the channel. */
  vmsOutMs?: number;
  vmsRetired?: true;
  document: string;
}

/**
 * Steady load: `concurrency` callers back to back, every fifth call a SayGoodbye. Each call is
 * counted for the step current when it started, and only if the channel already followed that
 * step's document then (a call started after the observer's `config` event is picked by the
 * new picker).
 */
function startLoad(client: GreeterClient, concurrency: number, subsetOf: (a: string) => string) {
  const state = { step: -1, counting: false };
  const perStep = new Map<number, { counts: Map<Method, Tally>; calls: number; failed: number }>();
  const firstPodCall = new Map<number, number>();
  const errors = new Tally();
  let issued = 0;
  let running = true;
  const stepOf = (step: number) => {
    let entry = perStep.get(step);
    if (!entry) {
      entry = { counts: new Map(METHODS.map((m) => [m, new Tally()])), calls: 0, failed: 0 };
      perStep.set(step, entry);
    }
    return entry;
  };
  const caller = async (): Promise<void> => {
    while (running) {
      const n = issued++;
      const method: Method = n % 5 === 4 ? SAY_GOODBYE : SAY_HELLO;
      const step = state.step;
      const counted = state.counting;
      try {
        const reply = await (method === SAY_HELLO ? sayHello : sayGoodbye)(client, 'migration', {
          deadlineMs: 5_000,
        });
        const subset = subsetOf(reply.address);
        if (subset.startsWith('pods-') && !firstPodCall.has(step)) {
          firstPodCall.set(step, performance.now());
        }
        if (counted) {
          const entry = stepOf(step);
          entry.calls++;
          entry.counts.get(method)!.add(subset);
        }
      } catch (error) {
        errors.add(`${method}: ${error instanceof Error ? error.message : String(error)}`);
        stepOf(step).failed++;
      }
    }
  };
  const callers = Array.from({ length: concurrency }, caller);
  return {
    state,
    errors,
    firstPodCall,
    counted: (step: number) => perStep.get(step)?.calls ?? 0,
    step: (step: number) => stepOf(step),
    stop: async () => {
      running = false;
      await Promise.all(callers);
    },
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;

async function main(): Promise<number> {
  // From here on this process is the copy inside the namespace (the first one waits and exits).
  await reexecInTestNetns();
  const concurrency = intFlag('concurrency', 8);
  const callsPerStep = intFlag('calls-per-step', 2_000);

  const started = await Promise.allSettled([
    startConsul(),
    startKubeApiserver(),
    createPodAddresses(3),
  ] as const);
  const [consulStart, kubeStart, podsStart] = started;
  if (
    consulStart.status === 'rejected' ||
    kubeStart.status === 'rejected' ||
    podsStart.status === 'rejected'
  ) {
    // Whatever did start is stopped before the failure is reported.
    if (consulStart.status === 'fulfilled') await consulStart.value.dispose();
    if (kubeStart.status === 'fulfilled') await kubeStart.value.dispose();
    if (podsStart.status === 'fulfilled') await podsStart.value.remove();
    const failed = started.find((r) => r.status === 'rejected');
    throw failed?.reason;
  }
  const [consul, kube, pods] = [consulStart.value, kubeStart.value, podsStart.value];
  const registrations: ConsulRegistration[] = [];
  let vmSet: Awaited<ReturnType<typeof startBackends>> | undefined;
  let podSet: Awaited<ReturnType<typeof startBackends>> | undefined;
  let client: GreeterClient | undefined;
  let load: ReturnType<typeof startLoad> | undefined;
  try {
    const labels = VERSIONS.map((version) => ({ version }));
    [vmSet, podSet] = await Promise.all([
      startBackends({ count: 3, names: VERSIONS.map((v) => `vm-${v}`), labels }),
      startBackends({
        count: 3,
        network: pods.network,
        names: VERSIONS.map((v) => `${SERVICE}-${v}-pod`),
        labels,
      }),
    ]);
    const vms = vmSet.backends;
    const podBackends = podSet.backends;
    console.log(`consul ${consul.version} (dev agent) at ${consul.url}`);
    console.log(
      `kube-apiserver ${kube.version} at ${kube.url}; pods on ${pods.network}.2-4 in network namespace ${pods.netns}`,
    );

    // The VMs, as they are registered today: Consul service hello with meta version.
    for (const [i, vm] of vms.entries()) {
      registrations.push(
        await registerService({
          address: consul.address,
          name: SERVICE,
          host: vm.host,
          port: vm.port,
          meta: { version: VERSIONS[i]! },
        }),
      );
      console.log(
        `consul: ${vm.name} ${vm.address} registered as ${SERVICE}, meta version=${VERSIONS[i]}`,
      );
    }
    // The pods: one Service, Pods labelled by version, and the policy document before any client
    // starts.
    await must(kube, 'POST', '/api/v1/namespaces', { metadata: { name: NAMESPACE } });
    await createService(kube, podBackends);
    for (const [i, pod] of podBackends.entries()) {
      console.log(
        `kubernetes: Pod ${pod.name} ${pod.address} (version=${VERSIONS[i]}) behind Service ${NAMESPACE}/${SERVICE}`,
      );
    }
    const firstRevision = await writePolicy(kube, 0, true);
    console.log(`kubernetes: ConfigMap ${NAMESPACE}/${CONFIG_MAP} ${CONFIG_KEY}: pods 0 %`);

    register({ grpc });
    registerConsul({ grpc, address: consul.address });
    registerK8s({ grpc, kubeconfig: kube.adminKubeconfig });
    const target =
      `composite:///${SERVICE}?vms=consul:///${SERVICE}` +
      `&pods=k8s:///${SERVICE}.${NAMESPACE}:grpc?config=${CONFIG_MAP}&pod_labels=version`;
    console.log(`client target ${target}`);

    const observer = new LoadBalancerObserver();
    /** The configs the channel applied, as the observer reports them, with when. */
    const appliedConfigs: {
      at: number;
      source: string;
      config: Readonly<Record<string, unknown>>;
    }[] = [];
    const rejectedConfigs: { at: number; source: string; error: string }[] = [];
    observer.on('config', (event) => {
      const at = performance.now();
      if (event.status === 'applied') {
        appliedConfigs.push({ at, source: event.source, config: event.config });
      } else {
        rejectedConfigs.push({ at, source: event.source, error: event.error });
      }
    });
    const Greeter = loadGreeterService();
    client = new Greeter(target, grpc.credentials.createInsecure(), {
      [OBSERVER_OPTION]: observer,
    });
    const subsets = new Map<string, string>([
      ...vms.map((b, i): [string, string] => [b.address, subsetName('vms', VERSIONS[i]!)]),
      ...podBackends.map((b, i): [string, string] => [b.address, subsetName('pods', VERSIONS[i]!)]),
    ]);
    const subsetOf = (address: string) => subsets.get(address) ?? `unknown ${address}`;

    /**
     * Waits for the observer's event saying the channel follows the ConfigMap at this
     * resourceVersion (every call started after it is picked by that policy); the event's time.
     */
    const applied = async (podsPercent: number, revision: string): Promise<number> => {
      const found = await waitFor(
        () => appliedConfigs.find((e) => e.source.endsWith(`(resourceVersion ${revision})`)),
        {
          timeoutMs: 10_000,
          message: `the channel following ConfigMap ${CONFIG_MAP} at resourceVersion ${revision} (pods ${podsPercent} %)`,
        },
      );
      if (helloWeights(found.config) !== helloWeights(policy(podsPercent))) {
        throw new Error(`the channel applied ${JSON.stringify(found.config)}`);
      }
      return found.at;
    };
    const following = () =>
      observer.serviceConfigs().find((c) => c.target === target)?.source ?? '?';

    load = startLoad(client, concurrency, subsetOf);
    const running = load;
    // Every endpoint connected (the pods too, though they get no calls yet) before counting.
    await waitFor(
      () => {
        const ready = observer.endpoints().filter((e) => e.state === 'READY');
        return ready.length === subsets.size;
      },
      { timeoutMs: 15_000, message: 'all six endpoints connected' },
    );
    await applied(0, firstRevision);

    const steps: StepResult[] = [];
    const measure = async (
      index: number,
      podsPercent: number,
      extra: Partial<StepResult>,
      writtenAt?: number,
    ): Promise<void> => {
      running.state.counting = true;
      await waitFor(() => running.counted(index) >= callsPerStep, {
        timeoutMs: 60_000,
        message: `${callsPerStep} calls at pods ${podsPercent} %`,
      });
      running.state.counting = false;
      const entry = running.step(index);
      const expected: Record<string, Record<string, number>> = {};
      const measured: Record<string, Record<string, number>> = {};
      let errorPp = 0;
      let podsCalls = 0;
      let allCalls = 0;
      for (const method of METHODS) {
        const want = expectedShares(method, podsPercent, 1);
        const tally = entry.counts.get(method)!;
        const got: Record<string, number> = {};
        for (const subset of new Set([...Object.keys(want), ...tally.keys()])) {
          got[subset] = round(tally.count(subset) / tally.total);
          if (subset.startsWith('pods-')) podsCalls += tally.count(subset);
          errorPp = Math.max(
            errorPp,
            Math.abs(tally.count(subset) / tally.total - (want[subset] ?? 0)) * 100,
          );
        }
        allCalls += tally.total;
        expected[method] = want;
        measured[method] = got;
      }
      const result: StepResult = {
        podsShare: podsPercent / 100,
        expected,
        measured,
        calls: entry.calls,
        failed: entry.failed,
        shareErrorPp: round(errorPp, 3),
        podsShareMeasured: round(podsCalls / allCalls),
        ...extra,
        ...(writtenAt !== undefined && running.firstPodCall.has(index) && index === 1
          ? { firstPodCallMs: Math.round(running.firstPodCall.get(index)! - writtenAt) }
          : {}),
        document: following(),
      };
      steps.push(result);
      console.log(
        `step ${index}: pods ${podsPercent} %${result.vmsRetired ? ' (VMs retired)' : ''}: ${result.calls} calls, ` +
          `pods took ${(result.podsShareMeasured * 100).toFixed(2)} %, max error ${result.shareErrorPp} pp, ` +
          `${result.failed} failed` +
          (result.configAppliedMs !== undefined
            ? `; document applied ${result.configAppliedMs} ms after the write`
            : '') +
          (result.firstPodCallMs !== undefined
            ? `, first pod call ${result.firstPodCallMs} ms`
            : '') +
          `; channel follows ${result.document}`,
      );
    };

    /**
     * Halfway, a bad document: the channel refuses it (the observer's `rejected` event names the
     * field) and keeps following the last good one, under the same load.
     */
    const writeBadDocument = async (podsPercent: number, goodRevision: string) => {
      const writtenAt = performance.now();
      const revision = await writeDocument(kube, badPolicy(podsPercent), false);
      const rejected = await waitFor(
        () => rejectedConfigs.find((e) => e.source.endsWith(`(resourceVersion ${revision})`)),
        { timeoutMs: 10_000, message: `the channel refusing resourceVersion ${revision}` },
      );
      const kept = following();
      if (!kept.endsWith(`(resourceVersion ${goodRevision})`)) {
        throw new Error(`after a bad document the channel follows ${kept}`);
      }
      const result = {
        rejectedMs: Math.round(rejected.at - writtenAt),
        error: rejected.error,
        kept,
      };
      console.log(
        `bad document (resourceVersion ${revision}) refused after ${result.rejectedMs} ms: ${result.error}; ` +
          `the channel keeps ${kept}`,
      );
      return result;
    };
    let badDocument: Awaited<ReturnType<typeof writeBadDocument>> | undefined;

    running.state.step = 0;
    await measure(0, 0, {});
    for (const [i, podsPercent] of PODS_PERCENT.entries()) {
      if (i === 0) continue;
      running.state.step = i;
      const writtenAt = performance.now();
      const revision = await writePolicy(kube, podsPercent, false);
      const appliedAt = await applied(podsPercent, revision);
      await measure(
        i,
        podsPercent,
        { configAppliedMs: Math.round(appliedAt - writtenAt) },
        writtenAt,
      );
      if (podsPercent === 50) badDocument = await writeBadDocument(podsPercent, revision);
    }

    // Retire the VMs: deregister them (Consul), wait until the channel has dropped them, stop them.
    const retire = PODS_PERCENT.length;
    running.state.step = retire;
    const vmStats = await Promise.all(vms.map((b) => b.stats()));
    const deregisteredAt = performance.now();
    for (const r of registrations.splice(0)) await r.deregister();
    const vmAddresses = new Set(vms.map((b) => b.address));
    await waitFor(() => !observer.endpoints().some((e) => vmAddresses.has(e.address)), {
      timeoutMs: 10_000,
      message: 'the VMs out of the channel',
    });
    const vmsOutMs = Math.round(performance.now() - deregisteredAt);
    await Promise.all(vms.map((b) => b.stopGracefully()));
    console.log(`consul: VMs deregistered, out of the channel after ${vmsOutMs} ms, stopped`);
    await measure(retire, 100, { vmsRetired: true, vmsOutMs });

    await running.stop();
    const podStats = await Promise.all(podBackends.map((b) => b.stats()));
    // A client connection per backend for the whole run: any further peer is a reconnect.
    const connections: Record<string, number> = {};
    let reconnects = 0;
    for (const [i, stats] of [...vmStats, ...podStats].entries()) {
      const backend = [...vms, ...podBackends][i]!;
      connections[backend.name] = stats.peers.length;
      reconnects += Math.max(0, stats.peers.length - 1);
    }
    running.errors.print('ERROR ');
    const failedCalls = running.errors.total;
    const appliedMs = steps.flatMap((s) =>
      s.configAppliedMs === undefined ? [] : [s.configAppliedMs],
    );
    const summary = {
      example: 'vm-to-k8s-migration',
      target,
      document: `ConfigMap ${NAMESPACE}/${CONFIG_MAP} ${CONFIG_KEY}`,
      steps,
      maxShareErrorPp: Math.max(...steps.map((s) => s.shareErrorPp)),
      failedCalls,
      configAppliedMsP99: percentile(appliedMs, 99),
      reconnects,
      connections,
      badDocument,
    };
    console.log(JSON.stringify(summary));
    return failedCalls === 0 && reconnects === 0 && summary.maxShareErrorPp <= 0.5 ? 0 : 1;
  } finally {
    await load?.stop();
    client?.close();
    for (const r of registrations) await r.deregister().catch(() => undefined);
    await Promise.all([vmSet?.stopAll(), podSet?.stopAll()]);
    await pods.remove();
    await Promise.all([kube.dispose(), consul.dispose()]);
  }
}

run(main);
