/**
 * A real Consul agent for tests: `consul agent -dev` (server, in-memory state, its own leader)
 * built from Go modules (test/testbin/consul), bound to 127.0.0.1 at free ports, with DNS, gRPC
 * and HTTPS off (HTTPS on with the `tls` option, requiring client certificates) and the per-client HTTP connection limit lifted (load from one address would hit
 * the default 200). Ready when `/v1/status/leader` names a leader and the node is in the catalog.
 *
 *   const consul = await startConsul();
 *   await consul.api('PUT', '/v1/agent/service/register', { Name: 'hello', Port: 5000 });
 *   const res = await consul.api('GET', '/v1/health/service/hello?passing=true');
 *   await consul.dispose();
 */
import type { TestContext } from 'node:test';
import { join } from 'node:path';
import {
  freePorts,
  httpRequest,
  makeServerDir,
  removeServerDir,
  ManagedServer,
  ServerProcess,
  type RunningServer,
  type HttpResult,
} from './server-process';
import { ensureTestbin, requireTestbin } from './testbin';

export interface ConsulOptions {
  /** Keep running after this process exits (for `npm run testbin -- start consul`). */
  readonly detached?: boolean;
  /** Extra `-hcl` snippets. */
  readonly hcl?: readonly string[];
  /**
   * Turn ACLs on, default deny, with this management token (a secret of the test's own; also the
   * agent's own token, so it can sync its node and deregistrations to the catalog).
   * `api()` then sends it unless given another token (or `null`: anonymous).
   */
  readonly aclManagementToken?: string;
  /**
   * Also serve the HTTP API over HTTPS (on `httpsPort`) with this server certificate, requiring a
   * client certificate signed by `caFile` (`verify_incoming`). The plain HTTP port stays on, for
   * `api()` and the readiness check.
   */
  readonly tls?: { readonly caFile: string; readonly certFile: string; readonly keyFile: string };
}

export interface ConsulApiResult extends HttpResult {
  /** The body parsed as JSON (undefined when empty or not JSON). */
  readonly json: unknown;
  /** `X-Consul-Index`, for blocking queries. */
  readonly index: number | undefined;
}

/**
 * `stop()` loses a dev agent's state (services, KV): `start()` brings back an empty agent on the
 * same ports.
 */
export interface Consul extends RunningServer {
  /** `127.0.0.1:<port>` of the HTTP API. */
  readonly address: string;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly httpPort: number;
  /** The HTTPS port, when started with `tls`. */
  readonly httpsPort: number | undefined;
  readonly version: string;
  /**
   * One HTTP API call; `body` is sent as JSON. `token`: the X-Consul-Token (default: the ACL
   * management token when ACLs are on; `null`: none).
   */
  api(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs?: number,
    token?: string | null,
  ): Promise<ConsulApiResult>;
}

class ConsulAgent extends ManagedServer implements Consul {
  constructor(
    process: ServerProcess,
    dir: string,
    readonly httpPort: number,
    readonly version: string,
    private readonly managementToken: string | undefined,
    readonly httpsPort: number | undefined = undefined,
  ) {
    super(process, dir);
  }

  get address(): string {
    return `127.0.0.1:${this.httpPort}`;
  }
  get url(): string {
    return `http://${this.address}`;
  }

  async api(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 10_000,
    token: string | null | undefined = this.managementToken,
  ): Promise<ConsulApiResult> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers['x-consul-token'] = token;
    const result = await httpRequest(`${this.url}${path}`, {
      method,
      timeoutMs,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    let json: unknown;
    try {
      json = result.body.length > 0 ? JSON.parse(result.body) : undefined;
    } catch {
      json = undefined;
    }
    const header = result.headers['x-consul-index'];
    const index = typeof header === 'string' ? Number(header) : undefined;
    return { ...result, json, index };
  }

  async start(): Promise<void> {
    if (this.process.running) return;
    this.process.start();
    await this.process.waitReady(() => this.ready(), 60_000, 100);
  }

  /** A leader is elected and this node is in the catalog (so registrations sync at once). */
  private async ready(): Promise<boolean> {
    const leader = await this.api('GET', '/v1/status/leader', undefined, 2_000);
    if (leader.status !== 200 || typeof leader.json !== 'string' || leader.json === '') {
      return false;
    }
    const nodes = await this.api('GET', '/v1/catalog/nodes', undefined, 2_000);
    return nodes.status === 200 && Array.isArray(nodes.json) && nodes.json.length > 0;
  }
}

/** Starts a dev agent; throws `ServerStartError` (with the agent's log) if it is not ready in 60 s. */
export async function startConsul(options: ConsulOptions = {}): Promise<Consul> {
  const build = await ensureTestbin('consul');
  const dir = makeServerDir('consul');
  let agent: ConsulAgent | undefined;
  try {
    const [http, server, serfLan, https] = (await freePorts(4)) as [number, number, number, number];
    const tls = options.tls;
    const args = [
      'agent',
      '-dev',
      '-node=grpc-lb-test',
      '-bind=127.0.0.1',
      '-client=127.0.0.1',
      `-http-port=${http}`,
      `-server-port=${server}`,
      `-serf-lan-port=${serfLan}`,
      '-serf-wan-port=-1',
      '-dns-port=-1',
      '-grpc-port=-1',
      '-grpc-tls-port=-1',
      `-https-port=${tls ? https : -1}`,
      '-hcl',
      'disable_update_check = true',
      '-hcl',
      'limits { http_max_conns_per_client = 0 }',
      ...(options.aclManagementToken !== undefined
        ? [
            '-hcl',
            `acl { enabled = true, default_policy = "deny", tokens { initial_management = ${JSON.stringify(options.aclManagementToken)}, agent = ${JSON.stringify(options.aclManagementToken)} } }`,
          ]
        : []),
      ...(tls
        ? [
            '-hcl',
            `tls { defaults { ca_file = ${JSON.stringify(tls.caFile)}, cert_file = ${JSON.stringify(tls.certFile)}, key_file = ${JSON.stringify(tls.keyFile)} }, https { verify_incoming = true } }`,
          ]
        : []),
      ...(options.hcl ?? []).flatMap((snippet) => ['-hcl', snippet]),
      '-log-level=warn',
    ];
    const child = new ServerProcess({
      name: 'consul',
      command: build.binaries['consul']!,
      args,
      cwd: dir,
      logFile: join(dir, 'consul.log'),
      ...(options.detached ? { detached: true } : {}),
    });
    agent = new ConsulAgent(
      child,
      dir,
      http,
      build.version,
      options.aclManagementToken,
      tls ? https : undefined,
    );
    await agent.start();
    return agent;
  } catch (error) {
    if (agent) await agent.dispose(true);
    else removeServerDir(dir, 'consul', true);
    throw error;
  }
}

/** For a test that needs Consul: false after `t.skip()` when it cannot be built (throws under CI). */
export async function requireConsul(t: TestContext): Promise<boolean> {
  return (await requireTestbin(t, 'consul')) !== undefined;
}
