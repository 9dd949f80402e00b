/** slicesFromEndpoints: a core/v1 Endpoints object as the slices the merge reads. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { slicesFromEndpoints } from './endpoints';
import { endpointsFromSlices } from './slices';

const PORTS = [{ name: 'grpc', port: 8080, protocol: 'TCP' }];
const SUBSET_NOUN = { one: 'Endpoints subset', many: 'Endpoints subsets' };

describe('slicesFromEndpoints', () => {
  test('one slice per subset and address family; ready and not-ready conditions; node and pod kept', () => {
    const slices = slicesFromEndpoints({
      metadata: { name: 'hello', resourceVersion: '3' },
      subsets: [
        {
          addresses: [
            { ip: '10.0.0.1', nodeName: 'n1', targetRef: { kind: 'Pod', name: 'p1' } },
            { ip: 'fd00::1' },
          ],
          notReadyAddresses: [{ ip: '10.0.0.2' }],
          ports: PORTS,
        },
        { notReadyAddresses: [{ ip: '10.0.1.1' }], ports: PORTS },
      ],
    });
    assert.deepEqual(slices, [
      {
        metadata: { name: 'hello[0]' },
        addressType: 'IPv4',
        endpoints: [
          {
            addresses: ['10.0.0.1'],
            conditions: { ready: true, serving: true, terminating: false },
            nodeName: 'n1',
            targetRef: { kind: 'Pod', name: 'p1' },
          },
          {
            addresses: ['10.0.0.2'],
            conditions: { ready: false, serving: false, terminating: false },
          },
        ],
        ports: PORTS,
      },
      {
        metadata: { name: 'hello[0]' },
        addressType: 'IPv6',
        endpoints: [
          {
            addresses: ['fd00::1'],
            conditions: { ready: true, serving: true, terminating: false },
          },
        ],
        ports: PORTS,
      },
      {
        metadata: { name: 'hello[1]' },
        addressType: 'IPv4',
        endpoints: [
          {
            addresses: ['10.0.1.1'],
            conditions: { ready: false, serving: false, terminating: false },
          },
        ],
        ports: PORTS,
      },
    ]);
  });

  test('merged: only ready addresses; none ready is an empty set (no terminating fallback)', () => {
    const some = endpointsFromSlices(
      slicesFromEndpoints({
        metadata: { name: 'hello' },
        subsets: [
          {
            addresses: [{ ip: '10.0.0.1', targetRef: { kind: 'Pod', name: 'p1' } }],
            notReadyAddresses: [{ ip: '10.0.0.2' }],
            ports: PORTS,
          },
        ],
      }),
      { kind: 'name', value: 'grpc' },
      'grpc',
      SUBSET_NOUN,
    );
    assert.deepEqual(some.endpoints, [{ host: '10.0.0.1', port: 8080, labels: { pod: 'p1' } }]);
    assert.equal(some.note, '1 ready endpoint from 1 Endpoints subset');
    const none = endpointsFromSlices(
      slicesFromEndpoints({
        metadata: { name: 'hello' },
        subsets: [{ notReadyAddresses: [{ ip: '10.0.0.2' }], ports: PORTS }],
      }),
      { kind: 'name', value: 'grpc' },
      'grpc',
      SUBSET_NOUN,
    );
    assert.deepEqual([none.endpoints, none.usingTerminating], [[], false]);
  });

  test("the Endpoints object's labels go to its endpoints, as a slice's do", () => {
    const result = endpointsFromSlices(
      slicesFromEndpoints({
        metadata: {
          name: 'hello',
          labels: { 'endpoints.kubernetes.io/managed-by': 'x', version: 'v1' },
        },
        subsets: [{ addresses: [{ ip: '10.0.0.1' }], ports: PORTS }],
      }),
      { kind: 'name', value: 'grpc' },
      'grpc',
      SUBSET_NOUN,
    );
    assert.deepEqual(result.endpoints, [
      { host: '10.0.0.1', port: 8080, labels: { version: 'v1' } },
    ]);
  });

  test('an ip that is no address is skipped with a warning naming the subset; no subsets is no slice', () => {
    const result = endpointsFromSlices(
      slicesFromEndpoints({
        metadata: { name: 'hello' },
        subsets: [{ addresses: [{ ip: 'not-an-ip' }, { ip: '10.0.0.1' }], ports: PORTS }],
      }),
      { kind: 'name', value: 'grpc' },
      'grpc',
      SUBSET_NOUN,
    );
    assert.deepEqual(result.endpoints, [{ host: '10.0.0.1', port: 8080 }]);
    assert.deepEqual(result.warnings, [
      'Endpoints subset hello[0]: "not-an-ip" is not an IPv4 address; skipped',
    ]);
    assert.deepEqual(slicesFromEndpoints({ metadata: { name: 'hello' } }), []);
    assert.deepEqual(slicesFromEndpoints({ metadata: { name: 'hello' }, subsets: [] }), []);
  });
});
