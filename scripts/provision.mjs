#!/usr/bin/env node
// Installs the real servers the test suite runs against, once, before the tests start (so test
// files running in parallel do not race for apt's lock). Only Node built-ins: it runs before
// anything else. Each entry: the binaries that must exist and the Debian packages that provide them.
//
//   node scripts/provision.mjs          installs what is missing (needs root), exits 1 if it cannot
//
// Tests still check for their servers themselves; with CI=true a missing one fails them.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

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

const missing = SERVERS.filter((s) => !s.binaries.every((b) => existsSync(b)));
if (missing.length === 0) {
  log(`all present: ${SERVERS.map((s) => s.name).join(', ')}`);
  process.exit(0);
}
const packages = missing.flatMap((s) => s.packages);
if (typeof process.getuid === 'function' && process.getuid() !== 0) {
  log(`not root: cannot install ${packages.join(' ')}; the tests needing them will say so`);
  process.exit(process.env.CI === 'true' ? 1 : 0);
}
log(`installing ${packages.join(' ')}`);
const install = ['install', '-y', '--no-install-recommends', ...packages];
if (!apt(install) && !(apt(['update']) && apt(install))) {
  log(`apt-get install ${packages.join(' ')} failed`);
  process.exit(process.env.CI === 'true' ? 1 : 0);
}
const still = SERVERS.filter((s) => !s.binaries.every((b) => existsSync(b)));
if (still.length > 0) {
  log(`still missing after install: ${still.map((s) => s.name).join(', ')}`);
  process.exit(process.env.CI === 'true' ? 1 : 0);
}
log('done');
