/**
 * A real etcd for tests: etcd 3.4 from Debian (`etcd-server`, `etcd-client`) or etcd 3.6 built
 * from Go modules (test/testbin/etcd; `version: '3.6'`, or GRPC_LB_ETCD_VERSION=3.6 for every
 * test), in a temp dir on 127.0.0.1 at free ports, optionally with TLS (certificates made with
 * openssl, SAN IP:127.0.0.1) and password auth. Installs or builds what is missing; with CI=true a
 * missing or unbuildable etcd fails, never skips.
 *
 *   const etcd = await startEtcd();
 *   await etcd.etcdctl('put', 'services/hello/a', '127.0.0.2:5000');
 *   await etcd.kill(); await etcd.start();   // an outage, then the same member on the same data dir
 *   await etcd.dispose();                     // stopped by PID, temp dir removed
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createCa } from './certs';
import {
  freePort,
  httpRequest,
  makeServerDir,
  removeServerDir,
  run,
  ServerProcess,
  ServerStartError,
} from './server-process';
import { ensureTools, requireTools, type ToolSpec } from './system-tools';
import { ensureTestbin, findGo, type TestbinBuild } from './testbin';

export type EtcdVersion = '3.4' | '3.6';

/** The etcd version tests run against by default: GRPC_LB_ETCD_VERSION, else Debian's 3.4. */
export function defaultEtcdVersion(): EtcdVersion {
  return process.env['GRPC_LB_ETCD_VERSION'] === '3.6' ? '3.6' : '3.4';
}

export interface EtcdOptions {
  /** Debian's etcd 3.4 or etcd 3.6 built from Go modules (default: `defaultEtcdVersion()`). */
  readonly version?: EtcdVersion;
  /** Serve clients over TLS with a fresh CA (default false). */
  readonly tls?: boolean;
  /**
   * Turn on password auth: a `root` user (password `rootpw`) and this user, allowed to read and
   * write keys under `prefix` (default `services/`).
   */
  readonly auth?: {
    readonly username: string;
    readonly password: string;
    readonly prefix?: string;
  };
  /** Keep running after this process exits (for `npm run testbin -- start etcd`). */
  readonly detached?: boolean;
}

export interface EtcdTls {
  /** The CA that signed etcd's certificate (PEM file). */
  readonly caFile: string;
  /** A client certificate and key signed by that CA (etcd does not require one). */
  readonly certFile: string;
  readonly keyFile: string;
}

export interface Etcd {
  /** `127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** `http://127.0.0.1:<port>` or `https://…`. */
  readonly url: string;
  readonly clientPort: number;
  readonly version: EtcdVersion;
  readonly dir: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  readonly tls: EtcdTls | undefined;
  /** etcdctl (API v3) against this member, as root when auth is on; resolves with stdout. */
  etcdctl(...args: string[]): Promise<string>;
  /** The store's current revision. */
  revision(): Promise<number>;
  /** A value from etcd's Prometheus `/metrics` (e.g. `etcd_debugging_mvcc_watch_stream_total`). */
  metric(name: string): Promise<number>;
  /** Compacts the history up to the current revision (or `revision`), physically. */
  compact(revision?: number): Promise<number>;
  /** SIGTERM (then SIGKILL after 5 s). The data dir stays. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. The data dir stays. */
  kill(): Promise<void>;
  /** SIGSTOP: etcd keeps its sockets (the kernel still accepts connections) but answers nothing. */
  freeze(): void;
  /** SIGCONT after `freeze()`. */
  thaw(): void;
  /** Starts etcd again on the same ports and data dir (revisions and leases survive). */
  start(): Promise<void>;
  /** etcd's log (its last 64 KiB). */
  logs(): string;
  /** Stops etcd and removes the temp dir (kept when `failed` or GRPC_LB_KEEP_SERVERS=1). */
  dispose(failed?: boolean): Promise<void>;
}

export class EtcdUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EtcdUnavailableError';
  }
}

interface Tools {
  readonly etcd: string;
  readonly etcdctl: string;
}

const ROOT_PASSWORD = 'rootpw';

const TOOLS: ToolSpec<keyof Tools> = {
  binaries: ['etcd', 'etcdctl'],
  packages: ['etcd-server', 'etcd-client'],
  unavailable: (message) => new EtcdUnavailableError(message),
};

/** Debian's etcd and etcdctl (3.4), installed if missing. Throws `EtcdUnavailableError`. */
export function ensureEtcd(): Tools {
  return ensureTools(TOOLS);
}

/**
 * For a test that needs etcd (of `defaultEtcdVersion()`): true when it can run. Without it the
 * test is skipped — except with CI=true, where it throws so the test fails. (etcd 3.6 is built by
 * `startEtcd`; here only Go is checked.)
 */
export function requireEtcd(t: TestContext): boolean {
  return defaultEtcdVersion() === '3.6' ? requireGo(t) : requireTools(t, TOOLS);
}

async function etcdTools(version: EtcdVersion): Promise<Tools> {
  if (version === '3.4') return ensureEtcd();
  const build = await ensureTestbin('etcd');
  return { etcd: build.binaries['etcd']!, etcdctl: build.binaries['etcdctl']! };
}

type ServerTls = EtcdTls & { serverCert: string; serverKey: string };

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate. */
async function makeCertificates(dir: string): Promise<ServerTls> {
  const ca = await createCa(dir, 'grpc-lb test CA');
  const sans = ['IP:127.0.0.1', 'DNS:localhost'];
  const server = await ca.issue('server', { cn: '127.0.0.1', sans, usage: 'serverAuth' });
  const client = await ca.issue('client', { cn: 'grpc-lb-test-client', sans, usage: 'clientAuth' });
  return {
    caFile: ca.certFile,
    certFile: client.certFile,
    keyFile: client.keyFile,
    serverCert: server.certFile,
    serverKey: server.keyFile,
  };
}

class EtcdServer implements Etcd {
  private process: ServerProcess | undefined;
  private disposed = false;
  private authEnabled = false;

  constructor(
    private readonly tools: Tools,
    readonly version: EtcdVersion,
    readonly dir: string,
    private clientPortNumber: number,
    private peerPort: number,
    readonly tls: ServerTls | undefined,
    private readonly detached: boolean,
  ) {}

  get clientPort(): number {
    return this.clientPortNumber;
  }
  get endpoint(): string {
    return `127.0.0.1:${this.clientPortNumber}`;
  }
  get url(): string {
    return `${this.tls ? 'https' : 'http'}://${this.endpoint}`;
  }
  get pid(): number | undefined {
    return this.process?.pid;
  }
  get running(): boolean {
    return this.process?.running ?? false;
  }

  private get logFile(): string {
    return join(this.dir, 'etcd.log');
  }

  logs(): string {
    return this.process?.logs() ?? '';
  }

  private args(): string[] {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const args = [
      '--name',
      't1',
      '--data-dir',
      join(this.dir, 'data'),
      '--listen-client-urls',
      this.url,
      '--advertise-client-urls',
      this.url,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `t1=${peer}`,
      '--initial-cluster-state',
      'new',
      '--heartbeat-interval',
      '10',
      '--election-timeout',
      '100',
      '--log-level',
      'warn',
      '--logger',
      'zap',
    ];
    if (this.tls) args.push('--cert-file', this.tls.serverCert, '--key-file', this.tls.serverKey);
    return args;
  }

  async start(): Promise<void> {
    if (this.process?.running) return;
    const fresh = !existsSync(join(this.dir, 'data'));
    for (let attempt = 1; ; attempt++) {
      this.process = new ServerProcess({
        name: `etcd ${this.version}`,
        command: this.tools.etcd,
        args: this.args(),
        cwd: this.dir,
        logFile: this.logFile,
        ...(this.detached ? { detached: true } : {}),
      });
      this.process.start();
      try {
        await this.process.waitReady(() => this.healthy(), 20_000, 25);
        return;
      } catch (error) {
        await this.process.kill();
        const portTaken = /address already in use/i.test(this.process.logs(8_000));
        if (!(error instanceof ServerStartError) || !portTaken || !fresh || attempt >= 5) {
          throw error;
        }
        // Another process took a port between our probe and etcd's bind: new ports, new member.
        rmSync(join(this.dir, 'data'), { recursive: true, force: true });
        this.clientPortNumber = await freePort();
        this.peerPort = await freePort();
      }
    }
  }

  /** GET /health: true once the member has a leader and serves reads. */
  private async healthy(): Promise<boolean> {
    const result = await httpRequest(`${this.url}/health`, {
      timeoutMs: 1_000,
      ...(this.tls ? { ca: readFileSync(this.tls.caFile) } : {}),
    });
    // With auth on, etcd 3.4's health check is refused its read: it still answers.
    return (
      /"health":\s*"true"/.test(result.body) || (this.authEnabled && result.body.includes('health'))
    );
  }

  etcdctl(...args: string[]): Promise<string> {
    const flags = [`--endpoints=${this.url}`, '--dial-timeout=5s', '--command-timeout=10s'];
    if (this.tls) flags.push(`--cacert=${this.tls.caFile}`);
    if (this.authEnabled) flags.push(`--user=root:${ROOT_PASSWORD}`);
    return run(this.tools.etcdctl, [...flags, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
    });
  }

  async revision(): Promise<number> {
    const out = await this.etcdctl('endpoint', 'status', '-w', 'json');
    const status = JSON.parse(out) as { Status: { header: { revision: number } } }[];
    const revision = status[0]?.Status.header.revision;
    if (typeof revision !== 'number') throw new Error(`no revision in ${out}`);
    return revision;
  }

  async metric(name: string): Promise<number> {
    const result = await httpRequest(`${this.url}/metrics`, {
      timeoutMs: 5_000,
      ...(this.tls ? { ca: readFileSync(this.tls.caFile) } : {}),
    });
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(result.body);
    if (!match) throw new Error(`etcd has no metric ${name}`);
    return Number(match[1]);
  }

  async compact(revision?: number): Promise<number> {
    const at = revision ?? (await this.revision());
    await this.etcdctl('compaction', '--physical', String(at));
    return at;
  }

  async enableAuth(username: string, password: string, prefix: string): Promise<void> {
    await this.etcdctl('user', 'add', `root:${ROOT_PASSWORD}`, '--interactive=false');
    await this.etcdctl('user', 'grant-role', 'root', 'root');
    await this.etcdctl('user', 'add', `${username}:${password}`, '--interactive=false');
    await this.etcdctl('role', 'add', 'services');
    await this.etcdctl(
      'role',
      'grant-permission',
      'services',
      '--prefix=true',
      'readwrite',
      prefix,
    );
    await this.etcdctl('user', 'grant-role', username, 'services');
    await this.etcdctl('auth', 'enable');
    this.authEnabled = true;
  }

  async stop(): Promise<void> {
    await this.process?.stop();
  }

  async kill(): Promise<void> {
    await this.process?.kill();
  }

  freeze(): void {
    this.process?.freeze();
  }

  thaw(): void {
    this.process?.thaw();
  }

  async dispose(failed = false): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.kill();
    removeServerDir(this.dir, 'etcd', failed);
  }
}

/** Starts etcd; throws (with etcd's log) if it does not become healthy. */
export async function startEtcd(options: EtcdOptions = {}): Promise<Etcd> {
  const version = options.version ?? defaultEtcdVersion();
  const tools = await etcdTools(version);
  const dir = makeServerDir(`etcd${version.replace('.', '')}`);
  let server: EtcdServer | undefined;
  try {
    const tls = options.tls ? await makeCertificates(dir) : undefined;
    server = new EtcdServer(
      tools,
      version,
      dir,
      await freePort(),
      await freePort(),
      tls,
      options.detached ?? false,
    );
    await server.start();
    if (options.auth) {
      await server.enableAuth(
        options.auth.username,
        options.auth.password,
        options.auth.prefix ?? 'services/',
      );
    }
    return server;
  } catch (error) {
    if (server) await server.dispose(true);
    else removeServerDir(dir, 'etcd', true);
    throw error;
  }
}

/** Runs `body`; if it throws, prints etcd's log before rethrowing. */
export async function printEtcdLogsOnFailure<T>(
  etcd: Etcd | undefined,
  body: () => Promise<T>,
): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (etcd) {
      process.stderr.write(
        `--- etcd ${etcd.version} log (${etcd.endpoint}) ---\n${etcd.logs().slice(-8000)}\n`,
      );
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Go interop peers (test/interop/etcd-go), built by testbin.ts like the Go-built servers.

export interface EtcdGoInterop {
  /** grpc-go Greeter server registering itself with etcd's endpoints.Manager. */
  readonly server: string;
  /** grpc-go client resolving through etcd's naming resolver. */
  readonly client: string;
  /** Time spent building now (0 when the cache had them). */
  readonly buildMs: number;
  readonly cached: boolean;
  readonly dir: string;
}

export class GoUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GoUnavailableError';
  }
}

/** For a test that needs Go: true when it can run; skips without Go, except with CI=true. */
export function requireGo(t: TestContext): boolean {
  if (findGo()) return true;
  const error = new GoUnavailableError(
    'go is not installed (not on PATH nor in /usr/local/go/bin)',
  );
  if (process.env['CI'] === 'true') throw error;
  t.skip(error.message);
  return false;
}

/** Builds the Go interop peers (or finds them in the cache). */
export async function buildEtcdGoInterop(): Promise<EtcdGoInterop> {
  const build: TestbinBuild = await ensureTestbin('etcd-interop');
  return {
    server: build.binaries['server']!,
    client: build.binaries['client']!,
    buildMs: build.buildMs,
    cached: build.cached,
    dir: build.dir,
  };
}
