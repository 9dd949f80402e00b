import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { computeRatios, l4Ratios, pairedRatio, roundRatios } from './ratios';
import { BACKENDS, fakeReport } from './testing';

describe('pairedRatio', () => {
  test('is the median of per-round ratios, pairing rounds by number', () => {
    const ours = fakeReport('grpc-lb-round_robin', [
      { rps: 1000, latencyMs: 10 },
      { rps: 2000, latencyMs: 10 },
      { rps: 3300, latencyMs: 10 },
    ]);
    const theirs = fakeReport('nginx-grpc', [
      { rps: 500, latencyMs: 20 },
      { rps: 2000, latencyMs: 40 },
      { rps: 1100, latencyMs: 20 },
    ]);
    assert.deepEqual(roundRatios(ours, theirs, 'rps'), [2, 1, 3]);
    assert.equal(pairedRatio(ours, theirs, 'rps'), 2);
    assert.equal(pairedRatio(ours, theirs, 'p99Ms'), 0.5);
  });

  test('is null when either scenario is missing', () => {
    assert.equal(pairedRatio(undefined, fakeReport('x', [{ rps: 1, latencyMs: 1 }]), 'rps'), null);
  });
});

describe('l4Ratios', () => {
  test('reads each round alone: a pinned connection leaves backends idle however the rounds add up', () => {
    const l4 = fakeReport('haproxy-tcp', [
      { rps: 300, latencyMs: 1, perBackend: { [BACKENDS[0]!]: 300 } },
      { rps: 300, latencyMs: 1, perBackend: { [BACKENDS[1]!]: 300 } },
      { rps: 300, latencyMs: 1, perBackend: { [BACKENDS[2]!]: 300 } },
    ]);
    // Merged, the three rounds look perfectly even …
    assert.equal(l4.shares.maxMinShare, 1);
    // … but every client saw one backend take everything.
    assert.deepEqual(l4Ratios(l4), { l4MaxMinShare: null, l4BusiestShare: 1, l4IdleBackends: 2 });
  });

  test('gives a finite median max/min when no round left a backend idle', () => {
    const l4 = fakeReport('haproxy-tcp', [{ rps: 4, latencyMs: 1, perBackend: { a: 3, b: 1 } }], {
      backends: ['a', 'b'],
    });
    assert.equal(l4Ratios(l4).l4MaxMinShare, 3);
  });
});

describe('computeRatios', () => {
  test('compares ours with each alternative and reads evenness and weighted shares', () => {
    const round = (rps: number, latencyMs: number) => [{ rps, latencyMs }];
    const closed = [
      fakeReport('grpc-js-round_robin', round(1000, 10)),
      fakeReport('grpc-lb-round_robin', round(990, 10)),
      fakeReport('nginx-grpc', round(495, 20)),
      fakeReport('haproxy-h2', round(330, 40)),
      fakeReport(
        'grpc-lb-traffic_split',
        [
          {
            rps: 10,
            latencyMs: 1,
            perBackend: { [BACKENDS[0]!]: 3, [BACKENDS[1]!]: 6, [BACKENDS[2]!]: 1 },
          },
        ],
        {
          expectedShares: { [BACKENDS[0]!]: 0.3, [BACKENDS[1]!]: 0.6, [BACKENDS[2]!]: 0.1 },
        },
      ),
    ];
    const evenness = [fakeReport('evenness', [{ rps: 300, latencyMs: 1 }])];
    const ratios = computeRatios(closed, [], evenness);
    assert.equal(ratios.oursVsGrpcJsRoundRobin, 0.99);
    assert.equal(ratios.oursVsNginx, 2);
    assert.equal(ratios.oursVsHaproxyH2, 3);
    assert.equal(ratios.oursP99VsNginx, 0.5);
    assert.equal(ratios.oursP99VsHaproxyH2, 0.25);
    assert.equal(ratios.oursMaxMinShare, 1);
    assert.ok(Math.abs(ratios.trafficSplitMaxErrorPp!) < 1e-9);
    assert.equal(ratios.openOursP99VsNginx, null);
    assert.equal(ratios.l4MaxMinShare, null);
    assert.equal(ratios.l4IdleBackends, null);
  });
});
