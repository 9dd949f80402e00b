/**
 * A non-Node server (nginx, HAProxy) run in the foreground as a child of the bench: started with
 * a readiness deadline, stopped by its PID (SIGTERM, then SIGKILL), and never left behind — the
 * process 'exit' hook signals whatever is still running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { childPids } from './proc-cpu';

const OUTPUT_TAIL_CHARS = 4096;
const STOP_GRACE_MS = 5000;
const live = new Set<ServerProcess>();

process.on('exit', () => {
  // Synchronous context: only signals are possible. SIGTERM lets nginx's master take its workers
  // down with it (a SIGKILLed master would orphan them).
  for (const server of live) server.signal('SIGTERM');
});

export class ServerStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServerStartError';
  }
}

export interface StartOptions {
  name: string;
  command: string;
  args: readonly string[];
  cwd: string;
  /** Polled until true (a TCP connect, typically). */
  ready: () => Promise<boolean>;
  readyTimeoutMs: number;
}

export class ServerProcess {
  private output = '';
  private readonly exitPromise: Promise<void>;
  private exited = false;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', () => {
        this.exited = true;
        live.delete(this);
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get isRunning(): boolean {
    return !this.exited;
  }

  /** The last few KB of its stdout and stderr. */
  get outputTail(): string {
    return this.output;
  }

  static async start(options: StartOptions): Promise<ServerProcess> {
    const child = spawn(options.command, options.args, {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new ServerProcess(options.name, child);
    live.add(server);
    let spawnFailure: Error | undefined;
    child.once('error', (error) => {
      spawnFailure = error;
    });
    const deadline = Date.now() + options.readyTimeoutMs;
    try {
      for (;;) {
        if (spawnFailure) {
          throw new ServerStartError(`${options.name}: could not start: ${spawnFailure.message}`);
        }
        if (server.exited) {
          throw new ServerStartError(
            `${options.name} exited before it was ready:\n${server.outputTail.trim()}`,
          );
        }
        if (await options.ready()) return server;
        if (Date.now() > deadline) {
          throw new ServerStartError(
            `${options.name} not ready within ${options.readyTimeoutMs} ms:\n${server.outputTail.trim()}`,
          );
        }
        await sleep(20);
      }
    } catch (error) {
      await server.stop();
      throw error;
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (this.exited || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM, then SIGKILL (the process and any children it forked) after a grace period. */
  async stop(): Promise<void> {
    if (this.exited || this.child.pid === undefined) return;
    const children = childPids(this.pid);
    this.signal('SIGTERM');
    const timer = new Promise<boolean>((resolve) => {
      setTimeout(() => resolve(false), STOP_GRACE_MS).unref();
    });
    const done = await Promise.race([this.exitPromise.then(() => true), timer]);
    if (!done) {
      this.signal('SIGKILL');
      await this.exitPromise;
    }
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Exited with its parent, as it should.
      }
    }
  }
}

/** Resolves true when a TCP connection to host:port is accepted. */
export function tcpAccepts(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** A port that was free on `host` a moment ago (bind to 0, read it, close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
