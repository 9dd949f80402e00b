import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { K8sPortSelector } from './k8s-target';
import { endpointsFromSlices, servicePortName, type ServiceLike, type SliceLike } from './slices';

type SliceEndpoint = NonNullable<SliceLike['endpoints']>[number];

const GRPC: K8sPortSelector = { kind: 'name', value: 'grpc' };

function slice(
  name: string,
  endpoints: SliceEndpoint[],
  ports: SliceLike['ports'] = [{ name: 'grpc', port: 8080, protocol: 'TCP' }],
  addressType = 'IPv4',
): SliceLike {
  return { metadata: { name, resourceVersion: '1' }, addressType, endpoints, ports };
}

function ep(address: string, conditions?: SliceEndpoint['conditions']): SliceEndpoint {
  return { addresses: [address], ...(conditions !== undefined ? { conditions } : {}) };
}

const READY = { ready: true, serving: true, terminating: false };
const NOT_READY = { ready: false, serving: false, terminating: false };
const TERMINATING = { ready: false, serving: true, terminating: true };
const GONE = { ready: false, serving: false, terminating: true };

function hosts(result: { endpoints: readonly { host: string; port: number }[] }): string[] {
  return result.endpoints.map((e) => `${e.host}:${e.port}`);
}

describe('endpointsFromSlices', () => {
  test('merges every slice, sorted by address', () => {
    const result = endpointsFromSlices(
      [
        slice('svc-b', [ep('10.0.0.3', READY), ep('10.0.0.1', READY)]),
        slice('svc-a', [ep('10.0.0.2', READY)]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
    assert.deepEqual(result.warnings, []);
    assert.equal(result.usingTerminating, false);
    assert.equal(result.note, '3 ready endpoints from 2 EndpointSlices');
  });

  test('the same address in two slices counts once', () => {
    const result = endpointsFromSlices(
      [
        slice('svc-a', [ep('10.0.0.1', READY), ep('10.0.0.2', READY)]),
        slice('svc-b', [ep('10.0.0.2', READY)]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080', '10.0.0.2:8080']);
    assert.equal(result.note, '2 ready endpoints from 2 EndpointSlices');
  });

  test('one endpoint with several addresses gives one endpoint per address', () => {
    const result = endpointsFromSlices(
      [slice('s', [{ addresses: ['10.0.0.2', '10.0.0.1'], conditions: READY }])],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080', '10.0.0.2:8080']);
  });

  test('ready and missing-ready endpoints are used; not-ready ones are not', () => {
    const result = endpointsFromSlices(
      [
        slice('s', [
          ep('10.0.0.1', READY),
          ep('10.0.0.2', NOT_READY),
          ep('10.0.0.3'), // no conditions at all
          ep('10.0.0.4', {}), // conditions without ready
          ep('10.0.0.5', { ready: null }),
          ep('10.0.0.6', TERMINATING), // ignored: a ready one exists
          ep('10.0.0.7', GONE),
        ]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), [
      '10.0.0.1:8080',
      '10.0.0.3:8080',
      '10.0.0.4:8080',
      '10.0.0.5:8080',
    ]);
    assert.equal(result.usingTerminating, false);
    assert.equal(result.note, '4 ready endpoints from 1 EndpointSlice');
  });

  test('serving-terminating endpoints only when no endpoint is ready', () => {
    const result = endpointsFromSlices(
      [
        slice('a', [ep('10.0.0.1', TERMINATING), ep('10.0.0.2', NOT_READY)]),
        slice('b', [ep('10.0.0.3', TERMINATING), ep('10.0.0.4', GONE)]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080', '10.0.0.3:8080']);
    assert.equal(result.usingTerminating, true);
    assert.equal(result.note, '2 serving (terminating) endpoints from 2 EndpointSlices');
  });

  test('one ready endpoint in another slice wins over the terminating ones', () => {
    const result = endpointsFromSlices(
      [slice('a', [ep('10.0.0.1', TERMINATING)]), slice('b', [ep('10.0.0.9', READY)])],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.9:8080']);
    assert.equal(result.usingTerminating, false);
    assert.equal(result.note, '1 ready endpoint from 2 EndpointSlices');
  });

  test('nothing ready nor serving: empty, and the note says so', () => {
    const result = endpointsFromSlices(
      [slice('a', [ep('10.0.0.1', NOT_READY), ep('10.0.0.2', GONE)])],
      GRPC,
      'grpc',
    );
    assert.deepEqual(result.endpoints, []);
    assert.equal(result.usingTerminating, false);
    assert.equal(result.note, '0 ready endpoints from 1 EndpointSlice');
    assert.equal(
      endpointsFromSlices([], GRPC, 'grpc').note,
      '0 ready endpoints from 0 EndpointSlices',
    );
  });

  test('a named port is looked up by name in each slice (the pods may differ)', () => {
    const result = endpointsFromSlices(
      [
        slice(
          'old',
          [ep('10.0.0.1', READY)],
          [
            { name: 'metrics', port: 9090, protocol: 'TCP' },
            { name: 'grpc', port: 8080, protocol: 'TCP' },
          ],
        ),
        slice('new', [ep('10.0.0.2', READY)], [{ name: 'grpc', port: 8443 }]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080', '10.0.0.2:8443']);
  });

  test('a slice without the port is skipped with a warning naming the ports it has', () => {
    const result = endpointsFromSlices(
      [
        slice('ok', [ep('10.0.0.1', READY)]),
        slice('other', [ep('10.0.0.2', READY)], [{ name: 'http', port: 80, protocol: 'TCP' }]),
        // No ports yet (a Service without endpoints): skipped without a warning.
        slice('empty', [], []),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080']);
    assert.deepEqual(result.warnings, [
      'EndpointSlice other: no port "grpc" among http=80; skipped',
    ]);
    assert.equal(result.note, '1 ready endpoint from 3 EndpointSlices');
  });

  test('a numeric Service port is found through its name (the pods listen elsewhere)', () => {
    const service: ServiceLike = {
      spec: { ports: [{ name: 'grpc', port: 80, protocol: 'TCP' }] },
    };
    const selector: K8sPortSelector = { kind: 'number', value: 80 };
    const name = servicePortName(selector, service);
    assert.deepEqual(name, { name: 'grpc' });
    const result = endpointsFromSlices(
      [
        slice(
          's',
          [ep('10.0.0.1', READY)],
          [
            { name: 'admin', port: 80, protocol: 'TCP' },
            { name: 'grpc', port: 50051, protocol: 'TCP' },
          ],
        ),
      ],
      selector,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:50051']);
  });

  test('a numeric port without the Service name falls back to the same port number', () => {
    const selector: K8sPortSelector = { kind: 'number', value: 9000 };
    const result = endpointsFromSlices(
      [
        slice(
          's',
          [ep('10.0.0.1', READY)],
          [
            { name: 'a', port: 8000 },
            { name: 'b', port: 9000 },
          ],
        ),
        slice('t', [ep('10.0.0.2', READY)], [{ name: 'a', port: 8000 }]),
      ],
      selector,
      undefined,
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:9000']);
    assert.deepEqual(result.warnings, ['EndpointSlice t: no port 9000 among a=8000; skipped']);
  });

  test('an unnamed single Service port matches the unnamed slice port', () => {
    const service: ServiceLike = { spec: { ports: [{ port: 80 }] } };
    const only: K8sPortSelector = { kind: 'only' };
    assert.deepEqual(servicePortName(only, service), { name: '' });
    assert.deepEqual(servicePortName({ kind: 'number', value: 80 }, service), { name: '' });
    const result = endpointsFromSlices(
      [
        slice('a', [ep('10.0.0.1', READY)], [{ port: 8080, protocol: 'TCP' }]),
        slice('b', [ep('10.0.0.2', READY)], [{ name: '', port: 8081 }]),
      ],
      only,
      '',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080', '10.0.0.2:8081']);
  });

  test("'only' without a port name takes the slice's single TCP port", () => {
    const result = endpointsFromSlices(
      [
        slice(
          'a',
          [ep('10.0.0.1', READY)],
          [
            { name: 'dns', port: 53, protocol: 'UDP' },
            { name: 'dns-tcp', port: 5353, protocol: 'TCP' },
          ],
        ),
        slice(
          'b',
          [ep('10.0.0.2', READY)],
          [
            { name: 'x', port: 1 },
            { name: 'y', port: 2 },
          ],
        ),
      ],
      { kind: 'only' },
      undefined,
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:5353']);
    assert.equal(result.warnings.length, 1);
    assert.match(
      result.warnings[0]!,
      /^EndpointSlice b: .*single TCP port among x=1, y=2; skipped$/,
    );
  });

  test('UDP ports are ignored, even with the wanted name', () => {
    const result = endpointsFromSlices(
      [
        slice('udp', [ep('10.0.0.1', READY)], [{ name: 'grpc', port: 53, protocol: 'UDP' }]),
        slice(
          'both',
          [ep('10.0.0.2', READY)],
          [
            { name: 'grpc', port: 53, protocol: 'UDP' },
            { name: 'grpc', port: 8080, protocol: 'TCP' },
          ],
        ),
        slice('sctp', [ep('10.0.0.3', READY)], [{ name: 'grpc', port: 99, protocol: 'SCTP' }]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.2:8080']);
    // A slice with no TCP port at all is not worth a warning.
    assert.deepEqual(result.warnings, []);
  });

  test('an FQDN slice is skipped with a warning', () => {
    const result = endpointsFromSlices(
      [
        slice('names', [ep('backend.example.com', READY)], undefined, 'FQDN'),
        slice('untyped', [ep('10.0.0.2', READY)], undefined, ''),
        slice('v4', [ep('10.0.0.1', READY)]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080']);
    assert.deepEqual(result.warnings, [
      'EndpointSlice names: addressType FQDN is not IPv4 or IPv6; skipped',
      'EndpointSlice untyped: addressType (none) is not IPv4 or IPv6; skipped',
    ]);
    assert.equal(result.note, '1 ready endpoint from 3 EndpointSlices');
  });

  test('IPv6 slices give IPv6 hosts without brackets', () => {
    const result = endpointsFromSlices(
      [slice('v6', [ep('fd00::2', READY), ep('fd00::1', READY)], undefined, 'IPv6')],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['fd00::1:8080', 'fd00::2:8080']);
    assert.deepEqual(result.warnings, []);
  });

  test('a malformed address is skipped with a warning; the rest of the slice is used', () => {
    const result = endpointsFromSlices(
      [
        slice('a', [
          ep('10.0.0.1', READY),
          ep('10.0.0', READY),
          ep('not-an-ip', READY),
          ep('fd00::1', READY), // IPv6 in an IPv4 slice
          ep('10.0.0.300.1', NOT_READY), // not ready: not even looked at
        ]),
        slice('b', [ep('10.0.0.2', READY)], undefined, 'IPv6'),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(hosts(result), ['10.0.0.1:8080']);
    assert.deepEqual(result.warnings, [
      'EndpointSlice a: "10.0.0" is not an IPv4 address; skipped',
      'EndpointSlice a: "not-an-ip" is not an IPv4 address; skipped',
      'EndpointSlice a: "fd00::1" is not an IPv4 address; skipped',
      'EndpointSlice b: "10.0.0.2" is not an IPv6 address; skipped',
    ]);
  });

  test('a port out of range is skipped with a warning', () => {
    const result = endpointsFromSlices(
      [slice('a', [ep('10.0.0.1', READY)], [{ name: 'grpc', port: 70000 }])],
      GRPC,
      'grpc',
    );
    assert.deepEqual(result.endpoints, []);
    assert.deepEqual(result.warnings, ['EndpointSlice a: port 70000 is out of range; skipped']);
  });

  test('zone, node and pod become the zone and labels', () => {
    const result = endpointsFromSlices(
      [
        slice('a', [
          {
            addresses: ['10.0.0.1'],
            conditions: READY,
            zone: 'eu-west-1a',
            nodeName: 'node-1',
            targetRef: { kind: 'Pod', name: 'hello-7d9f-abcde' },
          },
          {
            addresses: ['10.0.0.2'],
            conditions: READY,
            nodeName: 'node-2',
            targetRef: { kind: 'Node', name: 'node-2' }, // not a pod: no pod label
          },
          { addresses: ['10.0.0.3'], conditions: READY, zone: 'eu-west-1b' },
          { addresses: ['10.0.0.4'], conditions: READY, zone: '', nodeName: '' },
        ]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(result.endpoints, [
      {
        host: '10.0.0.1',
        port: 8080,
        zone: 'eu-west-1a',
        labels: { node: 'node-1', pod: 'hello-7d9f-abcde' },
      },
      { host: '10.0.0.2', port: 8080, labels: { node: 'node-2' } },
      { host: '10.0.0.3', port: 8080, zone: 'eu-west-1b' },
      { host: '10.0.0.4', port: 8080 },
    ]);
  });

  test('hints.forZones become forZones (entries without a name skipped; empty or absent: none)', () => {
    const result = endpointsFromSlices(
      [
        slice('a', [
          {
            addresses: ['10.0.0.1'],
            conditions: READY,
            zone: 'eu-west-1a',
            hints: { forZones: [{ name: 'eu-west-1a' }, { name: 'eu-west-1c' }] },
          },
          {
            addresses: ['10.0.0.2'],
            conditions: READY,
            zone: 'eu-west-1b',
            hints: { forZones: [] },
          },
          { addresses: ['10.0.0.3'], conditions: READY, hints: { forZones: [{}, { name: '' }] } },
          { addresses: ['10.0.0.4'], conditions: READY, hints: null },
        ]),
      ],
      GRPC,
      'grpc',
    );
    assert.deepEqual(result.endpoints, [
      { host: '10.0.0.1', port: 8080, zone: 'eu-west-1a', forZones: ['eu-west-1a', 'eu-west-1c'] },
      { host: '10.0.0.2', port: 8080, zone: 'eu-west-1b' },
      { host: '10.0.0.3', port: 8080 },
      { host: '10.0.0.4', port: 8080 },
    ]);
  });

  test("a slice's own labels go to its endpoints, but those Kubernetes writes; node and pod are the endpoint's", () => {
    const labelled: SliceLike = {
      ...slice('v2', [
        {
          addresses: ['10.0.0.1'],
          conditions: READY,
          nodeName: 'node-1',
          targetRef: { kind: 'Pod', name: 'hello-v2-abcde' },
        },
      ]),
      metadata: {
        name: 'v2',
        labels: {
          'kubernetes.io/service-name': 'hello',
          'endpointslice.kubernetes.io/managed-by': 'example.com/mirror',
          'service.kubernetes.io/headless': '',
          'k8s.io/x': 'y',
          'app.kubernetes.io/version': '2.0.1',
          version: 'v2',
          node: 'not-this',
          pod: 'nor-this',
        },
      },
    };
    const plain = slice('v1', [ep('10.0.0.2', READY)]);
    const result = endpointsFromSlices([labelled, plain], GRPC, 'grpc');
    assert.deepEqual(result.endpoints, [
      {
        host: '10.0.0.1',
        port: 8080,
        labels: {
          'app.kubernetes.io/version': '2.0.1',
          version: 'v2',
          node: 'node-1',
          pod: 'hello-v2-abcde',
        },
      },
      { host: '10.0.0.2', port: 8080 },
    ]);
  });

  test('the output is sorted by host, then port, whatever the slice order', () => {
    const slices = [
      slice('c', [ep('10.0.0.20', READY)], [{ name: 'grpc', port: 2 }]),
      slice('b', [ep('10.0.0.3', READY)]),
      slice('a', [ep('10.0.0.20', READY), ep('10.0.0.1', READY)]),
    ];
    const forward = endpointsFromSlices(slices, GRPC, 'grpc');
    const backward = endpointsFromSlices([...slices].reverse(), GRPC, 'grpc');
    const expected = ['10.0.0.1:8080', '10.0.0.20:2', '10.0.0.20:8080', '10.0.0.3:8080'];
    assert.deepEqual(hosts(forward), expected);
    assert.deepEqual(hosts(backward), expected);
  });

  test('a slice without a name is named "(unnamed)" in warnings', () => {
    const result = endpointsFromSlices([{ addressType: 'FQDN', endpoints: [] }], GRPC, 'grpc');
    assert.deepEqual(result.warnings, [
      'EndpointSlice (unnamed): addressType FQDN is not IPv4 or IPv6; skipped',
    ]);
  });
});

describe('servicePortName', () => {
  const twoPorts: ServiceLike = {
    spec: {
      ports: [
        { name: 'grpc', port: 80, protocol: 'TCP' },
        { name: 'metrics', port: 9090 },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    },
  };

  test('a port name needs no Service', () => {
    assert.deepEqual(servicePortName(GRPC, undefined), { name: 'grpc' });
    assert.deepEqual(servicePortName(GRPC, twoPorts), { name: 'grpc' });
  });

  test('a numeric port maps to the name of the TCP Service port with that number', () => {
    assert.deepEqual(servicePortName({ kind: 'number', value: 80 }, twoPorts), { name: 'grpc' });
    assert.deepEqual(servicePortName({ kind: 'number', value: 9090 }, twoPorts), {
      name: 'metrics',
    });
  });

  test('without the Service (not read yet), a numeric or only port has no name', () => {
    assert.equal(servicePortName({ kind: 'number', value: 80 }, undefined), undefined);
    assert.equal(servicePortName({ kind: 'only' }, undefined), undefined);
  });

  test('a numeric port the Service does not have is an error listing its ports', () => {
    assert.deepEqual(servicePortName({ kind: 'number', value: 81 }, twoPorts), {
      error: 'the Service has no TCP port 81 (it has grpc=80, metrics=9090)',
    });
    // The UDP port with that number does not count.
    assert.deepEqual(servicePortName({ kind: 'number', value: 53 }, twoPorts), {
      error: 'the Service has no TCP port 53 (it has grpc=80, metrics=9090)',
    });
    assert.deepEqual(
      servicePortName({ kind: 'number', value: 80 }, { spec: { ports: [{ port: 81 }] } }),
      { error: 'the Service has no TCP port 80 (it has (unnamed)=81)' },
    );
    assert.deepEqual(servicePortName({ kind: 'number', value: 80 }, {}), {
      error: 'the Service has no TCP port 80 (it has none)',
    });
  });

  test("'only' with several TCP ports is an error asking to name one", () => {
    assert.deepEqual(servicePortName({ kind: 'only' }, twoPorts), {
      error: 'the Service has 2 TCP ports (grpc, metrics): name one in the target',
    });
  });

  test("'only' with no TCP port is an error; one TCP port among UDP ones is used", () => {
    assert.deepEqual(
      servicePortName(
        { kind: 'only' },
        { spec: { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } },
      ),
      { error: 'the Service has no TCP port' },
    );
    assert.deepEqual(
      servicePortName(
        { kind: 'only' },
        {
          spec: {
            ports: [
              { name: 'dns', port: 53, protocol: 'UDP' },
              { name: 'dns-tcp', port: 53, protocol: 'TCP' },
            ],
          },
        },
      ),
      { name: 'dns-tcp' },
    );
  });
});
