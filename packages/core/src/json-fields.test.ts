import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './errors';
import { Fields, parseDurationMs, snakeCase, type Json } from './json-fields';

function rejects(fn: () => unknown, field: string, reason: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.match(e.problem, reason);
    return true;
  });
}

describe('json fields', () => {
  test('snake_case twins of camelCase names', () => {
    assert.equal(snakeCase('minimumHosts'), 'minimum_hosts');
    assert.equal(snakeCase('failurePercentageEjection'), 'failure_percentage_ejection');
    assert.equal(snakeCase('window'), 'window');
  });

  test('a field is read in either spelling and named as written', () => {
    const camel = Fields.of({ minimumHosts: 3 }, 'p');
    const snake = Fields.of({ minimum_hosts: 4 }, 'p');
    assert.equal(camel.get('minimumHosts'), 3);
    assert.equal(snake.get('minimumHosts'), 4);
    assert.equal(camel.at('minimumHosts'), 'p.minimumHosts');
    assert.equal(snake.at('minimumHosts'), 'p.minimum_hosts');
    assert.equal(
      snake.read('minimumHosts', (v, at) => `${String(v)}@${at}`),
      '4@p.minimum_hosts',
    );
    assert.equal(
      snake.read('requestVolume', () => 1),
      undefined,
    );
  });

  test('both spellings at once is an error naming the camelCase field', () => {
    rejects(
      () => Fields.of({ minimumHosts: 3, minimum_hosts: 3 }, 'p').get('minimumHosts'),
      'p.minimumHosts',
      /given twice \(also as minimum_hosts\)/,
    );
  });

  test('inherited properties are not fields', () => {
    const f = Fields.of({}, 'p');
    assert.equal(f.get('constructor'), undefined);
    assert.equal(f.has('toString'), false);
  });

  test('an unknown field is an error by default, naming the field and the expected ones', () => {
    rejects(
      () =>
        Fields.of({ interval: '1s', colour: 'red' }, 'p').only(['interval', 'baseEjectionTime']),
      'p.colour',
      /^unknown field \(expected one of interval, baseEjectionTime\)$/,
    );
    rejects(() => Fields.of({ x: 1 }, 'p').only([]), 'p.x', /^unknown field$/);
    Fields.of({ base_ejection_time: '1s' }, 'p').only(['baseEjectionTime']);
  });

  test('an ignoring context reports each unknown field with where it sits, and goes on', () => {
    const json: Json = { interval: '1s', colour: 'red', shade: 2 };
    const seen: [string, Json, string][] = [];
    Fields.of(json, 'p', {
      unknownFields: 'ignore',
      onIgnored: (path, container, key) => seen.push([path, container, key]),
    }).only(['interval']);
    assert.deepEqual(seen, [
      ['p.colour', json, 'colour'],
      ['p.shade', json, 'shade'],
    ]);
  });

  test('durations: proto JSON strings and {seconds, nanos}', () => {
    assert.equal(parseDurationMs('10s', 'd'), 10_000);
    assert.equal(parseDurationMs('0.25s', 'd'), 250);
    assert.equal(parseDurationMs({ seconds: 1, nanos: 500_000_000 }, 'd'), 1500);
    rejects(() => parseDurationMs({ seconds: 1, millis: 5 }, 'd'), 'd.millis', /unknown field/);
    const ignored: string[] = [];
    assert.equal(
      parseDurationMs({ seconds: 1, millis: 5 }, 'd', {
        unknownFields: 'ignore',
        onIgnored: (path) => ignored.push(path),
      }),
      1000,
    );
    assert.deepEqual(ignored, ['d.millis']);
  });
});
