import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './errors';
import {
  DEFAULT_FAILURE_STATUS_CODES,
  NO_RESILIENCE,
  parseDurationMs,
  parseHealthCheck,
  parseOutlierDetection,
  parseResilience,
  parseSlowStart,
  RESILIENCE_FIELDS,
  splitPolicyJson,
  type OutlierDetectionConfig,
  type ResilienceConfig,
} from './resilience-config';

/** Asserts that `fn` throws a ConfigError for exactly `field`, whose problem matches `reason`. */
function rejects(fn: () => unknown, field: string, reason: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.code, 'BAD_CONFIG');
    assert.equal(e.field, field);
    assert.match(e.problem, reason);
    assert.ok(e.message.includes(field), `message names the field: ${e.message}`);
    return true;
  });
}

/** grpc-go's spelling: camelCase, "10s" durations, status names. */
const GRPC_GO_FORM = {
  interval: '2.5s',
  baseEjectionTime: '15s',
  maxEjectionTime: '120s',
  maxEjectionPercent: 20,
  consecutiveFailures: 3,
  failureStatusCodes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'],
  successRateEjection: {
    stdevFactor: 1500,
    enforcementPercentage: 80,
    minimumHosts: 3,
    requestVolume: 20,
  },
  failurePercentageEjection: {
    threshold: 50,
    enforcementPercentage: 90,
    minimumHosts: 4,
    requestVolume: 10,
  },
};

/** grpc-js's spelling of the same config: snake_case, {seconds, nanos} durations, status numbers. */
const GRPC_JS_FORM = {
  interval: { seconds: 2, nanos: 500_000_000 },
  base_ejection_time: { seconds: 15 },
  max_ejection_time: { seconds: '120', nanos: 0 },
  max_ejection_percent: 20,
  consecutive_failures: 3,
  failure_status_codes: [14, 8],
  success_rate_ejection: {
    stdev_factor: 1500,
    enforcement_percentage: 80,
    minimum_hosts: 3,
    request_volume: 20,
  },
  failure_percentage_ejection: {
    threshold: 50,
    enforcement_percentage: 90,
    minimum_hosts: 4,
    request_volume: 10,
  },
};

const PARSED_FORM: OutlierDetectionConfig = {
  intervalMs: 2500,
  baseEjectionTimeMs: 15_000,
  maxEjectionTimeMs: 120_000,
  maxEjectionPercent: 20,
  consecutiveFailures: 3,
  failureStatusCodes: new Set([14, 8]),
  successRateEjection: {
    stdevFactor: 1500,
    enforcementPercentage: 80,
    minimumHosts: 3,
    requestVolume: 20,
  },
  failurePercentageEjection: {
    threshold: 50,
    enforcementPercentage: 90,
    minimumHosts: 4,
    requestVolume: 10,
  },
};

const DEFAULT_OUTLIER: OutlierDetectionConfig = {
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
  consecutiveFailures: 5,
  failureStatusCodes: new Set([14, 13, 2, 4]),
  successRateEjection: undefined,
  failurePercentageEjection: undefined,
};

describe('parseOutlierDetection: the two spellings', () => {
  test('the grpc-go form parses to the expected config', () => {
    assert.deepEqual(parseOutlierDetection(GRPC_GO_FORM, 'x'), PARSED_FORM);
  });

  test('the grpc-js form of the same config parses to an identical result', () => {
    const js = parseOutlierDetection(GRPC_JS_FORM, 'x');
    assert.deepEqual(js, parseOutlierDetection(GRPC_GO_FORM, 'x'));
    assert.deepEqual(js, PARSED_FORM);
  });

  test('the forms can be mixed field by field', () => {
    const mixed = parseOutlierDetection(
      {
        interval: '2.5s',
        base_ejection_time: '15s',
        maxEjectionTime: { seconds: 120 },
        max_ejection_percent: 20,
        consecutiveFailures: 3,
        failure_status_codes: ['UNAVAILABLE', 8],
        successRateEjection: {
          stdev_factor: 1500,
          enforcementPercentage: 80,
          minimum_hosts: 3,
          requestVolume: 20,
        },
        failure_percentage_ejection: {
          threshold: 50,
          enforcementPercentage: 90,
          minimum_hosts: 4,
          requestVolume: 10,
        },
      },
      'x',
    );
    assert.deepEqual(mixed, PARSED_FORM);
  });
});

describe('defaults', () => {
  test('an empty outlier detection config gets every A50 default, no ejection algorithm', () => {
    assert.deepEqual(parseOutlierDetection({}, 'x'), DEFAULT_OUTLIER);
  });

  test('the default failure codes are UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED', () => {
    assert.deepEqual([...DEFAULT_FAILURE_STATUS_CODES], [14, 13, 2, 4]);
    assert.deepEqual(
      parseOutlierDetection({}, 'x').failureStatusCodes,
      new Set(['UNAVAILABLE', 'INTERNAL', 'UNKNOWN', 'DEADLINE_EXCEEDED'].map(codeOf)),
    );
  });

  test('an empty successRateEjection gets {stdevFactor 1900, enforcement 100, hosts 5, volume 100}', () => {
    assert.deepEqual(parseOutlierDetection({ successRateEjection: {} }, 'x').successRateEjection, {
      stdevFactor: 1900,
      enforcementPercentage: 100,
      minimumHosts: 5,
      requestVolume: 100,
    });
  });

  test('an empty failurePercentageEjection gets {threshold 85, enforcement 100, hosts 5, volume 50}', () => {
    assert.deepEqual(
      parseOutlierDetection({ failurePercentageEjection: {} }, 'x').failurePercentageEjection,
      { threshold: 85, enforcementPercentage: 100, minimumHosts: 5, requestVolume: 50 },
    );
  });

  test('maxEjectionTime defaults to 300s but never below baseEjectionTime', () => {
    assert.equal(
      parseOutlierDetection({ baseEjectionTime: '60s' }, 'x').maxEjectionTimeMs,
      300_000,
    );
    assert.equal(
      parseOutlierDetection({ baseEjectionTime: '600s' }, 'x').maxEjectionTimeMs,
      600_000,
    );
    assert.equal(
      parseOutlierDetection({ baseEjectionTime: '60s', maxEjectionTime: '10s' }, 'x')
        .maxEjectionTimeMs,
      60_000,
    );
  });

  test('an empty healthCheck checks the whole server every 5s', () => {
    assert.deepEqual(parseHealthCheck({}, 'x'), { serviceName: '', checkIntervalMs: 5000 });
  });

  test('slowStart with only a window is linear from 10%', () => {
    assert.deepEqual(parseSlowStart({ window: '30s' }, 'x'), {
      windowMs: 30_000,
      aggression: 1,
      minWeightPercent: 10,
    });
  });

  test('no resilience fields: nothing on, the panic threshold and startup grace off (0), removal hold-down 2 s', () => {
    const expected: ResilienceConfig = {
      outlierDetection: undefined,
      healthCheck: undefined,
      panicThresholdPercent: 0,
      slowStart: undefined,
      startupGraceMs: 0,
      removalHoldDownMs: 2_000,
      subsetting: undefined,
    };
    assert.deepEqual(parseResilience({}, 'x'), expected);
    assert.deepEqual(NO_RESILIENCE, expected);
  });

  test("panicThreshold 0 turns the panic mode off; Envoy's 50 is there for the asking", () => {
    assert.equal(parseResilience({ panicThreshold: 0 }, 'x').panicThresholdPercent, 0);
    assert.equal(parseResilience({ panicThreshold: 50 }, 'x').panicThresholdPercent, 50);
    assert.equal(parseResilience({ panic_threshold: 50 }, 'x').panicThresholdPercent, 50);
  });

  test('startupGraceMs in ms, 0 to 10000, in either spelling', () => {
    assert.equal(parseResilience({ startupGraceMs: 0 }, 'x').startupGraceMs, 0);
    assert.equal(parseResilience({ startupGraceMs: 100 }, 'x').startupGraceMs, 100);
    assert.equal(parseResilience({ startup_grace_ms: 10_000 }, 'x').startupGraceMs, 10_000);
  });

  test('removalHoldDownMs in ms, 0 (off) to 60000, in either spelling', () => {
    assert.equal(parseResilience({ removalHoldDownMs: 0 }, 'x').removalHoldDownMs, 0);
    assert.equal(parseResilience({ removalHoldDownMs: 2_000 }, 'x').removalHoldDownMs, 2_000);
    assert.equal(parseResilience({ removal_hold_down_ms: 60_000 }, 'x').removalHoldDownMs, 60_000);
  });
});

/** The status code of a name, through the parser (so the test does not restate the table). */
function codeOf(name: string): number {
  const [code] = parseOutlierDetection({ failureStatusCodes: [name] }, 'x').failureStatusCodes;
  assert.ok(code !== undefined);
  return code;
}

describe('failureStatusCodes', () => {
  test('names map to their gRPC codes', () => {
    const names = [
      'CANCELLED',
      'UNKNOWN',
      'INVALID_ARGUMENT',
      'DEADLINE_EXCEEDED',
      'NOT_FOUND',
      'ALREADY_EXISTS',
      'PERMISSION_DENIED',
      'RESOURCE_EXHAUSTED',
      'FAILED_PRECONDITION',
      'ABORTED',
      'OUT_OF_RANGE',
      'UNIMPLEMENTED',
      'INTERNAL',
      'UNAVAILABLE',
      'DATA_LOSS',
      'UNAUTHENTICATED',
    ];
    const parsed = parseOutlierDetection({ failureStatusCodes: names }, 'x').failureStatusCodes;
    assert.deepEqual([...parsed], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  });

  test('numbers 1-16 are taken as they are, and mix with names', () => {
    assert.deepEqual(
      parseOutlierDetection({ failureStatusCodes: [1, 16, 'NOT_FOUND'] }, 'x').failureStatusCodes,
      new Set([1, 16, 5]),
    );
  });

  test('a given list replaces the defaults rather than adding to them', () => {
    assert.deepEqual(
      parseOutlierDetection({ failure_status_codes: ['NOT_FOUND'] }, 'x').failureStatusCodes,
      new Set([5]),
    );
  });

  test('an empty list means no code counts as a failure', () => {
    assert.equal(parseOutlierDetection({ failureStatusCodes: [] }, 'x').failureStatusCodes.size, 0);
  });

  test('duplicates collapse (a name and its number)', () => {
    assert.deepEqual(
      parseOutlierDetection({ failureStatusCodes: ['UNAVAILABLE', 14] }, 'x').failureStatusCodes,
      new Set([14]),
    );
  });

  // BUG: names are looked up with `in` on a plain object, so Object.prototype's
  // members pass as status names: "constructor" yields the Object function.
  test('names inherited from Object.prototype are not status names', () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      rejects(
        () => parseOutlierDetection({ failureStatusCodes: ['UNAVAILABLE', name] }, 'x'),
        'x.failureStatusCodes[1]',
        /gRPC status name/,
      );
    }
  });

  // BUG: the code 0 is refused ("a code 1-16") but its name "OK" is accepted.
  test('"OK" is refused like the code 0: a success cannot count as a failure', () => {
    rejects(
      () => parseOutlierDetection({ failureStatusCodes: ['OK'] }, 'x'),
      'x.failureStatusCodes[0]',
      /a code 1-16/,
    );
  });
});

describe('parseDurationMs', () => {
  const valid: [string, unknown, number][] = [
    ['"10s"', '10s', 10_000],
    ['"0.5s"', '0.5s', 500],
    ['"0.000000001s" (one nanosecond)', '0.000000001s', 1e-6],
    ['"1.25s"', '1.25s', 1250],
    ['"0s"', '0s', 0],
    ['{seconds: 10}', { seconds: 10 }, 10_000],
    [
      '{seconds: "10", nanos: 500000000} (int64 as a string)',
      { seconds: '10', nanos: 5e8 },
      10_500,
    ],
    ['{nanos: 1000000}', { nanos: 1_000_000 }, 1],
    ['{nanos: 999999999}', { nanos: 999_999_999 }, 999.999999],
    ['{}', {}, 0],
  ];
  for (const [name, value, ms] of valid) {
    test(`${name} is ${ms} ms`, () => {
      assert.equal(parseDurationMs(value, 'd'), ms);
    });
  }

  const invalid: [string, unknown, string, RegExp][] = [
    ['"10" (no unit)', '10', 'd', /like "10s"/],
    ['"-1s"', '-1s', 'd', /like "10s"/],
    ['"10ms"', '10ms', 'd', /like "10s"/],
    ['"1.s"', '1.s', 'd', /like "10s"/],
    ['".5s"', '.5s', 'd', /like "10s"/],
    ['ten decimals', '0.0000000001s', 'd', /like "10s"/],
    ['" 1s"', ' 1s', 'd', /like "10s"/],
    ['a number', 10, 'd', /got number/],
    ['null', null, 'd', /got null/],
    ['an array', [10], 'd', /got an array/],
    ['{seconds: -1}', { seconds: -1 }, 'd.seconds', /non-negative integer/],
    ['{seconds: 1.5}', { seconds: 1.5 }, 'd.seconds', /non-negative integer/],
    ['{seconds: "-1"}', { seconds: '-1' }, 'd.seconds', /non-negative integer/],
    ['{seconds: "1e3"}', { seconds: '1e3' }, 'd.seconds', /non-negative integer/],
    ['{nanos: 1e9}', { nanos: 1e9 }, 'd.nanos', /0-999999999/],
    ['{nanos: -1}', { nanos: -1 }, 'd.nanos', /0-999999999/],
    ['{nanos: "5"}', { nanos: '5' }, 'd.nanos', /0-999999999/],
    ['{seconds: 1, millis: 5}', { seconds: 1, millis: 5 }, 'd.millis', /unknown field/],
  ];
  for (const [name, value, field, reason] of invalid) {
    test(`${name} is refused at ${field}`, () => {
      rejects(() => parseDurationMs(value, 'd'), field, reason);
    });
  }

  test('durations reach the config in milliseconds', () => {
    const config = parseOutlierDetection(
      { interval: '0.5s', baseEjectionTime: '0.000000001s', maxEjectionTime: { seconds: 10 } },
      'x',
    );
    assert.equal(config.intervalMs, 500);
    assert.equal(config.baseEjectionTimeMs, 1e-6);
    assert.equal(config.maxEjectionTimeMs, 10_000);
  });
});

describe('both spellings of one field', () => {
  const twice: [string, Record<string, unknown>, string, string][] = [
    [
      'baseEjectionTime',
      { outlierDetection: { baseEjectionTime: '1s', base_ejection_time: '1s' } },
      'x.outlierDetection.baseEjectionTime',
      'base_ejection_time',
    ],
    [
      'maxEjectionPercent',
      { outlierDetection: { maxEjectionPercent: 5, max_ejection_percent: 6 } },
      'x.outlierDetection.maxEjectionPercent',
      'max_ejection_percent',
    ],
    [
      'failureStatusCodes',
      { outlierDetection: { failureStatusCodes: [], failure_status_codes: [] } },
      'x.outlierDetection.failureStatusCodes',
      'failure_status_codes',
    ],
    [
      'successRateEjection',
      { outlierDetection: { successRateEjection: {}, success_rate_ejection: {} } },
      'x.outlierDetection.successRateEjection',
      'success_rate_ejection',
    ],
    [
      'successRateEjection.minimumHosts',
      { outlierDetection: { successRateEjection: { minimumHosts: 3, minimum_hosts: 3 } } },
      'x.outlierDetection.successRateEjection.minimumHosts',
      'minimum_hosts',
    ],
    [
      'failure_percentage_ejection.requestVolume',
      {
        outlierDetection: {
          failure_percentage_ejection: { requestVolume: 3, request_volume: 4 },
        },
      },
      'x.outlierDetection.failure_percentage_ejection.requestVolume',
      'request_volume',
    ],
    [
      'healthCheck.serviceName',
      { healthCheck: { serviceName: 'a', service_name: 'a' } },
      'x.healthCheck.serviceName',
      'service_name',
    ],
    [
      'slowStart.minWeightPercent',
      { slowStart: { window: '1s', minWeightPercent: 5, min_weight_percent: 5 } },
      'x.slowStart.minWeightPercent',
      'min_weight_percent',
    ],
  ];
  for (const [name, json, field, snake] of twice) {
    test(`${name} given in both forms is an error naming the field`, () => {
      rejects(() => parseResilience(json, 'x'), field, new RegExp(`given twice.*${snake}`));
    });
  }
});

describe('invalid resilience options name the exact field', () => {
  const OD = 'x.outlierDetection';
  const od = (fields: Record<string, unknown>) => ({ outlierDetection: fields });
  const invalid: [string, Record<string, unknown>, string, RegExp][] = [
    // Outlier detection itself.
    ['outlierDetection a string', { outlierDetection: 'on' }, OD, /expected an object/],
    ['outlierDetection null', { outlierDetection: null }, OD, /expected an object, got null/],
    ['outlierDetection an array', { outlierDetection: [] }, OD, /got an array/],
    ['an unknown outlier field', od({ ejectAll: true }), `${OD}.ejectAll`, /unknown field/],
    [
      'a misspelt outlier field',
      od({ baseEjectionTimes: '1s' }),
      `${OD}.baseEjectionTimes`,
      /unknown field/,
    ],
    [
      'childPolicy',
      od({ childPolicy: [{ round_robin: {} }] }),
      `${OD}.childPolicy`,
      /not used here/,
    ],
    ['child_policy', od({ child_policy: [] }), `${OD}.child_policy`, /not used here/],
    // Durations.
    ['interval "10"', od({ interval: '10' }), `${OD}.interval`, /like "10s"/],
    ['interval "-1s"', od({ interval: '-1s' }), `${OD}.interval`, /like "10s"/],
    ['interval 10', od({ interval: 10 }), `${OD}.interval`, /got number/],
    [
      'interval {seconds: -1}',
      od({ interval: { seconds: -1 } }),
      `${OD}.interval.seconds`,
      /non-negative/,
    ],
    [
      'interval {nanos: 1e9}',
      od({ interval: { nanos: 1e9 } }),
      `${OD}.interval.nanos`,
      /0-999999999/,
    ],
    ['interval "0s"', od({ interval: '0s' }), `${OD}.interval`, /at least 1ms/],
    ['interval of 1ns', od({ interval: '0.000000001s' }), `${OD}.interval`, /at least 1ms/],
    [
      'baseEjectionTime "30"',
      od({ baseEjectionTime: '30' }),
      `${OD}.baseEjectionTime`,
      /like "10s"/,
    ],
    [
      'base_ejection_time "30"',
      od({ base_ejection_time: '30' }),
      `${OD}.base_ejection_time`,
      /like "10s"/,
    ],
    [
      'base_ejection_time {seconds: -1}',
      od({ base_ejection_time: { seconds: -1 } }),
      `${OD}.base_ejection_time.seconds`,
      /non-negative/,
    ],
    ['maxEjectionTime "5m"', od({ maxEjectionTime: '5m' }), `${OD}.maxEjectionTime`, /like "10s"/],
    [
      'max_ejection_time {minutes: 5}',
      od({ max_ejection_time: { minutes: 5 } }),
      `${OD}.max_ejection_time.minutes`,
      /unknown field/,
    ],
    // Numbers.
    [
      'maxEjectionPercent 101',
      od({ maxEjectionPercent: 101 }),
      `${OD}.maxEjectionPercent`,
      /integer 0-100.*101/,
    ],
    [
      'max_ejection_percent -1',
      od({ max_ejection_percent: -1 }),
      `${OD}.max_ejection_percent`,
      /integer 0-100/,
    ],
    [
      'maxEjectionPercent "10"',
      od({ maxEjectionPercent: '10' }),
      `${OD}.maxEjectionPercent`,
      /integer 0-100, got the string "10"/,
    ],
    [
      'consecutiveFailures 1.5',
      od({ consecutiveFailures: 1.5 }),
      `${OD}.consecutiveFailures`,
      /integer 0-1000000/,
    ],
    [
      'consecutive_failures -1',
      od({ consecutive_failures: -1 }),
      `${OD}.consecutive_failures`,
      /integer 0-1000000/,
    ],
    // Failure codes.
    [
      'failureStatusCodes "NOPE"',
      od({ failureStatusCodes: ['UNAVAILABLE', 'NOPE'] }),
      `${OD}.failureStatusCodes[1]`,
      /status name.*"NOPE"/,
    ],
    [
      'failure_status_codes 17',
      od({ failure_status_codes: [14, 4, 17] }),
      `${OD}.failure_status_codes[2]`,
      /code 1-16/,
    ],
    [
      'a lower-case status name',
      od({ failureStatusCodes: ['unavailable'] }),
      `${OD}.failureStatusCodes[0]`,
      /status name/,
    ],
    [
      'the status code 0 (OK)',
      od({ failureStatusCodes: [0] }),
      `${OD}.failureStatusCodes[0]`,
      /code 1-16/,
    ],
    [
      'a status code 14.5',
      od({ failureStatusCodes: [14.5] }),
      `${OD}.failureStatusCodes[0]`,
      /code 1-16/,
    ],
    [
      'failureStatusCodes not a list',
      od({ failureStatusCodes: 'UNAVAILABLE' }),
      `${OD}.failureStatusCodes`,
      /expected an array/,
    ],
    // Success rate.
    [
      'successRateEjection true',
      od({ successRateEjection: true }),
      `${OD}.successRateEjection`,
      /expected an object, got boolean/,
    ],
    [
      'stdevFactor -1',
      od({ successRateEjection: { stdevFactor: -1 } }),
      `${OD}.successRateEjection.stdevFactor`,
      /integer 0-1000000/,
    ],
    [
      'stdevFactor 1.9',
      od({ successRateEjection: { stdevFactor: 1.9 } }),
      `${OD}.successRateEjection.stdevFactor`,
      /integer/,
    ],
    [
      'stdev_factor "1900"',
      od({ success_rate_ejection: { stdev_factor: '1900' } }),
      `${OD}.success_rate_ejection.stdev_factor`,
      /integer/,
    ],
    [
      'success rate enforcementPercentage 101',
      od({ successRateEjection: { enforcementPercentage: 101 } }),
      `${OD}.successRateEjection.enforcementPercentage`,
      /integer 0-100/,
    ],
    [
      'success rate minimum_hosts 0',
      od({ successRateEjection: { minimum_hosts: 0 } }),
      `${OD}.successRateEjection.minimum_hosts`,
      /integer 1-/,
    ],
    [
      'success rate requestVolume 0',
      od({ successRateEjection: { requestVolume: 0 } }),
      `${OD}.successRateEjection.requestVolume`,
      /integer 1-/,
    ],
    [
      'an unknown success rate field',
      od({ successRateEjection: { stdev: 1 } }),
      `${OD}.successRateEjection.stdev`,
      /unknown field/,
    ],
    // Failure percentage.
    [
      'failure threshold 101',
      od({ failurePercentageEjection: { threshold: 101 } }),
      `${OD}.failurePercentageEjection.threshold`,
      /integer 0-100/,
    ],
    [
      'failure threshold in snake form',
      od({ failure_percentage_ejection: { threshold: -5 } }),
      `${OD}.failure_percentage_ejection.threshold`,
      /integer 0-100/,
    ],
    [
      'failure enforcement_percentage 200',
      od({ failurePercentageEjection: { enforcement_percentage: 200 } }),
      `${OD}.failurePercentageEjection.enforcement_percentage`,
      /integer 0-100/,
    ],
    [
      'failure minimumHosts 0',
      od({ failurePercentageEjection: { minimumHosts: 0 } }),
      `${OD}.failurePercentageEjection.minimumHosts`,
      /integer 1-/,
    ],
    [
      'failure request_volume 0',
      od({ failure_percentage_ejection: { request_volume: 0 } }),
      `${OD}.failure_percentage_ejection.request_volume`,
      /integer 1-/,
    ],
    [
      'failurePercentageEjection []',
      od({ failurePercentageEjection: [] }),
      `${OD}.failurePercentageEjection`,
      /got an array/,
    ],
    // Health check.
    ['healthCheck null', { healthCheck: null }, 'x.healthCheck', /expected an object, got null/],
    ['healthCheck true', { healthCheck: true }, 'x.healthCheck', /expected an object/],
    [
      'serviceName a number',
      { healthCheck: { serviceName: 5 } },
      'x.healthCheck.serviceName',
      /expected a string, got number/,
    ],
    [
      'service_name a number',
      { healthCheck: { service_name: 5 } },
      'x.healthCheck.service_name',
      /expected a string, got number/,
    ],
    [
      'checkInterval "5"',
      { healthCheck: { checkInterval: '5' } },
      'x.healthCheck.checkInterval',
      /like "10s"/,
    ],
    [
      'check_interval "5"',
      { healthCheck: { check_interval: '5' } },
      'x.healthCheck.check_interval',
      /like "10s"/,
    ],
    [
      'checkInterval 1ms',
      { healthCheck: { checkInterval: '0.001s' } },
      'x.healthCheck.checkInterval',
      /at least 10ms/,
    ],
    [
      'an unknown health field',
      { healthCheck: { service: '' } },
      'x.healthCheck.service',
      /unknown field/,
    ],
    // Slow start.
    ['slowStart without a window', { slowStart: {} }, 'x.slowStart.window', /required/],
    ['slowStart "30s"', { slowStart: '30s' }, 'x.slowStart', /expected an object/],
    ['slowStart window "30"', { slowStart: { window: '30' } }, 'x.slowStart.window', /like "10s"/],
    [
      'aggression 0',
      { slowStart: { window: '30s', aggression: 0 } },
      'x.slowStart.aggression',
      /above 0/,
    ],
    [
      'aggression -1',
      { slowStart: { window: '30s', aggression: -1 } },
      'x.slowStart.aggression',
      /above 0/,
    ],
    [
      'aggression "2"',
      { slowStart: { window: '30s', aggression: '2' } },
      'x.slowStart.aggression',
      /above 0/,
    ],
    [
      'aggression Infinity',
      { slowStart: { window: '30s', aggression: Infinity } },
      'x.slowStart.aggression',
      /above 0/,
    ],
    [
      'aggression NaN',
      { slowStart: { window: '30s', aggression: NaN } },
      'x.slowStart.aggression',
      /above 0/,
    ],
    [
      'minWeightPercent 0',
      { slowStart: { window: '30s', minWeightPercent: 0 } },
      'x.slowStart.minWeightPercent',
      /integer 1-100/,
    ],
    [
      'min_weight_percent 101',
      { slowStart: { window: '30s', min_weight_percent: 101 } },
      'x.slowStart.min_weight_percent',
      /integer 1-100/,
    ],
    [
      'an unknown slow start field',
      { slowStart: { window: '30s', ramp: 'linear' } },
      'x.slowStart.ramp',
      /unknown field/,
    ],
    // Panic threshold.
    ['panicThreshold 150', { panicThreshold: 150 }, 'x.panicThreshold', /integer 0-100.*150/],
    ['panicThreshold -1', { panicThreshold: -1 }, 'x.panicThreshold', /integer 0-100/],
    ['panicThreshold "50"', { panicThreshold: '50' }, 'x.panicThreshold', /integer 0-100/],
    [
      'panicThreshold null',
      { panicThreshold: null },
      'x.panicThreshold',
      /integer 0-100, got null/,
    ],
    // Startup grace.
    [
      'startupGraceMs 10001',
      { startupGraceMs: 10_001 },
      'x.startupGraceMs',
      /integer 0-10000.*10001/,
    ],
    ['startup_grace_ms -1', { startup_grace_ms: -1 }, 'x.startup_grace_ms', /integer 0-10000/],
    ['startupGraceMs 2.5', { startupGraceMs: 2.5 }, 'x.startupGraceMs', /integer 0-10000/],
    ['startupGraceMs "100ms"', { startupGraceMs: '100ms' }, 'x.startupGraceMs', /integer 0-10000/],
    [
      'startupGraceMs in both spellings',
      { startupGraceMs: 1, startup_grace_ms: 2 },
      'x.startupGraceMs',
      /given twice/,
    ],
    // Removal hold-down.
    [
      'removalHoldDownMs 60001',
      { removalHoldDownMs: 60_001 },
      'x.removalHoldDownMs',
      /integer 0-60000.*60001/,
    ],
    [
      'removal_hold_down_ms -1',
      { removal_hold_down_ms: -1 },
      'x.removal_hold_down_ms',
      /integer 0-60000/,
    ],
    [
      'removalHoldDownMs "5s"',
      { removalHoldDownMs: '5s' },
      'x.removalHoldDownMs',
      /integer 0-60000/,
    ],
    [
      'removalHoldDownMs in both spellings',
      { removalHoldDownMs: 1, removal_hold_down_ms: 2 },
      'x.removalHoldDownMs',
      /given twice/,
    ],
  ];
  for (const [name, json, field, reason] of invalid) {
    test(`${name} → ${field}`, () => {
      rejects(() => parseResilience(json, 'x'), field, reason);
    });
  }

  // BUG: the "at least 10ms" check always names `checkInterval`, even when the
  // snake form was given (every other check names the form that was used).
  test('check_interval too short names check_interval, the form that was given', () => {
    rejects(
      () => parseResilience({ healthCheck: { check_interval: '0.001s' } }, 'x'),
      'x.healthCheck.check_interval',
      /at least 10ms/,
    );
  });
});

describe('valid health check and slow start', () => {
  test('healthCheck in either form', () => {
    assert.deepEqual(parseHealthCheck({ serviceName: 'svc', checkInterval: '0.01s' }, 'x'), {
      serviceName: 'svc',
      checkIntervalMs: 10,
    });
    assert.deepEqual(
      parseHealthCheck({ service_name: 'svc', check_interval: { seconds: 2 } }, 'x'),
      { serviceName: 'svc', checkIntervalMs: 2000 },
    );
  });

  test('slowStart with every field', () => {
    assert.deepEqual(
      parseSlowStart({ window: { seconds: 60 }, aggression: 2.5, min_weight_percent: 100 }, 'x'),
      { windowMs: 60_000, aggression: 2.5, minWeightPercent: 100 },
    );
  });
});

describe('parseResilience', () => {
  test('parses each option under its field path', () => {
    const config = parseResilience(
      {
        outlierDetection: GRPC_JS_FORM,
        healthCheck: { serviceName: 'grpc.health.v1.Health' },
        panicThreshold: 30,
        slowStart: { window: '45s', aggression: 2 },
        startupGraceMs: 50,
        removalHoldDownMs: 2_000,
        subsetting: { subsetSize: 10 },
      },
      'x',
    );
    assert.deepEqual(config, {
      outlierDetection: PARSED_FORM,
      healthCheck: { serviceName: 'grpc.health.v1.Health', checkIntervalMs: 5000 },
      panicThresholdPercent: 30,
      slowStart: { windowMs: 45_000, aggression: 2, minWeightPercent: 10 },
      startupGraceMs: 50,
      removalHoldDownMs: 2_000,
      subsetting: { subsetSize: 10, mode: 'random', clientId: undefined },
    });
  });

  test('ignores fields that are not resilience options (they belong to the policy)', () => {
    assert.deepEqual(parseResilience({ choiceCount: 3, subsets: [] }, 'x'), NO_RESILIENCE);
  });
});

describe('splitPolicyJson', () => {
  test('separates the policy’s own fields from the resilience options', () => {
    const { own, resilience } = splitPolicyJson(
      {
        choiceCount: 3,
        defaultLatency: '0.1s',
        outlierDetection: { consecutiveFailures: 2 },
        healthCheck: {},
        panicThreshold: 0,
        slowStart: { window: '10s' },
        startup_grace_ms: 200,
        removal_hold_down_ms: 0,
        subsetting: { subset_size: 3, mode: 'deterministic', client_id: 2 },
      },
      'x',
    );
    assert.deepEqual(own, { choiceCount: 3, defaultLatency: '0.1s' });
    assert.deepEqual(resilience, {
      outlierDetection: { ...DEFAULT_OUTLIER, consecutiveFailures: 2 },
      healthCheck: { serviceName: '', checkIntervalMs: 5000 },
      panicThresholdPercent: 0,
      slowStart: { windowMs: 10_000, aggression: 1, minWeightPercent: 10 },
      startupGraceMs: 200,
      removalHoldDownMs: 0,
      subsetting: { subsetSize: 3, mode: 'deterministic', clientId: 2 },
    });
    for (const field of RESILIENCE_FIELDS) assert.ok(!(field in own), field);
  });

  test('own fields are passed through untouched, even invalid ones', () => {
    const { own } = splitPolicyJson({ colour: 'blue', choiceCount: 'many' }, 'x');
    assert.deepEqual(own, { colour: 'blue', choiceCount: 'many' });
  });

  test('null and undefined are an empty config', () => {
    for (const json of [null, undefined]) {
      assert.deepEqual(splitPolicyJson(json, 'x'), { own: {}, resilience: NO_RESILIENCE });
    }
  });

  test('an array, a string or a number is an error naming the policy', () => {
    rejects(() => splitPolicyJson([], 'x'), 'x', /expected an object, got an array/);
    rejects(() => splitPolicyJson('{}', 'x'), 'x', /expected an object, got the string "\{\}"/);
    rejects(() => splitPolicyJson(1, 'x'), 'x', /expected an object, got number/);
  });

  test('an invalid resilience option is named under the field given', () => {
    rejects(
      () => splitPolicyJson({ outlierDetection: { interval: '10' } }, 'lb[0].grpc-lb.round_robin'),
      'lb[0].grpc-lb.round_robin.outlierDetection.interval',
      /like "10s"/,
    );
  });
});
