/**
 * A real etcd for tests: etcd 3.4 from Debian (`etcd-server`, `etcd-client`) in a temp dir on
 * 127.0.0.1 at free ports, optionally with TLS (certificates made with openssl, SAN
 * IP:127.0.0.1) and password auth. Installs the packages when they are missing; with CI=true a
 * missing or uninstallable etcd fails, never skips.
 *
 *   const etcd = await startEtcd();
 *   await etcd.etcdctl('put', 'services/hello/a', '127.0.0.2:5000');
 *   await etcd.kill(); await etcd.start();   // an outage, then the same member on the same data dir
 *   await etcd.dispose();                     // stopped by PID, temp dir removed
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type { TestContext } from 'node:test';
import { ensureTools, requireTools, TOOL_SEARCH_PATH, type ToolSpec } from './system-tools';

export interface EtcdOptions {
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
  /** etcd's output so far (the last 64 KiB). */
  logs(): string;
  /** Stops etcd and removes the temp dir. Idempotent. */
  dispose(): Promise<void>;
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

const MAX_LOG = 64 * 1024;
const ROOT_PASSWORD = 'rootpw';
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

const TOOLS: ToolSpec<keyof Tools> = {
  binaries: ['etcd', 'etcdctl'],
  packages: ['etcd-server', 'etcd-client'],
  unavailable: (message) => new EtcdUnavailableError(message),
};

/** etcd and etcdctl, installed from Debian if missing. Throws `EtcdUnavailableError`. */
export function ensureEtcd(): Tools {
  return ensureTools(TOOLS);
}

/**
 * For a test that needs etcd: true when it can run. Without it the test is skipped — except with
 * CI=true, where it throws so the test fails.
 */
export function requireEtcd(t: TestContext): boolean {
  return requireTools(t, TOOLS);
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, with openssl. */
async function makeCertificates(
  dir: string,
): Promise<EtcdTls & { serverCert: string; serverKey: string }> {
  const file = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=grpc-lb test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  for (const [name, usage] of [
    ['server', 'serverAuth'],
    ['client', 'clientAuth'],
  ] as const) {
    writeFileSync(
      file(`${name}.ext`),
      `subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=${usage}\n`,
    );
    await run('openssl', [
      'req',
      ...ec,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
      '-subj',
      `/CN=${name === 'server' ? '127.0.0.1' : 'grpc-lb-test-client'}`,
    ]);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file(`${name}.crt`),
      '-days',
      '2',
      '-extfile',
      file(`${name}.ext`),
    ]);
  }
  return {
    caFile: file('ca.crt'),
    certFile: file('client.crt'),
    keyFile: file('client.key'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
  };
}

class EtcdServer implements Etcd {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private output = '';
  private disposed = false;
  private authEnabled = false;

  constructor(
    private readonly tools: Tools,
    readonly dir: string,
    private clientPortNumber: number,
    private peerPort: number,
    readonly tls: (EtcdTls & { serverCert: string; serverKey: string }) | undefined,
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
    return this.child?.pid;
  }
  get running(): boolean {
    return this.child !== undefined;
  }

  logs(): string {
    return this.output;
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
    if (this.child) return;
    const fresh = !existsSync(join(this.dir, 'data'));
    for (let attempt = 1; ; attempt++) {
      const problem = await this.launch();
      if (problem === undefined) return;
      await this.kill();
      if (!problem.retry || !fresh || attempt >= 5) {
        throw new Error(
          `etcd did not start on ${this.endpoint}: ${problem.message}\n--- etcd output ---\n${this.output.slice(-4000)}`,
        );
      }
      // Another process took a port between our probe and etcd's bind: new ports, new member.
      rmSync(join(this.dir, 'data'), { recursive: true, force: true });
      this.clientPortNumber = await freePort();
      this.peerPort = await freePort();
    }
  }

  private async launch(): Promise<{ message: string; retry: boolean } | undefined> {
    const child = spawn(this.tools.etcd, this.args(), {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child);
    child.unref();
    (child.stdout as net.Socket | null)?.unref();
    (child.stderr as net.Socket | null)?.unref();
    const onData = (data: Buffer): void => {
      this.output = (this.output + data.toString('utf8')).slice(-MAX_LOG);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    let exited = false;
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        exited = true;
        resolve();
      }),
    );
    void this.exited.then(() => {
      live.delete(child);
      if (this.child === child) this.child = undefined;
    });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (exited) {
        return { message: 'etcd exited', retry: /address already in use/i.test(this.output) };
      }
      if (await this.healthy()) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return { message: 'not healthy after 20 s', retry: false };
  }

  /** GET /health: true once the member has a leader and serves reads. */
  private healthy(): Promise<boolean> {
    return new Promise((resolve) => {
      const options = {
        host: '127.0.0.1',
        port: this.clientPortNumber,
        path: '/health',
        timeout: 1_000,
        ...(this.tls ? { ca: readFileSync(this.tls.caFile) } : {}),
      };
      const onResponse = (response: http.IncomingMessage): void => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          // With auth on, etcd 3.4's health check is refused its read: it still answers.
          resolve(/"health":\s*"true"/.test(body) || (this.authEnabled && body.includes('health')));
        });
      };
      const request = this.tls ? https.get(options, onResponse) : http.get(options, onResponse);
      request.on('error', () => resolve(false));
      request.on('timeout', () => {
        request.destroy();
        resolve(false);
      });
    });
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

  metric(name: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const options = {
        host: '127.0.0.1',
        port: this.clientPortNumber,
        path: '/metrics',
        timeout: 5_000,
        ...(this.tls ? { ca: readFileSync(this.tls.caFile) } : {}),
      };
      const onResponse = (response: http.IncomingMessage): void => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(body);
          if (match) resolve(Number(match[1]));
          else reject(new Error(`etcd has no metric ${name}`));
        });
      };
      const request = this.tls ? https.get(options, onResponse) : http.get(options, onResponse);
      request.on('error', reject);
      request.on('timeout', () => request.destroy(new Error('metrics timed out')));
    });
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
    this.thaw();
    await this.signal('SIGTERM');
  }

  async kill(): Promise<void> {
    this.thaw();
    await this.signal('SIGKILL');
  }

  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(killer);
    this.child = undefined;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts etcd; throws (with etcd's output) if it does not become healthy. */
export async function startEtcd(options: EtcdOptions = {}): Promise<Etcd> {
  const found = ensureEtcd();
  const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-etcd-'));
  try {
    const tls = options.tls ? await makeCertificates(dir) : undefined;
    const server = new EtcdServer(found, dir, await freePort(), await freePort(), tls);
    try {
      await server.start();
      if (options.auth) {
        await server.enableAuth(
          options.auth.username,
          options.auth.password,
          options.auth.prefix ?? 'services/',
        );
      }
    } catch (error) {
      await server.dispose();
      throw error;
    }
    return server;
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Runs `body`; if it throws, prints etcd's output before rethrowing. */
export async function printEtcdLogsOnFailure<T>(
  etcd: Etcd | undefined,
  body: () => Promise<T>,
): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (etcd) {
      process.stderr.write(`--- etcd output (${etcd.endpoint}) ---\n${etcd.logs().slice(-8000)}\n`);
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Go interop peers (test/interop/etcd-go): built once per source version into a cache outside
// the repo, ~/.cache/grpc-lb-testbin/etcd-interop-<hash>/{server,client}.

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

const GO_SEARCH_PATH = [...TOOL_SEARCH_PATH, '/usr/local/go/bin', '/usr/lib/go/bin'];

function findGo(): string | undefined {
  for (const dir of GO_SEARCH_PATH) {
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  }
  return undefined;
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

/** test/interop/etcd-go, found upwards from this module (compiled or not). */
function interopSource(): string {
  let dir = __dirname;
  for (let depth = 0; depth < 6; depth++) {
    const candidate = join(dir, 'interop', 'etcd-go');
    if (existsSync(join(candidate, 'go.mod'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`test/interop/etcd-go not found above ${__dirname}`);
}

function sourceFiles(root: string, dir = root): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(root, path));
    else if (/\.go$|^go\.(mod|sum)$/.test(entry.name)) files.push(relative(root, path));
  }
  return files.sort();
}

/**
 * Builds the Go interop peers (or finds them in the cache). Modules come through the Go module
 * proxy; `GOTOOLCHAIN=local`, so the installed Go builds them or the build fails.
 */
export async function buildEtcdGoInterop(): Promise<EtcdGoInterop> {
  const go = findGo();
  if (!go) throw new GoUnavailableError('go is not installed');
  const source = interopSource();
  const version = await run(go, ['version']);
  const hash = createHash('sha256').update(version);
  for (const file of sourceFiles(source)) {
    hash
      .update(`${file}\0`)
      .update(readFileSync(join(source, file)))
      .update('\0');
  }
  const cacheRoot = join(
    process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'),
    'grpc-lb-testbin',
  );
  const dir = join(cacheRoot, `etcd-interop-${hash.digest('hex').slice(0, 16)}`);
  const result = { server: join(dir, 'server'), client: join(dir, 'client'), dir };
  if (existsSync(result.server) && existsSync(result.client)) {
    return { ...result, buildMs: 0, cached: true };
  }
  mkdirSync(cacheRoot, { recursive: true });
  const staging = mkdtempSync(join(cacheRoot, '.building-'));
  const started = performance.now();
  try {
    await run(go, ['build', '-trimpath', '-o', `${staging}/`, './server', './client'], {
      cwd: source,
      env: {
        ...process.env,
        GOTOOLCHAIN: 'local',
        CGO_ENABLED: '0',
        GOFLAGS: '-mod=mod',
      },
      timeoutMs: 20 * 60_000,
    });
    const buildMs = Math.round(performance.now() - started);
    try {
      renameSync(staging, dir);
    } catch (error) {
      // Another process finished the same build first: use its binaries.
      if (!existsSync(result.server)) throw error;
    }
    return { ...result, buildMs, cached: false };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
