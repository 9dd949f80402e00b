/**
 * Minimal Istio CustomResourceDefinitions (VirtualService, DestinationRule) for the tests' API
 * server: `networking.istio.io` v1 (stored), v1beta1 and v1alpha3 served, open schemas — enough to store and watch
 * the resources as Istio's own CRDs would.
 */
import assert from 'node:assert/strict';
import { waitFor } from '../harness';
import type { KubeApiserver } from './kube-apiserver';

/** A minimal CustomResourceDefinition for an Istio kind: v1 (stored), v1beta1, v1alpha3; open schema. */
function crd(kind: string, plural: string): unknown {
  const schema = {
    openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.networking.istio.io` },
    spec: {
      group: 'networking.istio.io',
      scope: 'Namespaced',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        { name: 'v1', served: true, storage: true, schema },
        { name: 'v1beta1', served: true, storage: false, schema },
        { name: 'v1alpha3', served: true, storage: false, schema },
      ],
    },
  };
}

/** Installs the two CRDs (a second call changes nothing) and waits until the API server serves them. */
export async function installIstioCrds(k: KubeApiserver): Promise<void> {
  for (const [kind, plural] of [
    ['VirtualService', 'virtualservices'],
    ['DestinationRule', 'destinationrules'],
  ] as const) {
    const created = await k.request(
      'POST',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      crd(kind, plural),
    );
    assert.ok(created.status === 201 || created.status === 409, created.body);
    for (const version of ['v1', 'v1beta1', 'v1alpha3']) {
      await waitFor(
        async () =>
          (await k.request('GET', `/apis/networking.istio.io/${version}/${plural}`)).status === 200,
        { timeoutMs: 20_000, message: `${plural}.networking.istio.io/${version} is served` },
      );
    }
  }
}
