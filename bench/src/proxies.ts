/**
 * The proxies the bench compares against: installed from Debian when missing, started in the
 * foreground from a temp directory on 127.0.0.1, checked for readiness with a deadline.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { type HaproxyFrontend, type Upstream, haproxyConfig, nginxConfig } from './proxy-config';
import { ServerProcess, ServerStartError, tcpAccepts } from './server-process';

export const NGINX_BIN = '/usr/sbin/nginx';
export const HAPROXY_BIN = '/usr/sbin/haproxy';
const READY_TIMEOUT_MS = 10_000;

export interface ProxyAvailability {
  nginx: { ok: true; version: string } | { ok: false; reason: string };
  haproxy: { ok: true; version: string } | { ok: false; reason: string };
}

type Log = (line: string) => void;

function aptGet(args: string[], log: Log): boolean {
  log(`running apt-get ${args.join(' ')}`);
  const result = spawnSync('apt-get', args, {
    // apt's own output goes to stderr: stdout's last line belongs to the bench's JSON.
    stdio: ['ignore', 2, 2],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.error) log(`apt-get could not run: ${result.error.message}`);
  return !result.error && result.status === 0;
}

function install(packages: string[], log: Log): boolean {
  const args = ['install', '-y', '--no-install-recommends', ...packages];
  if (aptGet(args, log)) return true;
  // A fresh machine may have no package lists yet.
  return aptGet(['update'], log) && aptGet(args, log);
}

function versionOf(binary: string, flag: string): string {
  const result = spawnSync(binary, [flag], { encoding: 'utf8' });
  const text = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  const match = /(nginx\/\S+|HAProxy version \S+)/.exec(text);
  return match?.[1] ?? text.split('\n')[0]?.trim() ?? 'unknown';
}

/**
 * Installs nginx (nginx-light, else nginx) and HAProxy with apt-get when their binaries are
 * missing. Needs root; without it, or without a package source, the proxy scenarios are skipped
 * with the reason in the report rather than failing the whole bench.
 */
export function ensureProxies(log: Log): ProxyAvailability {
  const missing: string[] = [];
  if (!existsSync(NGINX_BIN)) missing.push('nginx');
  if (!existsSync(HAPROXY_BIN)) missing.push('haproxy');
  let installNote = '';
  if (missing.length > 0) {
    if (process.getuid?.() !== 0) {
      installNote = `not root, so apt-get cannot install ${missing.join(' and ')}`;
    } else {
      const packages = missing.map((name) => (name === 'nginx' ? 'nginx-light' : name));
      let installed = install(packages, log);
      if (!installed && missing.includes('nginx')) {
        // nginx-light is gone from newer Debian releases; the plain package has the same modules.
        installed = install(missing, log);
      }
      if (!installed) installNote = 'apt-get install failed (see stderr)';
    }
  }
  const state = (binary: string, flag: string) =>
    existsSync(binary)
      ? ({ ok: true, version: versionOf(binary, flag) } as const)
      : ({ ok: false, reason: `${binary} missing: ${installNote}` } as const);
  return { nginx: state(NGINX_BIN, '-v'), haproxy: state(HAPROXY_BIN, '-v') };
}

export async function startNginx(
  dir: string,
  listenPort: number,
  upstreams: readonly Upstream[],
  keepalive: number,
): Promise<ServerProcess> {
  await mkdir(dir, { recursive: true });
  // nginx workers drop to an unprivileged user when started as root; they must reach the dir.
  await chmod(dir, 0o755);
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(conf, nginxConfig({ dir, listenPort, upstreams, keepalive }));
  const args = ['-p', dir, '-e', 'stderr', '-c', conf];
  const check = spawnSync(NGINX_BIN, [...args, '-t', '-q'], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new ServerStartError(`nginx rejected ${conf}:\n${check.stderr}`);
  }
  return ServerProcess.start({
    name: 'nginx',
    command: NGINX_BIN,
    args: [...args, '-g', 'daemon off;'],
    cwd: dir,
    ready: () => tcpAccepts('127.0.0.1', listenPort),
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
}

export async function startHaproxy(
  dir: string,
  name: string,
  frontends: readonly HaproxyFrontend[],
): Promise<ServerProcess> {
  await mkdir(dir, { recursive: true });
  const conf = path.join(dir, `${name}.cfg`);
  await writeFile(conf, haproxyConfig(frontends));
  const check = spawnSync(HAPROXY_BIN, ['-c', '-q', '-f', conf], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new ServerStartError(`haproxy rejected ${conf}:\n${check.stdout}${check.stderr}`);
  }
  return ServerProcess.start({
    name,
    command: HAPROXY_BIN,
    // -db: stay in the foreground, so the PID we hold is the proxy itself.
    args: ['-db', '-f', conf],
    cwd: dir,
    ready: async () => {
      for (const frontend of frontends) {
        if (!(await tcpAccepts('127.0.0.1', frontend.listenPort))) return false;
      }
      return true;
    },
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
}
