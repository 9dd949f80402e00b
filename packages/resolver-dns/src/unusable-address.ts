/**
 * Addresses a DNS answer may hold that no gRPC connection can use. DNS sinkholes and blocklists
 * answer 0.0.0.0 and `::`; a misconfigured zone may hold a broadcast or multicast address. Made
 * endpoints, they would replace the good set and every call would fail.
 *
 * Deliberately not in the list: loopback (127.0.0.0/8, ::1, used by tests and sidecars), IPv4
 * link-local 169.254.0.0/16 (reachable on a single-interface host), 240.0.0.0/4 (reserved, but
 * some clusters use it for pods), and private or documentation ranges.
 */
import { BlockList, isIPv4 } from 'node:net';

interface Range {
  readonly family: 'ipv4' | 'ipv6';
  readonly network: string;
  readonly prefix: number;
  readonly reason: string;
}

/** Each range with the reason given in warnings and errors. IPv4-mapped IPv6 forms match too. */
export const UNUSABLE_RANGES: readonly Range[] = [
  { family: 'ipv4', network: '0.0.0.0', prefix: 8, reason: 'unspecified' },
  { family: 'ipv4', network: '255.255.255.255', prefix: 32, reason: 'broadcast' },
  { family: 'ipv4', network: '224.0.0.0', prefix: 4, reason: 'multicast' },
  { family: 'ipv6', network: '::', prefix: 128, reason: 'unspecified' },
  { family: 'ipv6', network: 'ff00::', prefix: 8, reason: 'multicast' },
  // DNS cannot carry the interface (zone index) a link-local address needs.
  { family: 'ipv6', network: 'fe80::', prefix: 10, reason: 'link-local, no interface' },
];

const LISTS = UNUSABLE_RANGES.map((range) => {
  const list = new BlockList();
  list.addSubnet(range.network, range.prefix, range.family);
  return { list, reason: range.reason };
});

/**
 * The IPv4 ranges above by first octet, without a `BlockList` lookup (which costs microseconds
 * per address: thousands of them in one answer add up).
 */
function unusableIpv4(address: string): string | undefined {
  const first = Number(address.slice(0, address.indexOf('.')));
  if (first === 0) return 'unspecified';
  if (first >= 224 && first <= 239) return 'multicast';
  if (address === '255.255.255.255') return 'broadcast';
  return undefined;
}

/** Why `address` (an IPv4 or IPv6 literal) cannot be an endpoint, or `undefined` if it can. */
export function unusableReason(address: string): string | undefined {
  if (isIPv4(address)) return unusableIpv4(address);
  const family = 'ipv6';
  for (const { list, reason } of LISTS) {
    if (list.check(address, family)) return reason;
  }
  return undefined;
}
