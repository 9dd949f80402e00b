/**
 * A real DNS server for tests: BIND 9 (`named -g`) in a temp dir on 127.0.0.1 (and ::1) at a free
 * port, authoritative for one zone that tests change live with nsupdate. Installs bind9 from
 * Debian when it is missing; with CI=true a missing or uninstallable named fails, never skips.
 * named logs to stderr, which goes to `named.log` in the temp dir (kept when it failed).
 *
 *   const dns = await startBind9({ records: ['api 1 IN A 127.0.0.2'] });
 *   await dns.update('add api.svc.test. 1 A 127.0.0.3');
 *   await dns.stop(); await dns.start();   // an outage, then the same server back
 *   await dns.dispose();                    // kill by PID, temp dir removed
 */
import * as dgram from 'node:dgram';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  freePort,
  makeServerDir,
  removeServerDir,
  run,
  ManagedServer,
  ServerProcess,
  ServerStartError,
  type RunningServer,
} from './server-process';
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
  /**
   * named's `max-records-per-type` (BIND 9.18.28+ refuses more than 100 records of one type per
   * name by default); 0 for no limit. Default: named's own.
   */
  readonly maxRecordsPerType?: number;
}

export interface Bind9 extends RunningServer {
  readonly zone: string;
  readonly port: number;
  /** `127.0.0.1:<port>`, for a target's authority or a resolv.conf `nameserver` line. */
  readonly address: string;
  /** nsupdate commands without the leading `update`: `add api.svc.test. 1 A 127.0.0.4`. */
  update(...commands: string[]): Promise<void>;
  /** Stops named (SIGTERM, then SIGKILL after 5 s); the zone and its journal stay. */
  stop(): Promise<void>;
  /** Starts named again on the same port with the same zone (and its live changes). */
  start(): Promise<void>;
  /** named's output so far (its log's last `maxBytes`, default 64 KiB). */
  logs(maxBytes?: number): string;
  /** Stops named and removes the temp dir (kept when `failed` or GRPC_LB_KEEP_SERVERS=1). Idempotent. */
  dispose(failed?: boolean): Promise<void>;
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

/** A port free for TCP and UDP on 127.0.0.1 and ::1 (named listens on all four). */
async function freeDnsPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
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

function namedConf(
  dir: string,
  port: number,
  zone: string,
  rootZone: boolean,
  maxRecordsPerType: number | undefined,
): string {
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
  allow-transfer { none; };${maxRecordsPerType === undefined ? '' : `\n  max-records-per-type ${maxRecordsPerType};`}
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

/** How long one launch of named has to log "running" and answer an SOA query. */
const READY_MS = 15_000;

/** One launch of named: where its output starts in the log, and why it was given up (if so). */
interface Launch {
  readonly logOffset: number;
  failedProbes: number;
  problem: string | undefined;
}

let nsupdateScripts = 0;

class Bind9Server extends ManagedServer implements Bind9 {
  constructor(
    named: ServerProcess,
    dir: string,
    private readonly tools: Tools,
    readonly zone: string,
    private portNumber: number,
    private readonly rootZone: boolean,
    private readonly maxRecordsPerType: number | undefined,
  ) {
    super(named, dir);
  }

  get port(): number {
    return this.portNumber;
  }
  get address(): string {
    return `127.0.0.1:${this.portNumber}`;
  }

  private get logFile(): string {
    return this.process.options.logFile;
  }

  override logs(maxBytes?: number): string {
    // The build-options line is kilobytes long and says nothing about a test.
    return super.logs(maxBytes).replace(/^.* built with .*\n?/m, '');
  }

  /** named's output since `offset` in its log. */
  private outputSince(offset: number): string {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile).subarray(offset).toString('utf8');
  }

  /** Starts named; on a port taken (or no SOA answer) again on a new port, up to 5 times. */
  async start(): Promise<void> {
    if (this.process.running) return;
    for (let attempt = 1; ; attempt++) {
      const launch: Launch = {
        logOffset: existsSync(this.logFile) ? statSync(this.logFile).size : 0,
        failedProbes: 0,
        problem: undefined,
      };
      this.process.start();
      try {
        await this.process.waitReady(() => this.ready(launch), READY_MS, 25);
        return;
      } catch {
        const status = this.process.exitStatus;
        const problem =
          launch.problem ??
          (status
            ? `named exited (code ${status.code ?? 'none'}, signal ${status.signal ?? 'none'})`
            : `named was not ready after ${READY_MS / 1000} s`);
        await this.process.kill();
        const retry =
          launch.problem !== undefined ||
          /address in use/i.test(this.outputSince(launch.logOffset));
        if (!retry || attempt >= 5) {
          throw new ServerStartError(
            'bind9',
            `did not start on port ${this.portNumber}: ${problem}`,
            this.logs(8_000),
            this.logFile,
          );
        }
        this.portNumber = await freeDnsPort();
        writeFileSync(
          join(this.dir, 'named.conf'),
          namedConf(this.dir, this.portNumber, this.zone, this.rootZone, this.maxRecordsPerType),
        );
      }
    }
  }

  /** Ready: named logged "running" (and no port taken), then answers an SOA query for the zone. */
  private async ready(launch: Launch): Promise<boolean> {
    const output = this.outputSince(launch.logOffset);
    if (/address in use/i.test(output)) return this.giveUp(launch, 'port taken');
    if (!/\d running\r?\n/.test(output)) return false;
    if (await probe(this.portNumber, this.zone)) return true;
    launch.failedProbes += 1;
    if (launch.failedProbes < 3) return false;
    return this.giveUp(launch, `no SOA answer for ${this.zone}`);
  }

  /** Ends a launch that cannot become ready: `waitReady` then fails at once and `start` retries. */
  private async giveUp(launch: Launch, problem: string): Promise<false> {
    launch.problem = problem;
    await this.process.kill();
    return false;
  }

  async update(...commands: string[]): Promise<void> {
    const script = join(this.dir, `nsupdate-${++nsupdateScripts}.txt`);
    writeFileSync(
      script,
      [
        `server 127.0.0.1 ${this.portNumber}`,
        `zone ${this.zone}`,
        ...commands.map((c) => `update ${c}`),
        'send',
        '',
      ].join('\n'),
    );
    try {
      await run(this.tools.nsupdate, ['-t', '5', '-u', '2', script], {
        timeoutMs: 15_000,
        combined: true,
      });
    } catch (error) {
      throw new Error(`nsupdate failed for ${commands.join('; ')}: ${(error as Error).message}`);
    } finally {
      rmSync(script, { force: true });
    }
  }
}

/** Starts bind9 serving `options.zone`; throws (with named's output) if it does not come up. */
export async function startBind9(options: Bind9Options = {}): Promise<Bind9> {
  const found = ensureBind9();
  const zone = options.zone ?? 'svc.test';
  const ttl = options.ttl ?? 1;
  const rootZone = options.rootZone ?? true;
  const dir = makeServerDir('bind9');
  let server: Bind9Server | undefined;
  try {
    const port = await freeDnsPort();
    writeFileSync(join(dir, 'zone.db'), zoneFile(zone, ttl, options.records ?? []));
    writeFileSync(
      join(dir, 'root.db'),
      `$TTL ${ttl}\n@ IN SOA ns.root. admin.root. 1 60 60 600 ${ttl}\n@ IN NS ns.root.\nns.root. IN A 127.0.0.1\n`,
    );
    writeFileSync(
      join(dir, 'named.conf'),
      namedConf(dir, port, zone, rootZone, options.maxRecordsPerType),
    );
    const named = new ServerProcess({
      name: 'bind9',
      command: found.named,
      args: ['-c', join(dir, 'named.conf'), '-g', '-n', '1'],
      cwd: dir,
      logFile: join(dir, 'named.log'),
    });
    server = new Bind9Server(named, dir, found, zone, port, rootZone, options.maxRecordsPerType);
    await server.start();
    return server;
  } catch (error) {
    if (server) await server.dispose(true);
    else removeServerDir(dir, 'bind9', true);
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
