/**
 * No secret is ever echoed. A distinct secret is planted in every place a user can put one — the
 * userinfo and a token parameter of each scheme's target, a kubeconfig's token (in a malformed
 * file and in a valid one the API server refuses), CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN, the etcd
 * password — and every error thrown, every failed call's details, every logger warning, every
 * grpc_lb trace line and every header a grpc-js server received is searched for all of them.
 *
 * Only local servers: a grpc-js server on 127.0.0.3 (records `:authority` and metadata) and a
 * plain HTTP server answering as an API server / Consul agent that refuses the credentials.
 */
// The grpc_lb tracer is read from the environment when grpc-js loads: set it before any import.
process.env['GRPC_TRACE'] = 'grpc_lb';
process.env['GRPC_VERBOSITY'] = 'DEBUG';
delete process.env['CONSUL_HTTP_ADDR'];
delete process.env['CONSUL_HTTP_TOKEN'];

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { register, validateTarget } from '@grpc-lb/core';
import { createConsulResolverFactory } from '@grpc-lb/resolver-consul';
import { createDnsResolverFactory } from '@grpc-lb/resolver-dns';
import { createEtcdResolverFactory } from '@grpc-lb/resolver-etcd';
import { createK8sResolverFactory } from '@grpc-lb/resolver-k8s';
import { isServiceError, loadGreeterService, sayHello } from './harness';

/** Every secret planted, by where it was planted. */
const secrets = new Map<string, string>();
let counter = 0;
function plant(place: string): string {
  const secret = `Sx${(++counter).toString().padStart(2, '0')}${Math.random().toString(36).slice(2, 10)}Q`;
  secrets.set(secret, place);
  return secret;
}

/** Everything grpc-lb said: [where, text]. */
const said: [string, string][] = [];
const warnings: string[] = [];
const traceLines: string[] = [];
const seenByServer: string[] = [];

function assertNoSecret(where: string, text: string): void {
  said.push([where, text]);
  for (const [secret, place] of secrets) {
    assert.ok(!text.includes(secret), `${where} shows the secret planted in ${place}: ${text}`);
  }
}

// Every severity falls back to `error` when the logger has no method of its own.
grpc.setLogger({
  error: (...args: unknown[]) => traceLines.push(args.map(String).join(' ')),
});
grpc.setLogVerbosity(grpc.logVerbosity.DEBUG);

const Greeter = loadGreeterService();
const insecure = grpc.credentials.createInsecure();
const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-secrets-'));

const kubeconfig = (server: string, token: string, tail = '') => `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ${server}
    insecure-skip-tls-verify: true
users:
- name: u
  user:
    token: ${token}${tail}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`;

let backend: grpc.Server;
let backendPort = 0;
let http: HttpServer;
let httpPort = 0;
let closedPort = 0;

function listen(server: HttpServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The error `new Greeter(target)` throws (the target must be refused). */
function constructionError(target: string, options: grpc.ClientOptions = {}): Error {
  try {
    new Greeter(target, insecure, options).close();
  } catch (error) {
    assert.ok(error instanceof Error, String(error));
    return error;
  }
  assert.fail(`${target} was accepted`);
}

/** The details of a call that must fail. */
async function failedCallDetails(target: string, deadlineMs = 3000): Promise<string> {
  const client = new Greeter(target, insecure);
  try {
    await sayHello(client, 'secrets', { deadlineMs });
  } catch (error) {
    if (!isServiceError(error)) throw error;
    return error.details;
  } finally {
    client.close();
  }
  assert.fail(`a call through ${target} succeeded`);
}

describe('no secret is ever echoed', () => {
  before(async () => {
    backend = new grpc.Server();
    const service = (Greeter as unknown as { service: grpc.ServiceDefinition }).service;
    backend.addService(service, {
      SayHello(
        call: grpc.ServerUnaryCall<{ name: string }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) {
        seenByServer.push(call.getHost());
        for (const [key, values] of Object.entries(call.metadata.getMap())) {
          seenByServer.push(`${key}: ${String(values)}`);
        }
        callback(null, { message: 'hi', backend: 'secrets', address: '', labels: {} });
      },
    });
    backendPort = await new Promise<number>((resolve, reject) =>
      backend.bindAsync('127.0.0.3:0', grpc.ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    // An API server and a Consul agent that refuse whatever credentials they get.
    http = createServer((request, response) => {
      seenByServer.push(`${request.method ?? ''} ${request.url ?? ''}`);
      request.resume();
      if ((request.url ?? '').startsWith('/v1/')) {
        response.writeHead(403, { 'content-type': 'text/plain' }).end('ACL not found');
      } else {
        response.writeHead(401, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            kind: 'Status',
            apiVersion: 'v1',
            status: 'Failure',
            message: 'Unauthorized',
            reason: 'Unauthorized',
            code: 401,
          }),
        );
      }
    });
    httpPort = await listen(http);
    closedPort = await freePort();

    const malformed = join(dir, 'malformed.yaml');
    writeFileSync(
      malformed,
      kubeconfig(
        `http://127.0.0.1:${httpPort}`,
        plant('a malformed kubeconfig'),
        '\n      bad: [indent',
      ),
    );
    const refused = join(dir, 'refused.yaml');
    writeFileSync(
      refused,
      kubeconfig(
        `http://127.0.0.1:${httpPort}`,
        plant('a valid kubeconfig the API server refuses'),
      ),
    );
    process.env['CONSUL_HTTP_TOKEN'] = plant('CONSUL_HTTP_TOKEN');

    register({
      grpc,
      logger: { warn: (message) => warnings.push(message) },
      replaceBuiltinSchemes: ['dns'],
      resolvers: [
        createDnsResolverFactory(),
        createDnsResolverFactory({ scheme: 'dns' }),
        createEtcdResolverFactory({
          endpoints: `127.0.0.1:${closedPort}`,
          auth: { username: 'app', password: plant('the etcd password option') },
          timeoutMs: 500,
        }),
        createK8sResolverFactory({ scheme: 'k8s', kubeconfig: malformed }),
        createK8sResolverFactory({ scheme: 'kubernetes', kubeconfig: malformed }),
        createK8sResolverFactory({ scheme: 'k8s-refused', kubeconfig: refused }),
        createConsulResolverFactory(),
        createConsulResolverFactory({
          scheme: 'consul-acl',
          address: `http://127.0.0.1:${httpPort}`,
        }),
      ],
    });
  });

  after(async () => {
    backend.forceShutdown();
    await new Promise((resolve) => http.close(resolve));
    http.closeAllConnections();
    rmSync(dir, { recursive: true, force: true });
    delete process.env['CONSUL_HTTP_TOKEN'];
  });

  test('targets with userinfo or a token parameter are refused, in every scheme, without the secret', () => {
    const at = `127.0.0.3:${backendPort}`;
    const targets: string[] = [
      `static://u:${plant('static: userinfo')}@hello.test/${at}`,
      `static://${plant('static: bare userinfo')}@hello.test/${at}`,
      `static:///${at};token=${plant('static: token label')}`,
      `static:///${at};version=v1;api_key=${plant('static: api_key label')}`,
      `manual:///u:${plant('manual: userinfo')}@x`,
      `manual:///x?token=${plant('manual: token')}`,
      `dns+lb://u:${plant('dns+lb: userinfo')}@127.0.0.1/api.test:1`,
      `dns+lb:///api.test:1?token=${plant('dns+lb: token')}`,
      `dns://u:${plant('dns: userinfo')}@127.0.0.1/api.test:1`,
      `dns:///api.test:1?password=${plant('dns: password')}`,
      `etcd://root:${plant('etcd: userinfo')}@127.0.0.1:2379/services/hello`,
      `etcd:///services/hello?token=${plant('etcd: token')}`,
      `k8s://u:${plant('k8s: userinfo')}@prod/hello:grpc`,
      `k8s:///hello.prod:grpc?token=${plant('k8s: token')}`,
      `kubernetes://u:${plant('kubernetes: userinfo')}@hello.prod:8080/`,
      `kubernetes:///hello.prod:8080?token=${plant('kubernetes: token')}`,
      `consul://u:${plant('consul: userinfo')}@127.0.0.1:8500/hello`,
      `consul:///hello?tag=v1&token=${plant('consul: token')}`,
      `unknown://u:${plant('an unknown scheme: userinfo')}@h/x?token=${plant('an unknown scheme: token')}`,
    ];
    for (const target of targets) {
      const error = constructionError(target);
      assertNoSecret(`new Client(${target}) threw`, `${error.message}\n${String(error.stack)}`);
      const target2 = (error as { target?: unknown }).target;
      if (typeof target2 === 'string') assertNoSecret(`the error's target (${target})`, target2);
      try {
        validateTarget(target);
      } catch (validation) {
        assertNoSecret(`validateTarget(${target})`, String((validation as Error).message));
      }
    }
  });

  test('the static: authority is the :authority header, and userinfo never reaches the server', async () => {
    const client = new Greeter(`static://hello.test/127.0.0.3:${backendPort}`, insecure);
    try {
      await sayHello(client, 'secrets', { deadlineMs: 5000 });
    } finally {
      client.close();
    }
    assert.ok(seenByServer.includes('hello.test'), `the server saw ${seenByServer.join(', ')}`);
  });

  test('CONSUL_HTTP_ADDR with user:pass@ is a ConfigError without them', () => {
    process.env['CONSUL_HTTP_ADDR'] = `alice:${plant('CONSUL_HTTP_ADDR')}@127.0.0.1:8500`;
    try {
      const error = constructionError('consul:///hello');
      assert.match(error.message, /CONSUL_HTTP_ADDR/);
      assertNoSecret('new Client(consul:///hello) with CONSUL_HTTP_ADDR', error.message);
    } finally {
      delete process.env['CONSUL_HTTP_ADDR'];
    }
  });

  test('failed calls name the failure, never the secret that caused it', async (t) => {
    const failing: [string, RegExp][] = [
      [
        'k8s:///hello.prod:grpc',
        /invalid kubeconfig: .*malformed\.yaml is not valid YAML at line \d+/,
      ],
      ['kubernetes://hello.prod:8080/', /invalid kubeconfig: .*malformed\.yaml is not valid YAML/],
      ['k8s-refused:///hello.prod:grpc', /401|Unauthorized|credentials/],
      ['consul-acl:///hello', /403|ACL/],
      ['etcd:///services/hello', /./],
    ];
    const results = await Promise.all(failing.map(([target]) => failedCallDetails(target)));
    results.forEach((details, i) => {
      const [target, expected] = failing[i]!;
      assertNoSecret(`the details of a failed call to ${target}`, details);
      t.diagnostic(`${target}: ${details}`);
      if (!/waiting for name resolution|Deadline/i.test(details)) assert.match(details, expected);
    });
  });

  test('no warning, trace line or header received by a server shows any secret', (t) => {
    t.diagnostic(
      `${secrets.size} secrets planted; searched ${said.length} errors and call details, ${warnings.length} warnings, ${traceLines.length} trace lines, ${seenByServer.length} received headers`,
    );
    assert.ok(secrets.size >= 25, `${secrets.size} secrets planted`);
    assert.ok(
      traceLines.some((line) => line.includes('grpc_lb')),
      'the grpc_lb tracer is on',
    );
    for (const warning of warnings) assertNoSecret('a logger warning', warning);
    for (const line of traceLines) assertNoSecret('a GRPC_TRACE line', line);
    for (const header of seenByServer) assertNoSecret('a header received by a server', header);
  });
});
