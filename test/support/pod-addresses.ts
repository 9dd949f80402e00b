/**
 * Pod-like IP addresses for tests: the Kubernetes API refuses loopback addresses (127.0.0.0/8) in
 * EndpointSlices, so tests of the Kubernetes resolver run harness backends on 10.244.N.x
 * (`startBackends({ network })`). The addresses are put on the `lo` of the test network namespace
 * this process runs in (netns.ts) — never on an interface of the machine's root namespace: outside
 * a test namespace this refuses. Each caller takes a /24 nobody else in the namespace holds; the
 * addresses are removed on `remove()`, and vanish with the namespace at the end of the run.
 *
 *   import './support/enter-netns';                 // first import of the test file
 *   const pods = await addPodAddresses(t, 4);      // undefined: skipped (no namespace), not under CI
 *   await startBackends({ count: 3, network: pods.network });   // 10.244.N.2 … 10.244.N.4
 *   await pods.remove();
 */
import type { TestContext } from 'node:test';
import { currentTestNetns, testNetnsUnavailableReason } from './netns';
import { run } from './server-process';
import { findBinary } from './system-tools';

export interface PodAddresses {
  /** The first three octets, e.g. `10.244.17`: for `startBackends({ network })`. */
  readonly network: string;
  /** The addresses added, `10.244.17.2` …. */
  readonly addresses: readonly string[];
  /** The test network namespace they are in. */
  readonly netns: string;
  /** Removes them (idempotent). */
  remove(): Promise<void>;
}

export class PodAddressesUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PodAddressesUnavailableError';
  }
}

let nextNetwork = 0;

/**
 * `count` addresses 10.244.N.2 … on the test namespace's `lo`; throws
 * `PodAddressesUnavailableError` when this process is not in a test namespace or they cannot be
 * added.
 */
export async function createPodAddresses(count: number, firstHost = 2): Promise<PodAddresses> {
  const netns = currentTestNetns();
  if (!netns) {
    throw new PodAddressesUnavailableError(
      `pod-like addresses are only added inside a test network namespace: ${testNetnsUnavailableReason() ?? 'none'}`,
    );
  }
  const ip = findBinary('ip');
  if (!ip) throw new PodAddressesUnavailableError('`ip` (iproute2) is not installed');
  // The namespace is this run's own: /24s are handed out in turn, skipping any already on lo.
  let network: string | undefined;
  for (let attempt = 0; attempt < 250 && network === undefined; attempt++) {
    const candidate = `10.244.${(nextNetwork++ % 250) + 1}`;
    try {
      await run(ip, ['addr', 'add', `${candidate}.${firstHost}/32`, 'dev', 'lo']);
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
    }
  } catch (error) {
    for (const address of addresses) await removeAddress(ip, address);
    throw new PodAddressesUnavailableError(`ip addr add failed: ${String(error)}`);
  }
  let removed = false;
  return {
    network,
    addresses,
    netns,
    async remove() {
      if (removed) return;
      removed = true;
      for (const address of addresses) await removeAddress(ip, address);
    },
  };
}

async function removeAddress(ip: string, address: string): Promise<void> {
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
