import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unusableReason } from './unusable-address';

test('which addresses cannot be endpoints, and why (range edges included)', () => {
  const table: [string, string | undefined][] = [
    ['0.0.0.0', 'unspecified'],
    ['0.255.255.255', 'unspecified'],
    ['1.0.0.0', undefined],
    ['255.255.255.255', 'broadcast'],
    ['255.255.255.254', undefined],
    ['224.0.0.0', 'multicast'],
    ['239.255.255.255', 'multicast'],
    ['223.255.255.255', undefined],
    ['240.0.0.1', undefined],
    ['127.0.0.1', undefined],
    ['169.254.1.1', undefined],
    ['10.0.0.1', undefined],
    ['::', 'unspecified'],
    ['0:0:0:0:0:0:0:0', 'unspecified'],
    ['::1', undefined],
    ['ff00::', 'multicast'],
    ['ff02::1', 'multicast'],
    ['feff::1', undefined],
    ['fe80::1', 'link-local, no interface'],
    ['febf:ffff::1', 'link-local, no interface'],
    ['fec0::1', undefined],
    ['fd00::1', undefined],
    ['2001:db8::1', undefined],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::ffff:224.0.0.1', 'multicast'],
    ['::ffff:255.255.255.255', 'broadcast'],
    ['::ffff:127.0.0.1', undefined],
  ];
  for (const [address, reason] of table) {
    assert.equal(unusableReason(address), reason, address);
  }
});
