/**
 * A real Kubernetes API server for tests, run the way controller-runtime's envtest runs it:
 * kube-apiserver built from Go modules (test/testbin/kube-apiserver) on 127.0.0.1 at a free port,
 * backed by its own etcd 3.6 (test/testbin/etcd), with generated certificates (a CA, a serving
 * certificate for IP:127.0.0.1, an admin client certificate in `system:masters`), an RSA
 * service-account signing key, and RBAC authorization on — so a user without a grant gets 403.
 * No controllers run: tests write Services, EndpointSlices and Endpoints themselves.
 *
 *   const kube = await startKubeApiserver();
 *   const kc = new KubeConfig(); kc.loadFromFile(kube.adminKubeconfig);
 *   const reader = await kube.createUser('reader');                 // no permissions yet
 *   const token = await kube.serviceAccountToken('default', 'app'); // a bound SA token
 *   await kube.dispose();
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createCa, rsaKeyPair, type Ca, type CertPair } from './certs';
import { startEtcd, type Etcd } from './etcd';
import {
  freePort,
  httpRequest,
  makeServerDir,
  removeServerDir,
  ManagedServer,
  ServerProcess,
  type RunningServer,
  type HttpResult,
} from './server-process';
import { ensureTestbin, requireTestbin } from './testbin';

export interface KubeApiserverOptions {
  /** Keep running after this process exits (for `npm run testbin -- start kube-apiserver`). */
  readonly detached?: boolean;
  /** Extra kube-apiserver flags (`--flag=value`). */
  readonly extraArgs?: readonly string[];
}

/** Who a request is made as: a client certificate, or a bearer token. */
export type KubeCredentials = CertPair | { readonly token: string };

export interface KubeUser extends CertPair {
  readonly name: string;
  readonly groups: readonly string[];
  /** A kubeconfig file for this user (client certificate), for `KubeConfig.loadFromFile`. */
  readonly kubeconfig: string;
}

export interface KubeApiResult extends HttpResult {
  /** The body parsed as JSON (undefined when it is not). */
  readonly json: unknown;
}

/**
 * `stop()` is an API server outage: etcd keeps running, so `start()` brings it back on the same
 * port with the same certificates and data. `dispose()` also stops its etcd.
 */
export interface KubeApiserver extends RunningServer {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** What the binary reports, e.g. `1.36.3`. */
  readonly version: string;
  /** The CA that signed the serving certificate and every client certificate. */
  readonly caFile: string;
  /** The etcd 3.6 behind it (its own, stopped with it). */
  readonly etcd: Etcd;
  /** `admin`, in `system:masters` (RBAC lets it do anything). */
  readonly admin: KubeUser;
  readonly adminKubeconfig: string;
  /** A user with a client certificate (CN=name, O=groups): only what RBAC grants it. */
  createUser(name: string, groups?: readonly string[]): Promise<KubeUser>;
  /**
   * A token for ServiceAccount `namespace/name` (created if missing) from the TokenRequest API —
   * what a pod's projected token is.
   */
  serviceAccountToken(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** A kubeconfig file that authenticates with `token`. */
  tokenKubeconfig(name: string, token: string): string;
  /** One REST call (as admin unless `as` says otherwise); `body` is sent as JSON. */
  request(
    method: string,
    path: string,
    body?: unknown,
    as?: KubeCredentials,
  ): Promise<KubeApiResult>;
}

function kubeconfig(
  server: string,
  caFile: string,
  user: string,
  credentials: Record<string, string>,
): string {
  // JSON is YAML: no YAML writer needed.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'grpc-lb-test', cluster: { server, 'certificate-authority': caFile } }],
      users: [{ name: user, user: credentials }],
      contexts: [
        {
          name: 'grpc-lb-test',
          context: { cluster: 'grpc-lb-test', user, namespace: 'default' },
        },
      ],
      'current-context': 'grpc-lb-test',
    },
    null,
    2,
  );
}

class Apiserver extends ManagedServer implements KubeApiserver {
  private readonly caPem: Buffer;

  constructor(
    process: ServerProcess,
    private readonly ca: Ca,
    dir: string,
    readonly port: number,
    readonly version: string,
    readonly etcd: Etcd,
    readonly admin: KubeUser,
  ) {
    super(process, dir);
    this.caPem = readFileSync(ca.certFile);
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }
  get caFile(): string {
    return this.ca.certFile;
  }
  get adminKubeconfig(): string {
    return this.admin.kubeconfig;
  }
  async start(): Promise<void> {
    if (this.process.running) return;
    this.process.start();
    // Cold, the server installs its bootstrap RBAC roles and priority levels first.
    await this.process.waitReady(() => this.ready(), 120_000, 200);
  }

  private async ready(): Promise<boolean> {
    const result = await this.request('GET', '/readyz', undefined, undefined, 2_000);
    return result.status === 200;
  }

  async request(
    method: string,
    path: string,
    body?: unknown,
    as: KubeCredentials = this.admin,
    timeoutMs = 15_000,
  ): Promise<KubeApiResult> {
    const auth =
      'token' in as
        ? { headers: { authorization: `Bearer ${as.token}` } as Record<string, string> }
        : { cert: readFileSync(as.certFile), key: readFileSync(as.keyFile), headers: {} };
    const headers: Record<string, string> = { accept: 'application/json', ...auth.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const result = await httpRequest(`${this.url}${path}`, {
      method,
      ca: this.caPem,
      ...('cert' in auth ? { cert: auth.cert, key: auth.key } : {}),
      headers,
      timeoutMs,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    let json: unknown;
    try {
      json = JSON.parse(result.body);
    } catch {
      json = undefined;
    }
    return { ...result, json };
  }

  async createUser(name: string, groups: readonly string[] = []): Promise<KubeUser> {
    const file = `user-${name.replace(/[^a-zA-Z0-9_.-]/g, '_')}`;
    const pair = await this.ca.issue(file, {
      cn: name,
      organizations: groups,
      usage: 'clientAuth',
    });
    const path = join(this.dir, `${file}.kubeconfig`);
    writeFileSync(
      path,
      kubeconfig(this.url, this.ca.certFile, name, {
        'client-certificate': pair.certFile,
        'client-key': pair.keyFile,
      }),
    );
    return { ...pair, name, groups, kubeconfig: path };
  }

  async serviceAccountToken(
    namespace: string,
    name: string,
    expirationSeconds = 3600,
  ): Promise<string> {
    const accounts = `/api/v1/namespaces/${namespace}/serviceaccounts`;
    const created = await this.request('POST', accounts, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name },
    });
    if (created.status !== 201 && created.status !== 409) {
      throw new Error(
        `creating ServiceAccount ${namespace}/${name}: ${created.status} ${created.body}`,
      );
    }
    const token = await this.request('POST', `${accounts}/${name}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds },
    });
    const value = (token.json as { status?: { token?: string } } | undefined)?.status?.token;
    if (token.status !== 201 || typeof value !== 'string') {
      throw new Error(`TokenRequest for ${namespace}/${name}: ${token.status} ${token.body}`);
    }
    return value;
  }

  tokenKubeconfig(name: string, token: string): string {
    const path = join(this.dir, `token-${name.replace(/[^a-zA-Z0-9_.-]/g, '_')}.kubeconfig`);
    writeFileSync(path, kubeconfig(this.url, this.ca.certFile, name, { token }), { mode: 0o600 });
    return path;
  }

  override stop(graceMs = 10_000): Promise<void> {
    return super.stop(graceMs);
  }

  protected override async disposeMore(failed: boolean): Promise<void> {
    await this.etcd.dispose(failed);
  }
}

/**
 * Starts etcd 3.6 and kube-apiserver; throws `ServerStartError` (with the server's log) if it is
 * not ready (`/readyz`) within 120 s.
 */
export async function startKubeApiserver(
  options: KubeApiserverOptions = {},
): Promise<KubeApiserver> {
  const build = await ensureTestbin('kube-apiserver');
  const dir = makeServerDir('kube-apiserver');
  let etcd: Etcd | undefined;
  let server: Apiserver | undefined;
  try {
    etcd = await startEtcd({
      version: '3.6',
      ...(options.detached ? { detached: true } : {}),
    });
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const ca = await createCa(dir, 'grpc-lb test kubernetes CA');
    const serving = await ca.issue('apiserver', {
      cn: 'kube-apiserver',
      sans: ['IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes.default.svc'],
      usage: 'serverAuth',
    });
    const adminPair = await ca.issue('admin', {
      cn: 'admin',
      organizations: ['system:masters'],
      usage: 'clientAuth',
    });
    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(
      adminKubeconfig,
      kubeconfig(url, ca.certFile, 'admin', {
        'client-certificate': adminPair.certFile,
        'client-key': adminPair.keyFile,
      }),
    );
    const sa = rsaKeyPair(dir, 'service-account');
    const args = [
      `--etcd-servers=${etcd.url}`,
      '--bind-address=127.0.0.1',
      // Required on a machine without a default route (it cannot pick an address itself).
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--tls-cert-file=${serving.certFile}`,
      `--tls-private-key-file=${serving.keyFile}`,
      `--cert-dir=${join(dir, 'cert-dir')}`,
      `--client-ca-file=${ca.certFile}`,
      `--service-account-issuer=${url}/`,
      `--service-account-key-file=${sa.publicKeyFile}`,
      `--service-account-signing-key-file=${sa.privateKeyFile}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=RBAC',
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
      ...(options.extraArgs ?? []),
    ];
    const child = new ServerProcess({
      name: 'kube-apiserver',
      command: build.binaries['kube-apiserver']!,
      args,
      cwd: dir,
      logFile: join(dir, 'kube-apiserver.log'),
      ...(options.detached ? { detached: true } : {}),
    });
    const admin: KubeUser = {
      ...adminPair,
      name: 'admin',
      groups: ['system:masters'],
      kubeconfig: adminKubeconfig,
    };
    server = new Apiserver(child, ca, dir, port, build.version, etcd, admin);
    await server.start();
    return server;
  } catch (error) {
    if (server) await server.dispose(true);
    else {
      await etcd?.dispose(true);
      removeServerDir(dir, 'kube-apiserver', true);
    }
    throw error;
  }
}

/** For a test that needs kube-apiserver: false after `t.skip()` without it (throws under CI). */
export async function requireKubeApiserver(t: TestContext): Promise<boolean> {
  return (
    (await requireTestbin(t, 'kube-apiserver')) !== undefined &&
    (await requireTestbin(t, 'etcd')) !== undefined
  );
}
