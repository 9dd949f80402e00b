#!/usr/bin/env node
// Installs the real servers the test suite runs against, once, before the tests start (so test
// files running in parallel do not race for apt's lock or build the same Go module twice). Only
// Node built-ins. Two kinds:
// - Debian packages (bind9, etcd 3.4, nginx, HAProxy): each entry names the binaries that must
//   exist and the packages that provide them;
// - Go modules (Consul, kube-apiserver, etcd 3.6, grpcurl, ghz, the etcd interop peers): built
//   into ~/.cache/grpc-lb-testbin by the compiled test/support/testbin-cli.js (so after the
//   build), each once per machine and version — cold, about 10 minutes on 2 cores.
//
//   node scripts/provision.mjs          installs and builds what is missing, exits 1 if it cannot
//
// Tests still check for their servers themselves; with CI=true a missing one fails them.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

const SERVERS = [
  {
    name: 'bind9 (DNS)',
    binaries: ['/usr/sbin/named', '/usr/bin/nsupdate'],
    packages: ['bind9', 'bind9-dnsutils'],
  },
  {
    name: 'etcd',
    binaries: ['/usr/bin/etcd', '/usr/bin/etcdctl'],
    packages: ['etcd-server', 'etcd-client'],
  },
  {
    name: 'nginx and HAProxy (proxy config tests, bench)',
    binaries: ['/usr/sbin/nginx', '/usr/sbin/haproxy'],
    packages: ['nginx-light', 'haproxy'],
  },
];

function log(message) {
  process.stderr.write(`[provision] ${message}\n`);
}

function apt(args) {
  const result = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

function installPackages() {
  const missing = SERVERS.filter((s) => !s.binaries.every((b) => existsSync(b)));
  if (missing.length === 0) {
    log(`all present: ${SERVERS.map((s) => s.name).join(', ')}`);
    return true;
  }
  const packages = missing.flatMap((s) => s.packages);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    log(`not root: cannot install ${packages.join(' ')}; the tests needing them will say so`);
    return false;
  }
  log(`installing ${packages.join(' ')}`);
  const install = ['install', '-y', '--no-install-recommends', ...packages];
  if (!apt(install) && !(apt(['update']) && apt(install))) {
    log(`apt-get install ${packages.join(' ')} failed`);
    return false;
  }
  const still = SERVERS.filter((s) => !s.binaries.every((b) => existsSync(b)));
  if (still.length > 0) {
    log(`still missing after install: ${still.map((s) => s.name).join(', ')}`);
    return false;
  }
  return true;
}

function buildGoModules() {
  const cli = join(root, 'test', 'dist', 'support', 'testbin-cli.js');
  if (!existsSync(cli)) {
    log(`${cli} is missing: run the build first`);
    return false;
  }
  const started = Date.now();
  log('building the Go test servers and tools that are not cached yet (test/testbin)');
  // Go's build output goes to a log file: a cold build prints thousands of lines.
  const result = spawnSync(process.execPath, [cli, 'build'], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = Math.round((Date.now() - started) / 1000);
  if (result.status !== 0) {
    log(
      `building the Go test servers failed after ${seconds} s:\n${String(result.stderr).slice(-6000)}`,
    );
    return false;
  }
  log(`Go test servers and tools ready (${seconds} s)`);
  return true;
}

const packagesOk = installPackages();
const goOk = buildGoModules();
if (!packagesOk || !goOk) process.exit(process.env.CI === 'true' ? 1 : 0);
log('done');
