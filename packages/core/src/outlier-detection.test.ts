import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EndpointStats } from './endpoint-stats';
import { OutlierDetector, type OutlierSubject } from './outlier-detection';
import {
  parseOutlierDetection,
  type FailurePercentageEjection,
  type OutlierDetectionConfig,
  type SuccessRateEjection,
} from './resilience-config';

const NOW = 1_000_000;

function config(overrides: Partial<OutlierDetectionConfig> = {}): OutlierDetectionConfig {
  return {
    intervalMs: 10_000,
    baseEjectionTimeMs: 30_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 100,
    consecutiveFailures: 5,
    failureStatusCodes: new Set([14, 13, 2, 4]),
    successRateEjection: undefined,
    failurePercentageEjection: undefined,
    ...overrides,
  };
}

interface Ejection {
  key: string;
  reason: string;
  ejectedUntil: number;
  timesEjected: number;
}

/** `n` fresh subjects s0…s(n-1), a detector over them, and the ejections its hook saw. */
function setup(overrides: Partial<OutlierDetectionConfig>, n: number, random = () => 0) {
  const subjects: OutlierSubject[] = Array.from({ length: n }, (_, i) => ({
    key: `s${i}`,
    stats: new EndpointStats(),
    ejectedUntil: 0,
    timesEjected: 0,
  }));
  const ejections: Ejection[] = [];
  const detector = new OutlierDetector(config(overrides), {
    eject: (subject, reason) =>
      ejections.push({
        key: subject.key,
        reason,
        ejectedUntil: subject.ejectedUntil,
        timesEjected: subject.timesEjected,
      }),
    random,
  });
  const at = (i: number): OutlierSubject => subjects[i]!;
  return { subjects, ejections, detector, at };
}

/** What the balancer does when an ejection ends. */
function unEject(subject: OutlierSubject): void {
  subject.ejectedUntil = 0;
  subject.stats.consecutiveFailures = 0;
}

/** Sets a subject's counts for the current interval. */
function load(subject: OutlierSubject, successes: number, failures: number): void {
  subject.stats.intervalSuccesses = successes;
  subject.stats.intervalFailures = failures;
}

describe('isFailure', () => {
  test('only the configured codes count', () => {
    const { detector } = setup({ failureStatusCodes: new Set([14, 5]) }, 1);
    assert.equal(detector.isFailure(14), true);
    assert.equal(detector.isFailure(5), true);
    assert.equal(detector.isFailure(13), false);
    assert.equal(detector.isFailure(0), false);
  });
});

describe('consecutive failures', () => {
  test('ejects exactly at the Nth failure in a row, not before', () => {
    const { subjects, ejections, detector, at } = setup({ consecutiveFailures: 3 }, 4);
    detector.record(at(0), true, subjects, NOW);
    detector.record(at(0), true, subjects, NOW);
    assert.equal(ejections.length, 0);
    assert.equal(at(0).ejectedUntil, 0);
    detector.record(at(0), true, subjects, NOW + 5);
    assert.deepEqual(ejections, [
      {
        key: 's0',
        reason: '3 consecutive failures',
        ejectedUntil: NOW + 5 + 30_000,
        timesEjected: 1,
      },
    ]);
    assert.equal(at(0).ejectedUntil, NOW + 5 + 30_000);
  });

  test('counts every call in the interval counters', () => {
    const { subjects, detector, at } = setup({ consecutiveFailures: 0 }, 1);
    detector.record(at(0), true, subjects, NOW);
    detector.record(at(0), false, subjects, NOW);
    detector.record(at(0), false, subjects, NOW);
    assert.equal(at(0).stats.intervalFailures, 1);
    assert.equal(at(0).stats.intervalSuccesses, 2);
  });

  test('a success resets the streak', () => {
    const { subjects, ejections, detector, at } = setup({ consecutiveFailures: 3 }, 4);
    detector.record(at(0), true, subjects, NOW);
    detector.record(at(0), true, subjects, NOW);
    detector.record(at(0), false, subjects, NOW);
    assert.equal(at(0).stats.consecutiveFailures, 0);
    detector.record(at(0), true, subjects, NOW);
    detector.record(at(0), true, subjects, NOW);
    assert.equal(ejections.length, 0, 'two failures after the success are not three in a row');
    detector.record(at(0), true, subjects, NOW);
    assert.equal(ejections.length, 1);
  });

  test('streaks are per subject', () => {
    const { subjects, ejections, detector, at } = setup({ consecutiveFailures: 2 }, 4);
    detector.record(at(0), true, subjects, NOW);
    detector.record(at(1), true, subjects, NOW);
    assert.equal(ejections.length, 0);
    detector.record(at(1), true, subjects, NOW);
    assert.deepEqual(
      ejections.map((e) => e.key),
      ['s1'],
    );
  });

  test('consecutiveFailures 0 turns it off', () => {
    const { subjects, ejections, detector, at } = setup({ consecutiveFailures: 0 }, 4);
    for (let i = 0; i < 100; i++) detector.record(at(0), true, subjects, NOW);
    assert.equal(ejections.length, 0);
    assert.equal(at(0).ejectedUntil, 0);
  });

  test('failures while ejected do not eject again', () => {
    const { subjects, ejections, detector, at } = setup({ consecutiveFailures: 1 }, 4);
    detector.record(at(0), true, subjects, NOW);
    detector.record(at(0), true, subjects, NOW + 1);
    detector.record(at(0), true, subjects, NOW + 2);
    assert.equal(ejections.length, 1);
    assert.equal(at(0).timesEjected, 1);
    assert.equal(at(0).ejectedUntil, NOW + 30_000);
  });
});

describe('ejection time', () => {
  test('is base × times ejected, capped at the maximum', () => {
    const { detector } = setup({ baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 100_000 }, 1);
    assert.equal(detector.ejectionTimeMs(1), 30_000);
    assert.equal(detector.ejectionTimeMs(2), 60_000);
    assert.equal(detector.ejectionTimeMs(3), 90_000);
    assert.equal(detector.ejectionTimeMs(4), 100_000);
    assert.equal(detector.ejectionTimeMs(50), 100_000);
  });

  test('grows with each ejection of the same subject', () => {
    const { subjects, ejections, detector, at } = setup(
      { consecutiveFailures: 1, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 100_000 },
      4,
    );
    const times: [number, number][] = [];
    for (let round = 0; round < 5; round++) {
      const now = NOW + round * 1_000_000;
      detector.record(at(0), true, subjects, now);
      times.push([at(0).timesEjected, at(0).ejectedUntil - now]);
      unEject(at(0));
    }
    assert.deepEqual(times, [
      [1, 30_000],
      [2, 60_000],
      [3, 90_000],
      [4, 100_000],
      [5, 100_000],
    ]);
    assert.equal(ejections.length, 5);
  });

  test('times ejected decays by one per tick while not ejected, never below 0', () => {
    const { subjects, detector, at } = setup({}, 2);
    at(0).timesEjected = 3;
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      detector.tick(subjects, NOW + i * 10_000);
      seen.push(at(0).timesEjected);
    }
    assert.deepEqual(seen, [2, 1, 0, 0]);
  });

  test('times ejected does not decay while ejected', () => {
    const { subjects, detector, at } = setup({}, 2);
    at(0).timesEjected = 2;
    at(0).ejectedUntil = NOW + 60_000;
    detector.tick(subjects, NOW);
    detector.tick(subjects, NOW + 10_000);
    assert.equal(at(0).timesEjected, 2);
    unEject(at(0));
    detector.tick(subjects, NOW + 20_000);
    assert.equal(at(0).timesEjected, 1);
  });

  test('after decaying, the next ejection is shorter again', () => {
    const { subjects, detector, at } = setup({ consecutiveFailures: 1 }, 4);
    at(0).timesEjected = 3;
    detector.tick(subjects, NOW);
    detector.tick(subjects, NOW);
    detector.record(at(0), true, subjects, NOW);
    assert.equal(at(0).timesEjected, 2);
    assert.equal(at(0).ejectedUntil, NOW + 60_000);
  });
});

describe('max ejection percent', () => {
  test('4 subjects at 25%: a second ejection is refused while one is ejected', () => {
    const { subjects, ejections, detector, at } = setup(
      { consecutiveFailures: 1, maxEjectionPercent: 25 },
      4,
    );
    detector.record(at(0), true, subjects, NOW);
    detector.record(at(1), true, subjects, NOW);
    assert.deepEqual(
      ejections.map((e) => e.key),
      ['s0'],
    );
    assert.equal(at(1).ejectedUntil, 0);
    assert.equal(at(1).timesEjected, 0, 'a refused ejection does not count');
    unEject(at(0));
    detector.record(at(1), true, subjects, NOW + 1);
    assert.deepEqual(
      ejections.map((e) => e.key),
      ['s0', 's1'],
    );
  });

  test('0% never ejects', () => {
    const { subjects, ejections, detector } = setup(
      { consecutiveFailures: 1, maxEjectionPercent: 0 },
      4,
    );
    for (const subject of subjects) {
      for (let i = 0; i < 10; i++) detector.record(subject, true, subjects, NOW);
    }
    assert.equal(ejections.length, 0);
  });

  test('10% of 4 subjects still lets exactly one be ejected', () => {
    const { subjects, ejections, detector } = setup(
      { consecutiveFailures: 1, maxEjectionPercent: 10 },
      4,
    );
    for (const subject of subjects) detector.record(subject, true, subjects, NOW);
    assert.equal(ejections.length, 1);
    assert.equal(subjects.filter((s) => s.ejectedUntil !== 0).length, 1);
  });

  test('50% of 4 subjects allows two', () => {
    const { subjects, ejections, detector } = setup(
      { consecutiveFailures: 1, maxEjectionPercent: 50 },
      4,
    );
    for (const subject of subjects) detector.record(subject, true, subjects, NOW);
    assert.deepEqual(
      ejections.map((e) => e.key),
      ['s0', 's1'],
    );
  });

  test('applies to ejections within one tick', () => {
    const { subjects, ejections, detector, at } = setup(
      {
        consecutiveFailures: 0,
        maxEjectionPercent: 20,
        failurePercentageEjection: {
          threshold: 40,
          enforcementPercentage: 100,
          minimumHosts: 5,
          requestVolume: 50,
        },
      },
      5,
    );
    load(at(0), 50, 50);
    load(at(1), 40, 60);
    for (let i = 2; i < 5; i++) load(at(i), 100, 0);
    detector.tick(subjects, NOW);
    assert.deepEqual(
      ejections.map((e) => e.key),
      ['s0'],
    );
  });
});

describe('success rate ejection (A50)', () => {
  const RATE: SuccessRateEjection = {
    stdevFactor: 1900,
    enforcementPercentage: 100,
    minimumHosts: 5,
    requestVolume: 100,
  };
  function rate(overrides: Partial<SuccessRateEjection> = {}) {
    return setup(
      {
        consecutiveFailures: 0,
        maxEjectionPercent: 10,
        successRateEjection: { ...RATE, ...overrides },
      },
      5,
    );
  }

  test('ejects the one subject at 50% among four at 100%', () => {
    const { subjects, ejections, detector, at } = rate();
    load(at(0), 100, 0);
    load(at(1), 100, 0);
    load(at(2), 50, 50);
    load(at(3), 200, 0);
    load(at(4), 100, 0);
    detector.tick(subjects, NOW);
    // mean 0.9, stdev 0.2, threshold 0.9 − 0.2 × 1.9 = 0.52.
    assert.equal(ejections.length, 1);
    assert.equal(ejections[0]!.key, 's2');
    assert.equal(ejections[0]!.reason, 'success rate 50.0% below 52.0% (mean 90.0%)');
    assert.equal(ejections[0]!.ejectedUntil, NOW + 30_000);
    assert.equal(ejections[0]!.timesEjected, 1);
  });

  test('stdevFactor sets how far below the mean is too far', () => {
    const { subjects, ejections, detector, at } = rate();
    for (let i = 0; i < 4; i++) load(at(i), 100, 0);
    load(at(4), 60, 40); // mean 0.92, stdev 0.16, threshold 0.616 > 0.6 → ejected
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 1);

    const second = rate({ stdevFactor: 2100 }); // threshold 0.92 − 0.336 = 0.584 < 0.6
    for (let i = 0; i < 4; i++) load(second.at(i), 100, 0);
    load(second.at(4), 60, 40);
    second.detector.tick(second.subjects, NOW);
    assert.equal(second.ejections.length, 0);
  });

  test('all subjects equally bad: nobody is below the mean, nobody is ejected', () => {
    const { subjects, ejections, detector, at } = rate();
    for (let i = 0; i < 5; i++) load(at(i), 10, 90);
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 0);
  });

  // With stdevFactor 1000, one subject at 50% among three at 100% is below
  // the threshold (mean 0.875 − stdev 0.217 = 0.658): only minimumHosts spares it.
  function fourCandidates(minimumHosts: number, useSlice: boolean) {
    const s = rate({ stdevFactor: 1000, minimumHosts });
    load(s.at(0), 100, 0);
    load(s.at(1), 100, 0);
    load(s.at(2), 50, 50);
    load(s.at(3), 100, 0);
    load(s.at(4), 99, 0); // below requestVolume: not a candidate
    s.detector.tick(useSlice ? s.subjects.slice(0, 4) : s.subjects, NOW);
    return s.ejections.map((e) => e.key);
  }

  test('fewer than minimumHosts subjects with enough volume: none', () => {
    assert.deepEqual(fourCandidates(5, false), []);
    assert.deepEqual(fourCandidates(4, false), ['s2'], 'the same load with minimumHosts 4');
  });

  test('only 4 subjects when minimumHosts is 5: none', () => {
    assert.deepEqual(fourCandidates(5, true), []);
    assert.deepEqual(fourCandidates(4, true), ['s2'], 'the same load with minimumHosts 4');
  });

  test('a bad subject below requestVolume is not a candidate', () => {
    const { subjects, ejections, detector, at } = rate({ minimumHosts: 4 });
    for (let i = 0; i < 4; i++) load(at(i), 100, 0);
    load(at(4), 0, 99);
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 0);
  });

  test('enforcementPercentage 0: none', () => {
    const { subjects, ejections, detector, at } = rate({ enforcementPercentage: 0 });
    for (let i = 0; i < 4; i++) load(at(i), 100, 0);
    load(at(4), 0, 100);
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 0);
  });

  test('enforcementPercentage is a probability checked against random()', () => {
    const run = (random: number, enforcementPercentage: number) => {
      const s = setup(
        {
          consecutiveFailures: 0,
          successRateEjection: { ...RATE, enforcementPercentage },
        },
        5,
        () => random,
      );
      for (let i = 0; i < 4; i++) load(s.at(i), 100, 0);
      load(s.at(4), 0, 100);
      s.detector.tick(s.subjects, NOW);
      return s.ejections.length;
    };
    assert.equal(run(0.49, 50), 1);
    assert.equal(run(0.5, 50), 0);
  });
});

describe('failure percentage ejection (A50)', () => {
  const FAILURE: FailurePercentageEjection = {
    threshold: 40,
    enforcementPercentage: 100,
    minimumHosts: 5,
    requestVolume: 50,
  };
  function failure(overrides: Partial<FailurePercentageEjection> = {}) {
    return setup(
      {
        consecutiveFailures: 0,
        failurePercentageEjection: { ...FAILURE, ...overrides },
      },
      5,
    );
  }

  test('ejects a subject at 50% failure, not one at 30%', () => {
    const { subjects, ejections, detector, at } = failure();
    load(at(0), 50, 50);
    load(at(1), 70, 30);
    for (let i = 2; i < 5; i++) load(at(i), 100, 0);
    detector.tick(subjects, NOW);
    assert.deepEqual(ejections, [
      {
        key: 's0',
        reason: '50.0% of calls failed (threshold 40%)',
        ejectedUntil: NOW + 30_000,
        timesEjected: 1,
      },
    ]);
    assert.equal(at(1).ejectedUntil, 0);
  });

  test('exactly at the threshold is not above it', () => {
    const { subjects, ejections, detector, at } = failure();
    load(at(0), 60, 40);
    for (let i = 1; i < 5; i++) load(at(i), 100, 0);
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 0);
  });

  test('below requestVolume: not a candidate', () => {
    const { subjects, ejections, detector, at } = failure();
    load(at(0), 0, 49);
    for (let i = 1; i < 5; i++) load(at(i), 100, 0);
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 0);
  });

  test('fewer than minimumHosts candidates: none', () => {
    const { subjects, ejections, detector, at } = failure({ minimumHosts: 3 });
    load(at(0), 0, 100);
    load(at(1), 100, 0);
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 0);
  });

  test('minimumHosts 1: a lone failing subject is ejected', () => {
    const { subjects, ejections, detector, at } = failure({ minimumHosts: 1 });
    load(at(0), 0, 100);
    detector.tick(subjects, NOW);
    assert.deepEqual(
      ejections.map((e) => e.key),
      ['s0'],
    );
  });

  test('enforcementPercentage 0: none', () => {
    const { subjects, ejections, detector, at } = failure({ enforcementPercentage: 0 });
    load(at(0), 0, 100);
    for (let i = 1; i < 5; i++) load(at(i), 100, 0);
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 0);
  });

  test('tick resets the interval counters, so the next tick starts afresh', () => {
    const { subjects, ejections, detector, at } = failure();
    load(at(0), 70, 30);
    for (let i = 1; i < 5; i++) load(at(i), 100, 0);
    detector.tick(subjects, NOW);
    for (const subject of subjects) {
      assert.equal(subject.stats.intervalSuccesses, 0, subject.key);
      assert.equal(subject.stats.intervalFailures, 0, subject.key);
    }
    // 20 more failures for s0: 50 / 100 over both intervals, but only 20 in this one.
    for (let i = 0; i < 20; i++) detector.record(at(0), true, subjects, NOW + 1);
    for (let i = 1; i < 5; i++) load(at(i), 100, 0);
    detector.tick(subjects, NOW + 10_000);
    assert.equal(ejections.length, 0);
  });

  test('the interval counters are reset even with no ejection algorithm configured', () => {
    const { subjects, detector, at } = setup({}, 2);
    load(at(0), 5, 5);
    detector.tick(subjects, NOW);
    assert.equal(at(0).stats.intervalSuccesses, 0);
    assert.equal(at(0).stats.intervalFailures, 0);
  });

  test('an already ejected subject is not ejected again', () => {
    const { subjects, ejections, detector, at } = failure();
    at(0).ejectedUntil = NOW + 5;
    at(0).timesEjected = 1;
    load(at(0), 0, 100);
    for (let i = 1; i < 5; i++) load(at(i), 100, 0);
    detector.tick(subjects, NOW);
    assert.equal(ejections.length, 0);
    assert.equal(at(0).ejectedUntil, NOW + 5);
    assert.equal(at(0).timesEjected, 1);
  });
});

/** What the README's "Compared with gRFC A50" list says, checked on parsed configs. */
describe('compared with A50', () => {
  const parsed = (json: Record<string, unknown>) => parseOutlierDetection(json, 'x');
  const detectorOf = (config: OutlierDetectionConfig, n: number) => {
    const subjects: OutlierSubject[] = Array.from({ length: n }, (_, i) => ({
      key: `s${i}`,
      stats: new EndpointStats(),
      ejectedUntil: 0,
      timesEjected: 0,
    }));
    const ejected: string[] = [];
    const detector = new OutlierDetector(config, {
      eject: (subject) => ejected.push(subject.key),
      random: () => 0.999,
    });
    return { subjects, ejected, detector };
  };

  test("A50's defaults: 10 s, 30 s, 300 s, 10%; 1900/100/5/100; 85/100/5/50", () => {
    const config = parsed({ successRateEjection: {}, failurePercentageEjection: {} });
    assert.equal(config.intervalMs, 10_000);
    assert.equal(config.baseEjectionTimeMs, 30_000);
    assert.equal(config.maxEjectionTimeMs, 300_000);
    assert.equal(config.maxEjectionPercent, 10);
    assert.deepEqual(config.successRateEjection, {
      stdevFactor: 1900,
      enforcementPercentage: 100,
      minimumHosts: 5,
      requestVolume: 100,
    });
    assert.deepEqual(config.failurePercentageEjection, {
      threshold: 85,
      enforcementPercentage: 100,
      minimumHosts: 5,
      requestVolume: 50,
    });
  });

  test('failures: by default only UNAVAILABLE, INTERNAL, UNKNOWN and DEADLINE_EXCEEDED, not CANCELLED or NOT_FOUND', () => {
    const { detector } = detectorOf(parsed({}), 1);
    const failing = Array.from({ length: 17 }, (_, code) => code).filter((code) =>
      detector.isFailure(code),
    );
    assert.deepEqual(failing, [2, 4, 13, 14]);
  });

  test("failures: listing every code 1-16 gives A50's rule (every status but OK)", () => {
    const codes = Array.from({ length: 16 }, (_, i) => i + 1);
    const { detector } = detectorOf(parsed({ failureStatusCodes: codes }), 1);
    assert.equal(detector.isFailure(0), false);
    for (const code of codes) assert.equal(detector.isFailure(code), true, String(code));
  });

  test('an empty config ejects after 5 failures in a row; consecutiveFailures 0 gives A50 (none)', () => {
    const on = detectorOf(parsed({}), 10);
    for (let i = 0; i < 4; i++) on.detector.record(on.subjects[0]!, true, on.subjects, NOW);
    assert.deepEqual(on.ejected, []);
    on.detector.record(on.subjects[0]!, true, on.subjects, NOW);
    assert.deepEqual(on.ejected, ['s0']);

    const off = detectorOf(parsed({ consecutiveFailures: 0 }), 10);
    for (let i = 0; i < 100; i++) off.detector.record(off.subjects[0]!, true, off.subjects, NOW);
    off.detector.tick(off.subjects, NOW);
    assert.deepEqual(off.ejected, []);
  });

  test('max ejection percent as grpc-go and grpc-js: 10 endpoints at 10%, the second outlier is refused', () => {
    const { subjects, ejected, detector } = detectorOf(
      parsed({ consecutiveFailures: 0, failurePercentageEjection: { minimumHosts: 5 } }),
      10,
    );
    load(subjects[0]!, 0, 100);
    load(subjects[1]!, 0, 100);
    for (let i = 2; i < 10; i++) load(subjects[i]!, 100, 0);
    detector.tick(subjects, NOW);
    assert.deepEqual(ejected, ['s0']);
  });
});
