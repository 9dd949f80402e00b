/**
 * `grpc-lb endpoints` on `k8s:` targets, the built bin run as a child process against a real
 * kube-apiserver (RBAC on), inside a network namespace of its own (enter-netns, first import).
 * The API server runs no controller: the test writes the Service, EndpointSlice and ConfigMap.
 * Nothing connects to the addresses listed, so no backend runs.
 */
import './support/enter-netns';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { requireKubeApiserver, startKubeApiserver } from './support/kube-apiserver';
import { serverFixture } from './support/server-fixture';
import { runGrpcLb, type CliRun } from './support/grpc-lb-cli';

const kube = serverFixture('kube-apiserver', () => startKubeApiserver(), requireKubeApiserver);

const grpcLb = (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> =>
  runGrpcLb(args, { env });

describe('grpc-lb endpoints: Kubernetes (real kube-apiserver)', () => {
  test('an EndpointSlice and the ConfigMap of ?config=, through KUBECONFIG; a user without RBAC gets the permission named, exit 1', async (t) => {
    const k = await kube.get(t);
    if (!k) return;
    await kube.logged(async () => {
      const namespace = `cli-endpoints-${process.pid}`;
      const created = await k.request('POST', '/api/v1/namespaces', {
        metadata: { name: namespace },
      });
      assert.equal(created.status, 201, created.body);
      const service = await k.request('POST', `/api/v1/namespaces/${namespace}/services`, {
        metadata: { name: 'hello' },
        spec: { ports: [{ name: 'grpc', port: 80, targetPort: 50051, protocol: 'TCP' }] },
      });
      assert.equal(service.status, 201, service.body);
      const slice = await k.request(
        'POST',
        `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
        {
          metadata: {
            name: 'hello-v1',
            labels: { 'kubernetes.io/service-name': 'hello', version: 'v1' },
          },
          addressType: 'IPv4',
          endpoints: ['10.244.1.5', '10.244.1.6'].map((address) => ({
            addresses: [address],
            conditions: { ready: true, serving: true, terminating: false },
            zone: 'eu-1a',
          })),
          ports: [{ name: 'grpc', port: 50051, protocol: 'TCP' }],
        },
      );
      assert.equal(slice.status, 201, slice.body);
      const configMap = await k.request('POST', `/api/v1/namespaces/${namespace}/configmaps`, {
        metadata: { name: 'hello-lb' },
        data: { 'service-config.json': '{"loadBalancingConfig":[{"round_robin":{}}]}' },
      });
      assert.equal(configMap.status, 201, configMap.body);

      const target = `k8s:///hello.${namespace}:grpc?config=hello-lb`;
      const run = await grpcLb(['endpoints', '--json', target], { KUBECONFIG: k.adminKubeconfig });
      assert.equal(run.code, 0, run.stderr);
      const out = JSON.parse(run.stdout) as {
        endpoints: { address: string; weight: number; zone: string; labels: object }[];
        serviceConfigSource: string;
        note: string;
      };
      assert.deepEqual(
        out.endpoints.map((e) => [e.address, e.weight, e.zone]),
        [
          ['10.244.1.5:50051', 1, 'eu-1a'],
          ['10.244.1.6:50051', 1, 'eu-1a'],
        ],
      );
      for (const e of out.endpoints) {
        assert.equal((e.labels as Record<string, string>)['version'], 'v1');
      }
      assert.match(
        out.serviceConfigSource,
        new RegExp(
          `^ConfigMap ${namespace}/hello-lb service-config\\.json \\(resourceVersion \\d+\\)$`,
        ),
      );

      const nobody = await k.createUser('cli-nobody');
      const denied = await grpcLb([
        'endpoints',
        target,
        '--kubeconfig',
        nobody.kubeconfig,
        '--timeout',
        '2',
      ]);
      assert.equal(denied.code, 1, denied.stderr);
      assert.equal(denied.stdout, '');
      const lines = denied.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, denied.stderr);
      assert.match(lines[0]!, new RegExp(`^error: cannot resolve k8s:///hello\\.${namespace}`));
      assert.match(lines[0]!, /cli-nobody/);
      assert.match(lines[0]!, /endpointslices/i);
    });
  });
});
