/**
 * The process plumbing every real test server shares (Consul, kube-apiserver, etcd 3.6): a child
 * whose stdout and stderr go to a log file in its own temp dir, a readiness poll that gives up
 * with the log's tail when the server exits or never becomes ready, and a stop by PID (SIGTERM,
 * then SIGKILL after a grace period) that also works from another process (`npm run testbin --
 * stop DIR`). A server's dir — and so its log — is kept when it failed; set
 * GRPC_LB_KEEP_SERVERS=1 to keep every one.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Children started in this process, killed when it exits (a test that forgot one leaks nothing). */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Distinct free ports (probed together, so no two are the same). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = Array.from({ length: count }, () => net.createServer());
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
        }),
    ),
  );
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
  /** Resolve with stdout followed by stderr (some tools print their version on stderr). */
  readonly combined?: boolean;
}

/** Runs a command to completion; resolves with stdout, rejects with the exit and stderr. */
export function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 30_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error) {
          // error.message repeats stderr after "Command failed: …": say how it ended, then stderr.
          const how = error.killed
            ? `killed (${error.signal ?? 'timeout'})`
            : `exit ${String(error.code ?? error.signal)}`;
          reject(new Error(`${command} ${args.join(' ')} failed: ${how}\n${stderr}`));
        } else {
          resolve(options.combined ? `${stdout}${stderr}` : stdout);
        }
      },
    );
  });
}

export function makeServerDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `grpc-lb-${name}-`));
}

/** The last `maxBytes` of a file ('' when it does not exist). */
export function tailFile(path: string, maxBytes = 64 * 1024): string {
  if (!existsSync(path)) return '';
  const size = statSync(path).size;
  const length = Math.min(size, maxBytes);
  const buffer = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buffer, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  return buffer.toString('utf8');
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Stops a process by PID: SIGCONT (in case it was frozen), SIGTERM, then SIGKILL after `graceMs`.
 * Resolves once it is gone. For processes this one did not start (or no longer holds).
 */
export async function stopPid(pid: number, graceMs = 5_000): Promise<void> {
  const send = (signal: NodeJS.Signals): void => {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  };
  send('SIGCONT');
  send('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid)) {
    if (Date.now() >= deadline) {
      send('SIGKILL');
      await sleep(50);
      if (!pidAlive(pid)) return;
      // A zombie of a parent that does not reap: nothing more a signal can do.
      if (Date.now() >= deadline + 2_000) return;
    }
    await sleep(25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface ServerProcessOptions {
  /** For messages: `consul`, `kube-apiserver`. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** Where stdout and stderr go (appended; one file across restarts). */
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Outlive this Node process (for `npm run testbin -- start`): own process group, not killed
   * when this process exits.
   */
  readonly detached?: boolean;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One server child process. `start()` again after it stopped starts it anew (same args, same log). */
export class ServerProcess {
  private child: ChildProcess | undefined;
  private exit: Promise<ExitStatus> | undefined;
  private lastExit: ExitStatus | undefined;

  constructor(readonly options: ServerProcessOptions) {}

  get name(): string {
    return this.options.name;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return this.child !== undefined;
  }
  /** How it last exited, while it is not running. */
  get exitStatus(): ExitStatus | undefined {
    return this.lastExit;
  }

  start(): void {
    if (this.child) return;
    const out = openSync(this.options.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.options.command, [...this.options.args], {
        cwd: this.options.cwd,
        env: this.options.env ?? process.env,
        stdio: ['ignore', out, out],
        detached: this.options.detached ?? false,
      });
    } finally {
      closeSync(out);
    }
    this.child = child;
    this.lastExit = undefined;
    if (!this.options.detached) live.add(child);
    child.unref();
    this.exit = new Promise<ExitStatus>((resolve) => {
      child.once('error', (error) => {
        // spawn failed (e.g. ENOENT): no 'exit' follows.
        if (child.pid === undefined) resolve({ code: null, signal: null });
        this.appendNote(`spawn error: ${error.message}`);
      });
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    void this.exit.then((status) => {
      live.delete(child);
      if (this.child === child) {
        this.child = undefined;
        this.lastExit = status;
      }
    });
  }

  private appendNote(note: string): void {
    try {
      appendFileSync(this.options.logFile, `[grpc-lb test] ${note}\n`);
    } catch {
      // the dir is gone: nothing to keep
    }
  }

  /** The log's last `maxBytes`. */
  logs(maxBytes = 64 * 1024): string {
    return tailFile(this.options.logFile, maxBytes);
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once it exited. */
  async stop(graceMs = 5_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    // Not unref()ed: the child is, so this timer is what keeps the event loop waiting for it.
    const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exit;
    clearTimeout(killer);
  }

  /** SIGKILL: a crash. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    // The child is unref()ed: hold the event loop open until its exit is seen.
    const hold = setInterval(() => {}, 1_000);
    await this.exit;
    clearInterval(hold);
  }

  /** SIGSTOP: the kernel still accepts its connections, but it answers nothing. */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /**
   * Polls `check` until it returns true. Fails with the log's tail when the process exits first
   * or `timeoutMs` passes.
   */
  async waitReady(
    check: () => Promise<boolean>,
    timeoutMs: number,
    intervalMs = 50,
  ): Promise<void> {
    const started = Date.now();
    for (;;) {
      if (!this.child) {
        const status = this.lastExit;
        throw new ServerStartError(
          this.name,
          `exited (code ${status?.code ?? 'none'}, signal ${status?.signal ?? 'none'}) before it was ready`,
          this.logs(8_000),
          this.options.logFile,
        );
      }
      let ready = false;
      try {
        ready = await check();
      } catch {
        ready = false;
      }
      if (ready) return;
      if (Date.now() - started > timeoutMs) {
        throw new ServerStartError(
          this.name,
          `not ready after ${Math.round(timeoutMs / 1000)} s`,
          this.logs(8_000),
          this.options.logFile,
        );
      }
      await sleep(intervalMs);
    }
  }
}

export class ServerStartError extends Error {
  constructor(
    readonly server: string,
    reason: string,
    /** The log's tail. */
    readonly log: string,
    /** The whole log (kept: a server that failed to start keeps its dir). */
    readonly logFile: string,
  ) {
    super(`${server} ${reason} (log: ${logFile})\n--- ${server} log (tail) ---\n${log}`);
    this.name = 'ServerStartError';
  }
}

/** Removes a server's dir unless it is to be kept (failed, or GRPC_LB_KEEP_SERVERS=1); says which. */
export function removeServerDir(dir: string, name: string, failed: boolean): void {
  if (failed || process.env['GRPC_LB_KEEP_SERVERS'] === '1') {
    process.stderr.write(`[${name}] kept ${dir} (logs and data)\n`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

export interface HttpResult {
  readonly status: number;
  readonly body: string;
  readonly headers: http.IncomingHttpHeaders;
}

export interface HttpOptions {
  readonly method?: string;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
  /** PEM contents for https. */
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly timeoutMs?: number;
}

/** One HTTP(S) request with the whole body read; rejects only when no response came. */
export function httpRequest(url: string, options: HttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const parsed = new URL(url);
    const secure = parsed.protocol === 'https:';
    const requestOptions: https.RequestOptions = {
      method: options.method ?? 'GET',
      host: parsed.hostname.replace(/^\[|\]$/g, ''),
      port: parsed.port,
      path: `${parsed.pathname}${parsed.search}`,
      headers: options.headers ?? {},
      timeout: options.timeoutMs ?? 5_000,
      agent: false,
      ...(secure
        ? {
            ...(options.ca ? { ca: options.ca } : {}),
            ...(options.cert ? { cert: options.cert } : {}),
            ...(options.key ? { key: options.key } : {}),
          }
        : {}),
    };
    const onResponse = (response: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: response.headers,
        }),
      );
      response.on('error', reject);
    };
    const request = secure
      ? https.request(requestOptions, onResponse)
      : http.request(requestOptions, onResponse);
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error(`${url} timed out`)));
    if (options.body !== undefined) request.write(options.body);
    request.end();
  });
}

/** The lifecycle every started test server offers. */
export interface RunningServer {
  readonly dir: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** SIGTERM, then SIGKILL after a grace period. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
  /** SIGSTOP: connections are accepted, nothing answers (a hung server). */
  freeze(): void;
  /** SIGCONT after `freeze()`. */
  thaw(): void;
  /** Starts it again on the same ports. */
  start(): Promise<void>;
  /** The last `maxBytes` of its log. */
  logs(maxBytes?: number): string;
  /** Kills it and removes its dir (kept when `failed` or GRPC_LB_KEEP_SERVERS=1). */
  dispose(failed?: boolean): Promise<void>;
}

/**
 * What every started server shares: its process (stop, kill, freeze, thaw, logs) and its dir,
 * removed on `dispose()` unless it failed. Subclasses add their addresses and API.
 */
export abstract class ManagedServer {
  private disposed = false;

  protected constructor(
    protected readonly process: ServerProcess,
    readonly dir: string,
  ) {}

  get pid(): number | undefined {
    return this.process.pid;
  }
  get running(): boolean {
    return this.process.running;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void> {
    return this.process.stop(graceMs);
  }
  /** SIGKILL: a crash. */
  kill(): Promise<void> {
    return this.process.kill();
  }
  /** SIGSTOP: connections are accepted, nothing answers (a hung server). */
  freeze(): void {
    this.process.freeze();
  }
  thaw(): void {
    this.process.thaw();
  }
  logs(maxBytes?: number): string {
    return this.process.logs(maxBytes);
  }

  /** Kills it and removes its dir (kept when `failed` or GRPC_LB_KEEP_SERVERS=1). Idempotent. */
  async dispose(failed = false): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.process.kill();
    await this.disposeMore(failed);
    removeServerDir(this.dir, this.process.name, failed);
  }

  /** What else a subclass stops on dispose (e.g. the API server's etcd). */
  protected async disposeMore(failed: boolean): Promise<void> {
    void failed;
    return Promise.resolve();
  }
}
