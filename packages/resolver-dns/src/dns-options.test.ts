import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '@grpc-lb/core';
import {
  checkOptions,
  DEFAULT_DNS_OPTIONS,
  mergeSettings,
  optionsFromChannel,
  optionsFromParams,
} from './dns-options';
import { createDnsResolverFactory } from './dns-resolver-factory';

describe('DNS options', () => {
  test('defaults: 30 s interval, 1 s floor, 5 min ceiling, TTL off, both families, never stale', () => {
    assert.deepEqual(mergeSettings(), {
      intervalMs: 30_000,
      minIntervalMs: 1_000,
      maxIntervalMs: 300_000,
      useTtl: false,
      timeoutMs: undefined,
      attempts: undefined,
      family: 'any',
      maxStaleMs: Infinity,
      holdDownAnswers: 2,
      holdDownMs: 5_000,
    });
    assert.equal(DEFAULT_DNS_OPTIONS.timeoutMs, 2_000);
    assert.equal(DEFAULT_DNS_OPTIONS.attempts, 2);
  });

  test('the target beats the channel option, which beats the factory', () => {
    const settings = mergeSettings(
      { intervalMs: 10_000, family: 'ipv6', attempts: 1 },
      optionsFromChannel({ 'grpc-lb.dns.interval_ms': 5_000, 'grpc-lb.dns.family': 'ipv4' }),
      { intervalMs: 2_000 },
    );
    assert.equal(settings.intervalMs, 2_000);
    assert.equal(settings.family, 'ipv4');
    assert.equal(settings.attempts, 1);
  });

  test('the hold-down is set by a target parameter, a channel option or the factory; bad values name the option', () => {
    assert.deepEqual(
      optionsFromParams(
        new Map([
          ['hold_down_answers', '3'],
          ['hold_down', '0s'],
        ]),
        'dns+lb:///a:1',
      ),
      { holdDownAnswers: 3, holdDownMs: 0 },
    );
    const settings = mergeSettings(
      { holdDownAnswers: 5, holdDownMs: 60_000 },
      optionsFromChannel({ 'grpc-lb.dns.hold_down_ms': 10_000 }),
    );
    assert.equal(settings.holdDownAnswers, 5);
    assert.equal(settings.holdDownMs, 10_000);
    assert.throws(
      () => optionsFromChannel({ 'grpc-lb.dns.hold_down_answers': 0 }),
      (error: unknown) =>
        error instanceof ConfigError && /hold_down_answers.*integer 1-100/.test(error.message),
    );
    assert.throws(
      () => optionsFromParams(new Map([['hold_down', 'soon']]), 'dns+lb:///a:1'),
      /parameter hold_down: expected a duration/,
    );
    assert.throws(() => checkOptions({ holdDownMs: -1 }, 'dns'), /dns\.holdDownMs/);
  });

  test('the floor raises a shorter interval and ceiling', () => {
    const settings = mergeSettings({
      minIntervalMs: 5_000,
      intervalMs: 1_000,
      maxIntervalMs: 2_000,
    });
    assert.equal(settings.intervalMs, 5_000);
    assert.equal(settings.maxIntervalMs, 5_000);
  });

  test('channel options accept numbers and 0/1 booleans, and reject anything else naming the option', () => {
    assert.deepEqual(
      optionsFromChannel({ 'grpc-lb.dns.use_ttl': 1, 'grpc-lb.dns.max_stale_ms': 60_000 }),
      { useTtl: true, maxStaleMs: 60_000 },
    );
    for (const [option, value, problem] of [
      ['grpc-lb.dns.interval_ms', '5s', /expected a number of milliseconds/],
      ['grpc-lb.dns.interval_ms', 50, /expected 100ms-24h, got 50ms/],
      ['grpc-lb.dns.timeout_ms', 0, /expected 10ms-1m/],
      ['grpc-lb.dns.attempts', 1.5, /integer 1-5/],
      ['grpc-lb.dns.use_ttl', 'maybe', /true or false/],
      ['grpc-lb.dns.family', 6, /any, ipv4 or ipv6/],
    ] as const) {
      assert.throws(
        () => optionsFromChannel({ [option]: value }),
        (error: unknown) =>
          error instanceof ConfigError && error.field === option && problem.test(error.message),
        `${option}=${String(value)}`,
      );
    }
  });

  test('factory options are checked when the factory is created', () => {
    assert.throws(
      () => createDnsResolverFactory({ intervalMs: 10 }),
      (error: unknown) =>
        error instanceof ConfigError && error.field === 'createDnsResolverFactory.intervalMs',
    );
    assert.deepEqual(checkOptions({ maxStaleMs: Infinity, useTtl: true }, 'x'), {
      maxStaleMs: Infinity,
      useTtl: true,
    });
  });
});
