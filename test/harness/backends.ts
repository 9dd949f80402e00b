/**
 * Real grpc-js backends as child processes on 127.0.0.2 … 127.0.0.(N+1), all on one port, like the
 * pod IPs behind a headless Kubernetes Service. See README.md in this directory for the API.
 *
 * Child handles are unref()ed: a test that forgets stopAll() does not keep its process alive, and
 * the process 'exit' hook below (plus the child's own exit on IPC disconnect) kills what is left.
 * Every operation that waits on a child holds a referenced deadline timer while it waits.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { BackendControlError, BackendStartError, type BackendStartErrorCode } from './errors';
import {
  BACKEND_CONFIG_ENV,
  type BackendCommand,
  type BackendConfig,
  type BackendStats,
  type CommandName,
  type CommandResults,
  type HealthServiceMode,
  isChildMessage,
} from './protocol';
import type { HealthStatus } from './protos';
import { waitFor, withTimeout } from './wait';

const BACKEND_MAIN = path.join(__dirname, 'backend-main.js');
const DEFAULT_GREETINGS = ['Hello', 'Bonjour', 'Hola'] as const;
const DEFAULT_FIRST_HOST = 2;
const DEFAULT_READY_TIMEOUT_MS = 10_000;
const DEFAULT_GRACE_MS = 5_000;
/** How long a control command may take to be answered. */
const CONTROL_TIMEOUT_MS = 5_000;
/** Extra time, beyond a grace period, for a child to exit. */
const EXIT_MARGIN_MS = 5_000;
const PORT_ATTEMPTS = 5;
const OUTPUT_TAIL_CHARS = 8_192;

export interface BackendExit {
  /** Exit code, or null when the process was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One backend process (and its replacements after restart()) at a fixed host:port. */
export interface Backend {
  /** e.g. "backend-1"; returned in HelloReply.backend. */
  readonly name: string;
  /** e.g. "127.0.0.2". */
  readonly host: string;
  readonly port: number;
  /** host:port, e.g. "127.0.0.2:40123"; returned in HelloReply.address. */
  readonly address: string;
  /** First word of SayHello replies, e.g. "Bonjour". */
  readonly greeting: string;
  readonly labels: Readonly<Record<string, string>>;
  /** PID of the current process (changes on restart()). */
  readonly pid: number;
  /** False once the current process has exited. */
  readonly isRunning: boolean;
  /** True between freeze() and thaw(). */
  readonly isFrozen: boolean;
  /** Settles when the current process has exited (and its output is flushed). */
  readonly exited: Promise<BackendExit>;

  stats(): Promise<BackendStats>;
  /** Zeroes call, health-call and accepted-connection counters and forgets peers. */
  resetStats(): Promise<void>;
  /** Fail `rate` (0…1) of Greeter calls with `code` (default UNAVAILABLE), evenly spread. */
  setFailRate(rate: number, code?: GrpcStatus): Promise<void>;
  /** Answer each Greeter call `ms` after it arrives (0 = at once). */
  setDelay(ms: number): Promise<void>;
  /** While on, Greeter calls are accepted but not answered; turning it off answers them. */
  hang(on?: boolean): Promise<void>;
  /** Health status for `service` ('' = whole server, the default); streamed to watchers. */
  setHealth(status: HealthStatus, service?: string): Promise<void>;
  /** Graceful stop (close listener, NOT_SERVING, GOAWAY, finish calls); resolves on exit. */
  stopGracefully(graceMs?: number): Promise<BackendExit>;
  /** SIGKILL; resolves on exit. A no-op returning the last exit if already stopped. */
  kill(): Promise<BackendExit>;
  /** SIGSTOP: the kernel still accepts TCP connections, but nothing is answered. */
  freeze(): Promise<void>;
  /** SIGCONT; resolves once the backend answers commands again. */
  thaw(): Promise<void>;
  /** Starts a fresh process on the same host:port (SIGKILLing the current one if running). */
  restart(): Promise<void>;
}

/** The backends started together; they share one port and differ by IP. */
export interface BackendSet extends AsyncDisposable {
  readonly backends: readonly Backend[];
  readonly port: number;
  /** "127.0.0.2:PORT", … in start order. */
  readonly addresses: string[];
  /** A grpc-js target naming every backend: "ipv4:127.0.0.2:PORT,127.0.0.3:PORT,…". */
  readonly ipv4Target: string;
  /** The backend called `name`; throws if there is none. */
  backend(name: string): Backend;
  /** Starts one more backend at the next IP on the same port. */
  add(options?: AddBackendOptions): Promise<Backend>;
  /** SIGKILLs every backend still running and waits for the exits. Safe to call repeatedly. */
  stopAll(): Promise<void>;
}

export interface AddBackendOptions {
  /** Default "backend-<index+1>". */
  name?: string;
  /** Default cycles Hello, Bonjour, Hola by index. */
  greeting?: string;
  labels?: Record<string, string>;
  /** Which grpc.health.v1 methods it serves (default `watch`: Check and Watch). */
  healthService?: HealthServiceMode;
}

export interface StartBackendsOptions {
  /** Number of backends, at least 1. */
  count: number;
  /** Per-index greeting; missing entries use the Hello/Bonjour/Hola cycle. */
  greetings?: string[];
  /** Per-index name; missing entries use "backend-<index+1>". */
  names?: string[];
  /** Per-index labels; missing entries use {}. */
  labels?: Record<string, string>[];
  /** Which grpc.health.v1 methods every backend serves (default `watch`: Check and Watch). */
  healthService?: HealthServiceMode;
  /** Last octet of the first backend's IP; default 2 → 127.0.0.2. */
  firstHost?: number;
  /**
   * The first three octets of the backends' IPs (default `127.0.0`). Another network must be on
   * a local interface first: `addPodAddresses()` (test/support/pod-addresses.ts) puts 10.244.x.y
   * on the `lo` of the test network namespace the process runs in (test/support/netns.ts; the
   * Kubernetes API refuses loopback addresses in EndpointSlices).
   */
  network?: string;
  /** Fixed port; default picks a free one (retrying with another if an IP has it taken). */
  port?: number;
  /** Deadline for each child to report "listening"; default 10 s. */
  readyTimeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Children alive in this process, killed when it exits however the tests ended.

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllChildrenSync(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone: nothing to clean up.
    }
  }
}

function trackChild(child: ChildProcess): void {
  if (!exitHookInstalled) {
    process.on('exit', killAllChildrenSync);
    exitHookInstalled = true;
  }
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

function unrefStream(stream: Readable | null): void {
  if (stream !== null && 'unref' in stream && typeof stream.unref === 'function') {
    (stream.unref as () => void).call(stream);
  }
}

class OutputTail {
  private text = '';
  push(chunk: string): void {
    this.text = (this.text + chunk).slice(-OUTPUT_TAIL_CHARS);
  }
  toString(): string {
    return this.text.trimEnd();
  }
}

/** Linux process state letter ('T' = stopped), or undefined where /proc is unavailable. */
async function processState(pid: number): Promise<string | undefined> {
  try {
    // "<pid> (<comm>) <state> …"; comm may itself contain ')' so search from the end.
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2);
  } catch {
    return undefined;
  }
}

/** True if `pid` is a live process (a zombie awaiting its reaper counts as dead). */
export async function isProcessAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const state = await processState(pid);
  return state !== 'Z' && state !== 'X';
}

// ---------------------------------------------------------------------------------------------
// One child process.

interface PendingRequest {
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

type CommandOf<C extends CommandName> = Extract<BackendCommand, { cmd: C }>;

class BackendProcess {
  readonly pid: number;
  running = true;
  frozen = false;
  private readonly pending = new Map<number, PendingRequest>();
  private nextId = 1;

  private constructor(
    private readonly child: ChildProcess,
    readonly label: string,
    readonly port: number,
    readonly exited: Promise<BackendExit>,
  ) {
    this.pid = child.pid ?? -1;
    child.on('message', (message: unknown) => {
      if (!isChildMessage(message) || message.type !== 'reply') return;
      const request = this.pending.get(message.id);
      if (request === undefined) return;
      this.pending.delete(message.id);
      clearTimeout(request.timer);
      if (message.ok) request.resolve(message.result);
      else request.reject(new BackendControlError('FAILED', `${this.label}: ${message.error}`));
    });
    child.once('exit', () => {
      this.running = false;
      this.frozen = false;
      for (const [id, request] of this.pending) {
        clearTimeout(request.timer);
        request.reject(
          new BackendControlError('NOT_RUNNING', `${this.label} exited before answering`),
        );
        this.pending.delete(id);
      }
    });
  }

  /** Forks backend-main with `config` and resolves once it listens. */
  static async start(config: BackendConfig, readyTimeoutMs: number): Promise<BackendProcess> {
    const output = new OutputTail();
    let child: ChildProcess;
    try {
      child = fork(BACKEND_MAIN, [], {
        env: { ...process.env, [BACKEND_CONFIG_ENV]: JSON.stringify(config) },
        // The parent's flags (e.g. from `node --test`) are not meant for the backend.
        execArgv: [],
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        serialization: 'json',
      });
    } catch (error) {
      throw new BackendStartError(
        'SPAWN_FAILED',
        `${config.name}: cannot fork ${BACKEND_MAIN}`,
        '',
        {
          cause: error,
        },
      );
    }
    trackChild(child);
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => output.push(chunk));
    }
    const exited = new Promise<BackendExit>((resolve) => {
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    child.on('error', (error) =>
      output.push(`\n[harness] child process error: ${error.message}\n`),
    );
    child.unref();
    child.channel?.unref();
    unrefStream(child.stdout);
    unrefStream(child.stderr);

    const where = `${config.host}:${config.port === 0 ? '<free port>' : config.port}`;
    const failure = await new Promise<
      { port: number } | { code: BackendStartErrorCode; message: string }
    >((resolve) => {
      const done = (
        result: { port: number } | { code: BackendStartErrorCode; message: string },
      ): void => {
        clearTimeout(timer);
        child.removeListener('message', onMessage);
        resolve(result);
      };
      const onMessage = (message: unknown): void => {
        if (!isChildMessage(message)) return;
        if (message.type === 'listening') done({ port: message.port });
        else if (message.type === 'listenError') {
          done({
            code: message.code === 'EADDRINUSE' ? 'EADDRINUSE' : 'LISTEN_FAILED',
            message: `${config.name} cannot listen on ${where}: ${message.message}`,
          });
        }
      };
      const timer = setTimeout(() => {
        done({
          code: 'START_TIMEOUT',
          message: `${config.name} did not report listening on ${where} within ${readyTimeoutMs} ms`,
        });
      }, readyTimeoutMs);
      child.on('message', onMessage);
      exited.then(
        (exit) =>
          done({
            code: 'EXITED_BEFORE_READY',
            message: `${config.name} exited before listening on ${where} (code ${exit.code}, signal ${exit.signal})`,
          }),
        () => undefined,
      );
    });
    if ('port' in failure) {
      return new BackendProcess(
        child,
        `${config.name} (${config.host}:${failure.port})`,
        failure.port,
        exited,
      );
    }
    // Reap the child before reporting so its stderr is complete and nothing lingers.
    child.kill('SIGKILL');
    await withTimeout(exited, EXIT_MARGIN_MS, `${config.name} to exit`).catch(() => undefined);
    throw new BackendStartError(failure.code, failure.message, output.toString());
  }

  request<C extends CommandName>(
    command: CommandOf<C>,
    timeoutMs = CONTROL_TIMEOUT_MS,
  ): Promise<CommandResults[C]> {
    if (!this.running) {
      return Promise.reject(new BackendControlError('NOT_RUNNING', `${this.label} is not running`));
    }
    if (this.frozen) {
      return Promise.reject(
        new BackendControlError('FROZEN', `${this.label} is frozen; thaw() it first`),
      );
    }
    const id = this.nextId++;
    return new Promise<CommandResults[C]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new BackendControlError(
            'TIMEOUT',
            `${this.label} did not answer "${command.cmd}" in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (result) => resolve(result as CommandResults[C]),
        reject,
        timer,
      });
      this.child.send({ ...command, id }, (error) => {
        if (error === null || !this.pending.has(id)) return;
        this.pending.delete(id);
        clearTimeout(timer);
        reject(
          new BackendControlError('FAILED', `${this.label}: cannot send "${command.cmd}"`, {
            cause: error,
          }),
        );
      });
    });
  }

  /** Sends a command whose reply is not awaited (id 0 is never pending). */
  notify(command: BackendCommand): void {
    if (!this.running || !this.child.connected) return;
    this.child.send({ ...command, id: 0 }, () => undefined);
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      this.child.kill(signal);
    } catch {
      // The process exited between the check and the kill.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backend: a stable identity (name, host:port) over successive processes.

interface BackendSpec {
  name: string;
  host: string;
  greeting: string;
  labels: Record<string, string>;
  healthService: HealthServiceMode;
}

class ChildBackend implements Backend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly address: string;
  readonly greeting: string;
  readonly labels: Readonly<Record<string, string>>;

  private constructor(
    private readonly config: BackendConfig,
    private process: BackendProcess,
    private readonly readyTimeoutMs: number,
  ) {
    this.name = config.name;
    this.host = config.host;
    this.port = config.port;
    this.address = `${config.host}:${config.port}`;
    this.greeting = config.greeting;
    this.labels = Object.freeze({ ...config.labels });
  }

  static async start(
    spec: BackendSpec,
    port: number,
    readyTimeoutMs: number,
  ): Promise<ChildBackend> {
    const config: BackendConfig = { ...spec, port, sigtermGraceMs: DEFAULT_GRACE_MS };
    const child = await BackendProcess.start(config, readyTimeoutMs);
    return new ChildBackend({ ...config, port: child.port }, child, readyTimeoutMs);
  }

  get pid(): number {
    return this.process.pid;
  }

  get isRunning(): boolean {
    return this.process.running;
  }

  get isFrozen(): boolean {
    return this.process.frozen;
  }

  get exited(): Promise<BackendExit> {
    return this.process.exited;
  }

  stats(): Promise<BackendStats> {
    return this.process.request({ cmd: 'stats' });
  }

  async resetStats(): Promise<void> {
    await this.process.request({ cmd: 'resetStats' });
  }

  async setFailRate(rate: number, code: GrpcStatus = GrpcStatus.UNAVAILABLE): Promise<void> {
    if (!(rate >= 0 && rate <= 1))
      throw new RangeError(`${this.name}: setFailRate "rate" must be in 0..1 (got ${rate})`);
    const numericCode: number = code;
    if (!Number.isInteger(numericCode) || numericCode <= 0 || numericCode > 16) {
      throw new RangeError(
        `${this.name}: setFailRate "code" must be a non-OK grpc status (got ${code})`,
      );
    }
    await this.process.request({ cmd: 'setFailRate', rate, code });
  }

  async setDelay(ms: number): Promise<void> {
    if (!(ms >= 0 && Number.isFinite(ms)))
      throw new RangeError(`${this.name}: setDelay "ms" must be ≥ 0 (got ${ms})`);
    await this.process.request({ cmd: 'setDelay', ms });
  }

  async hang(on = true): Promise<void> {
    await this.process.request({ cmd: 'hang', on });
  }

  async setHealth(status: HealthStatus, service = ''): Promise<void> {
    await this.process.request({ cmd: 'setHealth', service, status });
  }

  async stopGracefully(graceMs = DEFAULT_GRACE_MS): Promise<BackendExit> {
    const child = this.process;
    if (child.running) {
      if (child.frozen) {
        child.signal('SIGCONT');
        child.frozen = false;
      }
      child.notify({ cmd: 'stop', graceMs });
    }
    try {
      return await withTimeout(child.exited, graceMs + EXIT_MARGIN_MS, `${child.label} to stop`);
    } catch (error) {
      child.signal('SIGKILL');
      await withTimeout(child.exited, EXIT_MARGIN_MS, `${child.label} to exit`).catch(
        () => undefined,
      );
      throw new BackendControlError(
        'TIMEOUT',
        `${child.label} did not stop within ${graceMs} ms; killed it`,
        {
          cause: error,
        },
      );
    }
  }

  kill(): Promise<BackendExit> {
    const child = this.process;
    child.signal('SIGKILL');
    return withTimeout(child.exited, EXIT_MARGIN_MS, `${child.label} to exit after SIGKILL`);
  }

  async freeze(): Promise<void> {
    const child = this.process;
    if (!child.running)
      throw new BackendControlError('NOT_RUNNING', `${child.label} is not running`);
    if (child.frozen) return;
    child.signal('SIGSTOP');
    child.frozen = true;
    await waitFor(
      async () => {
        const state = await processState(child.pid);
        return state === undefined || state === 'T' || state === 'Z';
      },
      {
        timeoutMs: CONTROL_TIMEOUT_MS,
        intervalMs: 2,
        message: `${child.label} to be stopped by SIGSTOP`,
      },
    );
  }

  async thaw(): Promise<void> {
    const child = this.process;
    if (!child.frozen) return;
    child.signal('SIGCONT');
    child.frozen = false;
    await child.request({ cmd: 'ping' });
  }

  async restart(): Promise<void> {
    if (this.process.running) await this.kill();
    this.process = await BackendProcess.start(this.config, this.readyTimeoutMs);
  }
}

// ---------------------------------------------------------------------------------------------
// A set of backends on one port.

function specFor(
  index: number,
  firstHost: number,
  network: string,
  options: AddBackendOptions,
): BackendSpec {
  const host = firstHost + index;
  if (host > 254)
    throw new RangeError(
      `backend #${index + 1} would be on ${network}.${host}; the last usable host is 254`,
    );
  return {
    name: options.name ?? `backend-${index + 1}`,
    host: `${network}.${host}`,
    greeting: options.greeting ?? DEFAULT_GREETINGS[index % DEFAULT_GREETINGS.length] ?? 'Hello',
    labels: { ...options.labels },
    healthService: options.healthService ?? 'watch',
  };
}

class ChildBackendSet implements BackendSet {
  private readonly members: ChildBackend[];

  constructor(
    members: ChildBackend[],
    readonly port: number,
    private readonly firstHost: number,
    private readonly network: string,
    private readonly readyTimeoutMs: number,
  ) {
    this.members = members;
  }

  get backends(): readonly Backend[] {
    return this.members;
  }

  get addresses(): string[] {
    return this.members.map((backend) => backend.address);
  }

  get ipv4Target(): string {
    return `ipv4:${this.addresses.join(',')}`;
  }

  backend(name: string): Backend {
    const found = this.members.find((backend) => backend.name === name);
    if (found === undefined) {
      throw new Error(
        `no backend named "${name}" (have ${this.members.map((b) => b.name).join(', ')})`,
      );
    }
    return found;
  }

  async add(options: AddBackendOptions = {}): Promise<Backend> {
    const spec = specFor(this.members.length, this.firstHost, this.network, options);
    const backend = await ChildBackend.start(spec, this.port, this.readyTimeoutMs);
    this.members.push(backend);
    return backend;
  }

  async stopAll(): Promise<void> {
    const results = await Promise.allSettled(this.members.map((backend) => backend.kill()));
    const failed = results.filter(
      (result): result is PromiseRejectedResult => result.status === 'rejected',
    );
    if (failed.length > 0) {
      throw new AggregateError(
        failed.map((result): unknown => result.reason),
        `stopAll: ${failed.length} backend(s) did not exit`,
      );
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stopAll();
  }
}

function validate(options: StartBackendsOptions): void {
  const { count, firstHost = DEFAULT_FIRST_HOST, port } = options;
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(`startBackends: "count" must be an integer ≥ 1 (got ${count})`);
  }
  if (!Number.isInteger(firstHost) || firstHost < 1 || firstHost + count - 1 > 254) {
    throw new RangeError(
      `startBackends: "firstHost" must be an integer with firstHost ≥ 1 and firstHost + count - 1 ≤ 254 (got ${firstHost}, count ${count})`,
    );
  }
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new RangeError(`startBackends: "port" must be an integer in 1..65535 (got ${port})`);
  }
  const { network } = options;
  if (network !== undefined && !/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(network)) {
    throw new RangeError(
      `startBackends: "network" must be three octets like "10.244.0" (got "${network}")`,
    );
  }
}

async function startOnce(
  options: StartBackendsOptions,
  port: number | undefined,
): Promise<ChildBackendSet> {
  const firstHost = options.firstHost ?? DEFAULT_FIRST_HOST;
  const network = options.network ?? '127.0.0';
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const specs: BackendSpec[] = [];
  for (let index = 0; index < options.count; index++) {
    const perIndex: AddBackendOptions = {};
    const name = options.names?.[index];
    const greeting = options.greetings?.[index];
    const labels = options.labels?.[index];
    if (name !== undefined) perIndex.name = name;
    if (greeting !== undefined) perIndex.greeting = greeting;
    if (labels !== undefined) perIndex.labels = labels;
    if (options.healthService !== undefined) perIndex.healthService = options.healthService;
    specs.push(specFor(index, firstHost, network, perIndex));
  }
  const [firstSpec, ...restSpecs] = specs;
  if (firstSpec === undefined) throw new RangeError('startBackends: "count" must be ≥ 1');

  // The first backend learns a free port; the others then start in parallel on that same port.
  const first = await ChildBackend.start(firstSpec, port ?? 0, readyTimeoutMs);
  const rest = await Promise.allSettled(
    restSpecs.map((spec) => ChildBackend.start(spec, first.port, readyTimeoutMs)),
  );
  const started = [first];
  const errors: unknown[] = [];
  for (const result of rest) {
    if (result.status === 'fulfilled') started.push(result.value);
    else errors.push(result.reason);
  }
  if (errors.length > 0) {
    await Promise.allSettled(started.map((backend) => backend.kill()));
    // Prefer a real failure over a port clash so that only clashes are retried.
    throw (
      errors.find(
        (error) => !(error instanceof BackendStartError && error.code === 'EADDRINUSE'),
      ) ?? errors[0]
    );
  }
  return new ChildBackendSet(started, first.port, firstHost, network, readyTimeoutMs);
}

/**
 * Starts `count` backends on 127.0.0.<firstHost> … on one port and resolves once all listen.
 * Without a fixed `port`, a port clash on any IP (another test file's backends) is retried on a
 * new port, up to 5 times.
 */
export async function startBackends(options: StartBackendsOptions): Promise<BackendSet> {
  validate(options);
  const attempts = options.port === undefined ? PORT_ATTEMPTS : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, options.port);
    } catch (error) {
      const clash = error instanceof BackendStartError && error.code === 'EADDRINUSE';
      if (!clash || attempt >= attempts) throw error;
    }
  }
}
