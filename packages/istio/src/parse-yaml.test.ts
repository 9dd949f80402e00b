import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IstioYamlError } from './errors';
import { parseIstioYaml } from './parse-yaml';
import { HELLO2_DESTINATION_RULE, HELLO2_VIRTUAL_SERVICE } from './testing/hello2';

describe('parseIstioYaml', () => {
  test('reads a VirtualService and a DestinationRule from one multi-document file', () => {
    const text = `${HELLO2_VIRTUAL_SERVICE}---\n${HELLO2_DESTINATION_RULE}`;
    const resources = parseIstioYaml(text, 'hello2.yaml');
    assert.equal(resources.virtualServices.length, 1);
    assert.equal(resources.destinationRules.length, 1);
    assert.deepEqual(resources.ignored, []);
    const dr = resources.destinationRules[0] as { spec: { host: string } };
    assert.equal(dr.spec.host, 'hello2-svc');
  });

  test('takes networking.istio.io v1, v1beta1 and v1alpha3', () => {
    const text = ['v1', 'v1beta1', 'v1alpha3']
      .map(
        (v) =>
          `apiVersion: networking.istio.io/${v}\nkind: VirtualService\nmetadata: {name: vs-${v}}\nspec: {hosts: [a]}\n`,
      )
      .join('---\n');
    assert.equal(parseIstioYaml(text).virtualServices.length, 3);
  });

  test('names every other resource in ignored, with its file and document', () => {
    const text = [
      'apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: public, namespace: istio-system}\n',
      'apiVersion: v1\nkind: Service\nmetadata: {name: hello2, namespace: prod}\n',
      'apiVersion: example.com/v1\nkind: VirtualService\nmetadata: {name: other}\n',
    ].join('---\n');
    assert.deepEqual(parseIstioYaml(text, 'mesh.yaml').ignored, [
      'Gateway istio-system/public networking.istio.io/v1 (mesh.yaml document 1)',
      'Service prod/hello2 v1 (mesh.yaml document 2)',
      'VirtualService other example.com/v1 (mesh.yaml document 3)',
    ]);
  });

  test('opens a List, as kubectl get -o yaml writes one', () => {
    const text = `apiVersion: v1
kind: List
items:
  - apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: hello2}
    spec: {hosts: [hello2]}
  - apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: hello2}
    spec: {host: hello2}
`;
    const resources = parseIstioYaml(text);
    assert.equal(resources.virtualServices.length, 1);
    assert.equal(resources.destinationRules.length, 1);
  });

  test('reads JSON', () => {
    const json = JSON.stringify({
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'hello2' },
      spec: { host: 'hello2' },
    });
    assert.equal(parseIstioYaml(json, 'dr.json').destinationRules.length, 1);
  });

  test('skips empty documents', () => {
    const text = `---\n---\n${HELLO2_VIRTUAL_SERVICE}---\n`;
    assert.equal(parseIstioYaml(text).virtualServices.length, 1);
  });

  test('bad YAML is an IstioYamlError naming the file, the document and the line', () => {
    const text = `${HELLO2_VIRTUAL_SERVICE}---\nkind: DestinationRule\nspec:\n  host: [unclosed\n`;
    assert.throws(
      () => parseIstioYaml(text, 'broken.yaml'),
      (e: unknown) =>
        e instanceof IstioYamlError &&
        e.code === 'BAD_YAML' &&
        e.file === 'broken.yaml' &&
        e.document === 2 &&
        e.line !== undefined &&
        e.line > 30 &&
        e.message.startsWith(`broken.yaml: document 2, line ${e.line}: `),
    );
  });

  test('a duplicate key is an error naming its line', () => {
    const text = 'kind: VirtualService\nkind: DestinationRule\n';
    assert.throws(
      () => parseIstioYaml(text, 'dup.yaml'),
      (e: unknown) => e instanceof IstioYamlError && e.document === 1 && e.line === 2,
    );
  });

  test('a document that is not a resource is an error naming it', () => {
    assert.throws(
      () => parseIstioYaml('- just\n- a list\n', 'list.yaml'),
      (e: unknown) =>
        e instanceof IstioYamlError &&
        e.document === 1 &&
        e.line === 1 &&
        /expected a Kubernetes resource/.test(e.message),
    );
  });
});
