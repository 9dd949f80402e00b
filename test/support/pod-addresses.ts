/**
 * Pod-like IP addresses on this machine: the Kubernetes API refuses loopback addresses
 * (127.0.0.0/8) in EndpointSlices, so tests of the Kubernetes resolver put 10.244.N.x/32 on `lo`
 * (`ip addr add`, needs root) and run harness backends there (`startBackends({ network })`).
 * Each caller takes a /24 nobody else has on lo, so test files running in parallel never share
 * addresses; they are removed on `remove()` and when the process exits.
 *
 *   const pods = await addPodAddresses(t, 4);      // undefined: skipped (not root, no `ip`), not under CI
 *   await startBackends({ count: 3, network: pods.network });   // 10.244.N.2 … 10.244.N.4
 *   await pods.remove();
 */
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { run } from './server-process';
import { findBinary } from './system-tools';

export interface PodAddresses {
  /** The first three octets, e.g. `10.244.17`: for `startBackends({ network })`. */
  readonly network: string;
  /** The addresses added, `10.244.17.2` …. */
  readonly addresses: readonly string[];
  /** Removes them (idempotent). */
  remove(): Promise<void>;
}

export class PodAddressesUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PodAddressesUnavailableError';
  }
}

const added = new Set<string>();
process.on('exit', () => {
  const ip = findBinary('ip');
  if (!ip) return;
  for (const address of added) {
    spawnSync(ip, ['addr', 'del', `${address}/32`, 'dev', 'lo'], { stdio: 'ignore' });
  }
});

/** `count` addresses 10.244.N.2 … on `lo`; throws `PodAddressesUnavailableError` when it cannot. */
export async function createPodAddresses(count: number, firstHost = 2): Promise<PodAddresses> {
  const ip = findBinary('ip');
  if (!ip) throw new PodAddressesUnavailableError('`ip` (iproute2) is not installed');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PodAddressesUnavailableError('adding addresses to lo needs root');
  }
  // A /24 of our own: the first whose first address nobody has put on lo yet (another test file,
  // or one left behind by a crashed run).
  let network: string | undefined;
  for (let attempt = 0; attempt < 250 && network === undefined; attempt++) {
    const candidate = `10.244.${((process.pid + attempt) % 250) + 1}`;
    try {
      await run(ip, ['addr', 'add', `${candidate}.${firstHost}/32`, 'dev', 'lo']);
      added.add(`${candidate}.${firstHost}`);
      network = candidate;
    } catch (error) {
      if (!/File exists|already assigned/.test(String(error))) {
        throw new PodAddressesUnavailableError(`ip addr add failed: ${String(error)}`);
      }
    }
  }
  if (network === undefined) {
    throw new PodAddressesUnavailableError('every 10.244.N.0/24 (N = 1…250) is in use on lo');
  }
  const addresses = Array.from({ length: count }, (_, i) => `${network}.${firstHost + i}`);
  try {
    for (const address of addresses.slice(1)) {
      await run(ip, ['addr', 'add', `${address}/32`, 'dev', 'lo']);
      added.add(address);
    }
  } catch (error) {
    for (const address of addresses) await removeAddress(ip, address);
    throw new PodAddressesUnavailableError(`ip addr add failed: ${String(error)}`);
  }
  let removed = false;
  return {
    network,
    addresses,
    async remove() {
      if (removed) return;
      removed = true;
      for (const address of addresses) await removeAddress(ip, address);
    },
  };
}

async function removeAddress(ip: string, address: string): Promise<void> {
  added.delete(address);
  await run(ip, ['addr', 'del', `${address}/32`, 'dev', 'lo']).catch(() => undefined);
}

/** For a test: the addresses, or `undefined` after `t.skip()` — except with CI=true (throws). */
export async function addPodAddresses(
  t: TestContext,
  count: number,
): Promise<PodAddresses | undefined> {
  try {
    return await createPodAddresses(count);
  } catch (error) {
    if (process.env['CI'] === 'true') throw error;
    t.skip(error instanceof Error ? error.message : String(error));
    return undefined;
  }
}
