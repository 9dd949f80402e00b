/** What the numbers were measured on. */
import { readFileSync } from 'node:fs';
import * as os from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  grpcJs: string;
  os: string;
  kernel: string;
  /** 1-minute load average when the bench started. */
  loadAverage: number;
  nginx: string | null;
  haproxy: string | null;
}

function grpcJsVersion(): string {
  try {
    const manifest = require.resolve('@grpc/grpc-js/package.json');
    const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { version?: unknown };
    return typeof parsed.version === 'string' ? parsed.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function osName(): string {
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    const match = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release);
    if (match?.[1]) return match[1];
  } catch {
    // Not Linux, or no os-release: fall through.
  }
  return `${os.type()} ${os.release()}`;
}

export function machineInfo(proxies: {
  nginx: string | null;
  haproxy: string | null;
}): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    grpcJs: grpcJsVersion(),
    os: osName(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverage: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
    nginx: proxies.nginx,
    haproxy: proxies.haproxy,
  };
}
