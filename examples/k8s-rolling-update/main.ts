/**
 * A rolling update seen through the Kubernetes API. A real kube-apiserver (built from Go modules,
 * with its own etcd 3.6) holds Service `hello` in namespace `demo`; six grpc-js backends run on
 * pod-like addresses (10.244.N.2–7: the API refuses loopback addresses), three labelled v1 and
 * three v2. The example first re-runs itself inside a network namespace made for the run (`ip
 * netns`; the API server, the backends and the client all live there, and the addresses go on its
 * own lo, never on the machine's); the namespace is deleted when it ends. The example writes the EndpointSlices itself, as the EndpointSlice controller
 * would during `kubectl rollout`, while a client on `k8s:///hello.demo:grpc` calls under load:
 *
 *   for each of the three steps: a v2 pod becomes ready (slice hello-v2), then a v1 pod turns
 *   terminating (ready false, serving true, in slice hello-v1), drains, stops gracefully and
 *   leaves the slice.
 *
 * It prints how long each slice change took to reach the calls, and ends with one JSON line:
 * every call succeeded and all traffic moved to v2.
 *
 *   npm run example -- k8s-rolling-update [--concurrency 8]
 *
 * Needs root (a network namespace) and Go (the API server is built once, ~12 minutes cold).
 */
import * as grpc from '@grpc/grpc-js';
import { LoadBalancerObserver, OBSERVER_OPTION } from '@grpc-lb/core';
import { registerK8s } from '@grpc-lb/resolver-k8s';
import {
  type Backend,
  loadGreeterService,
  sayHello,
  startBackends,
  waitFor,
} from '@grpc-lb/test/harness';
import { startKubeApiserver, type KubeApiserver } from '@grpc-lb/test/support/kube-apiserver';
import { reexecInTestNetns } from '@grpc-lb/test/support/netns';
import { createPodAddresses } from '@grpc-lb/test/support/pod-addresses';
import { intFlag, run, Tally } from '../shared/cli';

const NAMESPACE = 'demo';
type Condition = 'ready' | 'terminating';

async function must(k: KubeApiserver, method: string, path: string, body?: unknown) {
  const result = await k.request(method, path, body);
  if (result.status >= 300) throw new Error(`${method} ${path}: ${result.status} ${result.body}`);
  return result;
}

/** Writes EndpointSlice `name` of Service hello with these pods (POST, else PUT). */
async function writeSlice(
  k: KubeApiserver,
  name: string,
  port: number,
  pods: [Backend, Condition][],
): Promise<void> {
  const base = `/apis/discovery.k8s.io/v1/namespaces/${NAMESPACE}/endpointslices`;
  const body = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, labels: { 'kubernetes.io/service-name': 'hello' } } as Record<
      string,
      unknown
    >,
    addressType: 'IPv4',
    endpoints: pods.map(([pod, condition]) => ({
      addresses: [pod.host],
      conditions: {
        ready: condition === 'ready',
        serving: true,
        terminating: condition === 'terminating',
      },
      targetRef: { kind: 'Pod', name: pod.name },
    })),
    ports: [{ name: 'grpc', port, protocol: 'TCP' }],
  };
  const existing = await k.request('GET', `${base}/${name}`);
  if (existing.status === 404) {
    await must(k, 'POST', base, body);
    return;
  }
  const version = (existing.json as { metadata: { resourceVersion: string } }).metadata
    .resourceVersion;
  body.metadata['resourceVersion'] = version;
  await must(k, 'PUT', `${base}/${name}`, body);
}

async function main(): Promise<number> {
  // From here on this process is the copy inside the namespace (the first one waits and exits).
  await reexecInTestNetns();
  const concurrency = intFlag('concurrency', 8);
  const kube = await startKubeApiserver();
  const pods = await createPodAddresses(6);
  const backends = await startBackends({
    count: 6,
    network: pods.network,
    names: ['hello-v1-a', 'hello-v1-b', 'hello-v1-c', 'hello-v2-a', 'hello-v2-b', 'hello-v2-c'],
    labels: [1, 1, 1, 2, 2, 2].map((v) => ({ version: `v${v}` })),
  });
  const observer = new LoadBalancerObserver();
  let client: InstanceType<ReturnType<typeof loadGreeterService>> | undefined;
  try {
    const v1 = backends.backends.slice(0, 3);
    const v2 = backends.backends.slice(3);
    await must(kube, 'POST', '/api/v1/namespaces', { metadata: { name: NAMESPACE } });
    await must(kube, 'POST', `/api/v1/namespaces/${NAMESPACE}/services`, {
      metadata: { name: 'hello' },
      spec: { ports: [{ name: 'grpc', port: 80, targetPort: backends.port }] },
    });
    await writeSlice(
      kube,
      'hello-v1',
      backends.port,
      v1.map((pod) => [pod, 'ready']),
    );
    console.log(
      `kube-apiserver ${kube.version} at ${kube.url}; pods on ${pods.network}.2-7 in network namespace ${pods.netns}`,
    );

    registerK8s({ grpc, kubeconfig: kube.adminKubeconfig });
    const Greeter = loadGreeterService();
    client = new Greeter(`k8s:///hello.${NAMESPACE}:grpc`, grpc.credentials.createInsecure(), {
      [OBSERVER_OPTION]: observer,
    });
    const greeter = client;

    // Load: back-to-back calls, recording when each pod last and first answered.
    const first = new Map<string, number>();
    const last = new Map<string, number>();
    const perVersion = new Tally();
    const afterRollout = new Map<string, number>();
    let rolledOut = false;
    const errors = new Tally();
    let calls = 0;
    let running = true;
    const caller = async (): Promise<void> => {
      while (running) {
        try {
          const reply = await sayHello(greeter, 'k8s', { deadlineMs: 5_000 });
          const now = performance.now();
          calls++;
          if (!first.has(reply.backend)) first.set(reply.backend, now);
          last.set(reply.backend, now);
          const version = reply.labels['version'] ?? '?';
          perVersion.add(version);
          if (rolledOut) afterRollout.set(version, (afterRollout.get(version) ?? 0) + 1);
        } catch (error) {
          errors.add(error instanceof Error ? error.message : String(error));
        }
      }
    };
    const load = Array.from({ length: concurrency }, caller);
    await waitFor(() => v1.every((pod) => first.has(pod.name)), {
      timeoutMs: 15_000,
      message: 'calls to all three v1 pods',
    });

    const steps: { readyToFirstCallMs: number; terminatingToLastCallMs: number }[] = [];
    let v2Ready: Backend[] = [];
    let v1Left = [...v1];
    for (let i = 0; i < 3; i++) {
      const incoming = v2[i]!;
      const outgoing = v1[i]!;
      v2Ready = [...v2Ready, incoming];
      const readyAt = performance.now();
      await writeSlice(
        kube,
        'hello-v2',
        backends.port,
        v2Ready.map((pod) => [pod, 'ready']),
      );
      await waitFor(() => first.has(incoming.name), {
        timeoutMs: 10_000,
        message: `first call to ${incoming.name}`,
      });
      const readyToFirstCallMs = Math.round(first.get(incoming.name)! - readyAt);

      const terminatingAt = performance.now();
      await writeSlice(
        kube,
        'hello-v1',
        backends.port,
        v1Left.map((pod) => [pod, pod === outgoing ? 'terminating' : 'ready']),
      );
      await waitFor(() => !observer.endpoints().some((e) => e.address === outgoing.address), {
        timeoutMs: 10_000,
        message: `${outgoing.name} out of the channel`,
      });
      // Calls already picked finish on it; then it drains and stops, and leaves the slice.
      await outgoing.stopGracefully();
      const terminatingToLastCallMs = Math.round((last.get(outgoing.name) ?? 0) - terminatingAt);
      v1Left = v1Left.filter((pod) => pod !== outgoing);
      await writeSlice(
        kube,
        'hello-v1',
        backends.port,
        v1Left.map((pod) => [pod, 'ready']),
      );
      steps.push({ readyToFirstCallMs, terminatingToLastCallMs });
      console.log(
        `step ${i + 1}: ${incoming.name} ready → first call ${readyToFirstCallMs} ms; ` +
          `${outgoing.name} terminating → last call ${terminatingToLastCallMs} ms, stopped`,
      );
    }
    // After the rollout: only v2.
    rolledOut = true;
    const before = calls;
    await waitFor(() => calls >= before + 600, {
      timeoutMs: 20_000,
      message: 'calls after the rollout',
    });
    running = false;
    await Promise.all(load);

    console.log('calls by version:');
    perVersion.print();
    if (errors.total > 0) {
      console.log('errors:');
      errors.print();
    }
    const summary = {
      example: 'k8s-rolling-update',
      calls,
      errors: errors.total,
      steps,
      readyToFirstCallMsMax: Math.max(...steps.map((s) => s.readyToFirstCallMs)),
      afterRollout: Object.fromEntries(afterRollout),
      servingAfterRollout: observer
        .endpoints()
        .map((e) => backends.backends.find((b) => b.address === e.address)?.name ?? e.address)
        .sort(),
    };
    console.log(JSON.stringify(summary));
    return errors.total === 0 ? 0 : 1;
  } finally {
    client?.close();
    await backends.stopAll();
    await pods.remove();
    await kube.dispose();
  }
}

run(main);
