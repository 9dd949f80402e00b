import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '@grpc-lb/core';
import { createK8sApi } from './k8s-client';
import { kubeconfigError } from './kubeconfig-error';

const SECRET = 'kc-S3CRET-7f3a9';
const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-kubeconfig-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const valid = (server: string, token: string) => `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ${server}
users:
- name: u
  user:
    token: ${token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`;

describe('a kubeconfig that cannot be loaded is named without its content', () => {
  const cases: [string, string, RegExp][] = [
    [
      'bad-indent.yaml',
      valid('https://127.0.0.1:6443', `${SECRET}\n      bad: [indent`),
      /invalid kubeconfig: .*bad-indent\.yaml is not valid YAML at line 11, column \d+: bad indentation/,
    ],
    [
      'unclosed.yaml',
      valid('https://127.0.0.1:6443', `"${SECRET}`),
      /invalid kubeconfig: .*unclosed\.yaml is not valid YAML at line \d+/,
    ],
    [
      'tab.yaml',
      `users:\n- name: u\n  user:\n\ttoken: ${SECRET}\n`,
      /invalid kubeconfig: .*tab\.yaml is not valid YAML at line 4/,
    ],
    [
      'no-name.yaml',
      `clusters:\n- cluster: {server: "https://127.0.0.1"}\nusers:\n- name: u\n  user: {token: ${SECRET}}\n`,
      /invalid kubeconfig: .*no-name\.yaml is not a usable kubeconfig: clusters\[0\]\.name is missing/,
    ],
  ];
  for (const [name, text, message] of cases) {
    test(name, async () => {
      const path = file(name, text);
      await assert.rejects(createK8sApi({ kubeconfig: path }), (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(error.message, message);
        assert.ok(!error.message.includes(SECRET), error.message);
        assert.ok(!error.message.includes('token'), error.message);
        return true;
      });
    });
  }

  test('an unknown error from client-node is not quoted at all', () => {
    const error = kubeconfigError(new Error(`token: ${SECRET}`), '/k');
    assert.equal(
      error.message,
      'k8s resolver: invalid kubeconfig: /k is not a usable kubeconfig (its content is not shown, since it may hold credentials)',
    );
  });

  test('a server URL with userinfo is redacted where messages quote it', async () => {
    const path = file('userinfo.yaml', valid(`https://admin:${SECRET}@127.0.0.1:6443`, SECRET));
    const api = await createK8sApi({ kubeconfig: path });
    assert.equal(api.server, 'https://***@127.0.0.1:6443');
  });
});
