/**
 * A real DNS server for tests: BIND 9 (`named -g`) in a temp dir on 127.0.0.1 (and ::1) at a free
 * port, authoritative for one zone that tests change live with nsupdate. Installs bind9 from
 * Debian when it is missing; with CI=true a missing or uninstallable named fails, never skips.
 *
 *   const dns = await startBind9({ records: ['api 1 IN A 127.0.0.2'] });
 *   await dns.update('add api.svc.test. 1 A 127.0.0.3');
 *   await dns.stop(); await dns.start();   // an outage, then the same server back
 *   await dns.dispose();                    // kill by PID, temp dir removed
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ensureTools, requireTools, type ToolSpec } from './system-tools';
import * as dnsPacket from 'dns-packet';

export interface Bind9Options {
  /** The zone served (default `svc.test`). */
  readonly zone?: string;
  /** Zone file lines after the SOA and NS records, e.g. `api 1 IN A 127.0.0.2`. */
  readonly records?: readonly string[];
  /** `$TTL` and the SOA minimum (negative-caching TTL), in seconds (default 1). */
  readonly ttl?: number;
  /**
   * Also serve an empty root zone, so names outside `zone` get NXDOMAIN (as from a recursive
   * resolver) instead of REFUSED (default true).
   */
  readonly rootZone?: boolean;
}

export interface Bind9 {
  readonly zone: string;
  readonly port: number;
  /** `127.0.0.1:<port>`, for a target's authority or a resolv.conf `nameserver` line. */
  readonly address: string;
  readonly dir: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** nsupdate commands without the leading `update`: `add api.svc.test. 1 A 127.0.0.4`. */
  update(...commands: string[]): Promise<void>;
  /** Stops named (SIGTERM, then SIGKILL after 5 s); the zone and its journal stay. */
  stop(): Promise<void>;
  /** Starts named again on the same port with the same zone (and its live changes). */
  start(): Promise<void>;
  /** named's output so far (the last 64 KiB). */
  logs(): string;
  /** Stops named and removes the temp dir. Idempotent. */
  dispose(): Promise<void>;
}

export class Bind9UnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Bind9UnavailableError';
  }
}

interface Tools {
  readonly named: string;
  readonly nsupdate: string;
}

const MAX_LOG = 64 * 1024;
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

const TOOLS: ToolSpec<keyof Tools> = {
  binaries: ['named', 'nsupdate'],
  packages: ['bind9', 'bind9-dnsutils'],
  unavailable: (message) => new Bind9UnavailableError(message),
};

/** named and nsupdate, installed from Debian if missing. Throws `Bind9UnavailableError`. */
export function ensureBind9(): Tools {
  return ensureTools(TOOLS);
}

/**
 * For a test that needs bind9: true when it can run. Without it the test is skipped — except with
 * CI=true, where it throws so the test fails.
 */
export function requireBind9(t: TestContext): boolean {
  return requireTools(t, TOOLS);
}

async function canBind(port: number, host: string, type: 'tcp' | 'udp'): Promise<boolean> {
  return new Promise((resolve) => {
    if (type === 'tcp') {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, host, () => server.close(() => resolve(true)));
    } else {
      const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, host, () => socket.close(() => resolve(true)));
    }
  });
}

/** A port free for TCP and UDP on 127.0.0.1 and ::1. */
async function freePort(): Promise<number> {
  for (;;) {
    const server = net.createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    });
    await new Promise((resolve) => server.close(resolve));
    const checks = await Promise.all([
      canBind(port, '127.0.0.1', 'tcp'),
      canBind(port, '127.0.0.1', 'udp'),
      canBind(port, '::1', 'tcp'),
      canBind(port, '::1', 'udp'),
    ]);
    if (checks.every(Boolean)) return port;
  }
}

function zoneFile(zone: string, ttl: number, records: readonly string[]): string {
  return [
    `$TTL ${ttl}`,
    `@ IN SOA ns.${zone}. admin.${zone}. 1 60 60 600 ${ttl}`,
    `@ IN NS ns.${zone}.`,
    `ns IN A 127.0.0.1`,
    ...records,
    '',
  ].join('\n');
}

function namedConf(dir: string, port: number, zone: string, rootZone: boolean): string {
  const zones = [
    `zone "${zone}" { type primary; file "zone.db"; allow-update { 127.0.0.1; ::1; }; };`,
    rootZone ? `zone "." { type primary; file "root.db"; };` : '',
  ];
  return `options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  managed-keys-directory "${dir}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 port ${port} { ::1; };
  recursion no;
  dnssec-validation no;
  notify no;
  allow-transfer { none; };
};
controls { };
${zones.join('\n')}
`;
}

/** One SOA query for the zone: true when this named answers it. */
async function probe(port: number, zone: string): Promise<boolean> {
  const socket = dgram.createSocket('udp4');
  const id = Math.floor(Math.random() * 0xffff);
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 1_000);
      socket.on('error', () => {
        clearTimeout(timer);
        resolve(false);
      });
      socket.on('message', (message) => {
        try {
          const answer = dnsPacket.decode(message);
          if (answer.id !== id) return;
          clearTimeout(timer);
          resolve(answer.answers?.some((a) => a.type === 'SOA') === true);
        } catch {
          // Not ours; keep waiting.
        }
      });
      socket.connect(port, '127.0.0.1', () => {
        socket.send(
          dnsPacket.encode({ type: 'query', id, questions: [{ type: 'SOA', name: zone }] }),
        );
      });
    });
  } finally {
    socket.close();
  }
}

class Bind9Server implements Bind9 {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private output = '';
  private disposed = false;

  constructor(
    private readonly tools: Tools,
    readonly zone: string,
    readonly dir: string,
    private portNumber: number,
    private readonly rootZone: boolean,
  ) {}

  get port(): number {
    return this.portNumber;
  }
  get address(): string {
    return `127.0.0.1:${this.portNumber}`;
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

  private log(text: string): void {
    // The build-options line is kilobytes long and says nothing about a test.
    const useful = text.replace(/^.* built with .*\n?/m, '');
    this.output = (this.output + useful).slice(-MAX_LOG);
  }

  async start(): Promise<void> {
    if (this.child) return;
    for (let attempt = 1; ; attempt++) {
      const problem = await this.launch();
      if (problem === undefined) return;
      await this.stop();
      if (!problem.retry || attempt >= 5) {
        throw new Error(
          `bind9 did not start on port ${this.portNumber}: ${problem.message}\n--- named output ---\n${this.output.slice(-4000)}`,
        );
      }
      this.portNumber = await freePort();
      writeFileSync(
        join(this.dir, 'named.conf'),
        namedConf(this.dir, this.portNumber, this.zone, this.rootZone),
      );
    }
  }

  /** Starts named and waits for "running" (or its exit), then checks it answers. */
  private async launch(): Promise<{ message: string; retry: boolean } | undefined> {
    const child = spawn(this.tools.named, ['-c', join(this.dir, 'named.conf'), '-g', '-n', '1'], {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child);
    child.unref();
    (child.stdout as net.Socket | null)?.unref();
    (child.stderr as net.Socket | null)?.unref();
    let seen = '';
    const ready = new Promise<'running' | 'exited' | 'timeout'>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 15_000);
      const onData = (data: Buffer): void => {
        const text = data.toString('utf8');
        this.log(text);
        seen += text;
        if (/\d running\r?\n/.test(seen)) {
          clearTimeout(timer);
          resolve('running');
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve('exited');
      });
      child.once('error', (error) => {
        this.log(`spawn error: ${error.message}\n`);
      });
    });
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => {
      live.delete(child);
      if (this.child === child) this.child = undefined;
    });
    const state = await ready;
    if (state !== 'running') {
      return {
        message: `named ${state === 'exited' ? 'exited' : 'was not running after 15 s'}`,
        retry: /address in use/i.test(seen),
      };
    }
    if (/address in use/i.test(seen)) return { message: 'port taken', retry: true };
    for (let i = 0; i < 3; i++) {
      if (await probe(this.portNumber, this.zone)) return undefined;
    }
    return { message: `no SOA answer for ${this.zone}`, retry: true };
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(killer);
    this.child = undefined;
  }

  async update(...commands: string[]): Promise<void> {
    const script = [
      `server 127.0.0.1 ${this.portNumber}`,
      `zone ${this.zone}`,
      ...commands.map((c) => `update ${c}`),
      'send',
      '',
    ].join('\n');
    const child = spawn(this.tools.nsupdate, ['-t', '5', '-u', '2'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`nsupdate timed out: ${commands.join('; ')}`));
      }, 15_000);
      child.once('error', reject);
      child.once('exit', (status) => {
        clearTimeout(timer);
        resolve(status);
      });
      child.stdin.end(script);
    });
    if (code !== 0) {
      throw new Error(`nsupdate failed (exit ${code}) for ${commands.join('; ')}: ${output}`);
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts bind9 serving `options.zone`; throws (with named's output) if it does not come up. */
export async function startBind9(options: Bind9Options = {}): Promise<Bind9> {
  const found = ensureBind9();
  const zone = options.zone ?? 'svc.test';
  const ttl = options.ttl ?? 1;
  const rootZone = options.rootZone ?? true;
  const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-bind9-'));
  try {
    const port = await freePort();
    writeFileSync(join(dir, 'zone.db'), zoneFile(zone, ttl, options.records ?? []));
    writeFileSync(
      join(dir, 'root.db'),
      `$TTL ${ttl}\n@ IN SOA ns.root. admin.root. 1 60 60 600 ${ttl}\n@ IN NS ns.root.\nns.root. IN A 127.0.0.1\n`,
    );
    writeFileSync(join(dir, 'named.conf'), namedConf(dir, port, zone, rootZone));
    const server = new Bind9Server(found, zone, dir, port, rootZone);
    try {
      await server.start();
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

/** Runs `body`; if it throws, prints named's output before rethrowing. */
export async function printBind9LogsOnFailure<T>(
  dns: Bind9 | undefined,
  body: () => Promise<T>,
): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (dns)
      process.stderr.write(`--- named output (port ${dns.port}) ---\n${dns.logs().slice(-8000)}\n`);
    throw error;
  }
}
