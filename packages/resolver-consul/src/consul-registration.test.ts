import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { ConfigError } from '@grpc-lb/core';
import type { AgentResponse } from './consul-agent';
import {
  ConsulRegistration,
  DEFAULT_ANTI_ENTROPY_INTERVAL_MS,
  registrationBody,
  type AgentCall,
  type ConsulRegistrationOptions,
} from './consul-registration';

test('registrationBody: a gRPC check against host:port, weights, tags, meta', () => {
  const { body, id, address, ttlMs } = registrationBody({
    name: 'hello',
    host: '10.0.0.7',
    port: 50051,
    tags: ['v2'],
    meta: { version: 'v2' },
    weights: { passing: 3 },
    check: { grpc: { interval: 2_000 } },
    deregisterCriticalServiceAfter: '1m',
  });
  assert.equal(id, 'hello-10.0.0.7-50051');
  assert.equal(address, '10.0.0.7:50051');
  assert.equal(ttlMs, undefined);
  assert.deepEqual(body, {
    ID: 'hello-10.0.0.7-50051',
    Name: 'hello',
    Address: '10.0.0.7',
    Port: 50051,
    Tags: ['v2'],
    Meta: { version: 'v2' },
    Weights: { Passing: 3, Warning: 1 },
    Check: { GRPC: '10.0.0.7:50051', Interval: '2000ms', DeregisterCriticalServiceAfter: '1m' },
  });
});

test('registrationBody: a TTL check starts passing; the host defaults to $POD_IP', () => {
  const { body, ttlMs } = registrationBody(
    { name: 'hello', id: 'h1', port: 1, check: { ttl: '9s' } },
    { POD_IP: 'fd00::5' },
  );
  assert.equal(ttlMs, 9_000);
  assert.deepEqual(body, {
    ID: 'h1',
    Name: 'hello',
    Address: 'fd00::5',
    Port: 1,
    Check: { TTL: '9s', Status: 'passing' },
  });
});

test('registrationBody rejects bad options, naming the field', () => {
  const base = { name: 'hello', host: '10.0.0.1', port: 1 };
  const table: [Record<string, unknown>, Record<string, string>, RegExp][] = [
    [{ name: 'a/b' }, {}, /invalid name/],
    [{ host: undefined }, {}, /invalid host: no host given and \$POD_IP is not set/],
    [{ host: 'not a host' }, {}, /invalid host/],
    [{ port: 0 }, {}, /invalid port/],
    [{ id: 'a/b' }, {}, /invalid id/],
    [{ weights: { passing: 0 } }, {}, /invalid weights.passing: Consul requires at least 1/],
    [{ weights: { passing: 1, warning: 1.5 } }, {}, /invalid weights.warning/],
    [{ check: { ttl: 'soon' } }, {}, /invalid check.ttl/],
    [{ check: { grpc: { interval: -1 } } }, {}, /invalid check.grpc.interval/],
    [{ check: {} }, {}, /invalid check/],
    [{ deregisterCriticalServiceAfter: '1m' }, {}, /deregisterCriticalServiceAfter: needs a check/],
  ];
  for (const [override, env, problem] of table) {
    assert.throws(
      () => registrationBody({ ...base, ...override }, env),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, JSON.stringify(override));
        assert.match(error.message, problem);
        return true;
      },
    );
  }
});

/** A fake agent behind the registration's request seam: its services, and whether it answers. */
class FakeAgent {
  readonly services = new Map<string, unknown>();
  up = true;
  /** Answer registrations with 403 (a token without service:write). */
  refuseRegister = false;
  readonly requests: string[] = [];
  readonly call: AgentCall = (method, path, body) => {
    this.requests.push(`${method} ${path}`);
    if (!this.up) {
      return Promise.reject(
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8500'), { code: 'ECONNREFUSED' }),
      );
    }
    const ok = (text = ''): AgentResponse => ({ status: 200, headers: {}, body: text });
    const missing: AgentResponse = { status: 404, headers: {}, body: 'Unknown service ID' };
    let match: RegExpExecArray | null;
    if (method === 'PUT' && path === '/v1/agent/service/register') {
      if (this.refuseRegister) {
        return Promise.resolve({ status: 403, headers: {}, body: 'Permission denied' });
      }
      const id = (body as { ID: string }).ID;
      this.services.set(id, body);
      return Promise.resolve(ok());
    }
    if ((match = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(path))) {
      this.services.delete(decodeURIComponent(match[1]!));
      return Promise.resolve(ok());
    }
    if ((match = /^\/v1\/agent\/check\/pass\/service%3A(.+)$/.exec(path))) {
      return Promise.resolve(
        this.services.has(decodeURIComponent(match[1]!))
          ? ok()
          : { status: 404, headers: {}, body: 'Unknown check ID "service:x"' },
      );
    }
    if (method === 'GET' && (match = /^\/v1\/agent\/service\/(.+)$/.exec(path))) {
      const known = this.services.get(decodeURIComponent(match[1]!));
      return Promise.resolve(known ? ok(JSON.stringify(known)) : missing);
    }
    return Promise.reject(new Error(`unexpected ${method} ${path}`));
  };

  /** A dev agent restarting: it forgets every service. */
  restart(): void {
    this.services.clear();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

async function advance(ms: number, step = 50): Promise<void> {
  await settle();
  for (let elapsed = 0; elapsed < ms; elapsed += step) {
    mock.timers.tick(Math.min(step, ms - elapsed));
    await settle();
  }
}

function started(agent: FakeAgent, extra: Partial<ConsulRegistrationOptions> = {}) {
  const warnings: string[] = [];
  const events: string[] = [];
  const registration = new ConsulRegistration(
    {
      name: 'hello',
      host: '10.0.0.7',
      port: 50051,
      logger: { warn: (m) => warnings.push(m) },
      ...extra,
    },
    agent.call,
  );
  registration.on('lost', () => events.push('lost'));
  registration.on('registered', () => events.push('registered'));
  registration.on('retry', ({ delayMs }) => events.push(`retry ${delayMs}`));
  return { registration, warnings, events };
}

describe('ConsulRegistration keeps the instance registered (mocked time, fake agent)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] }));
  afterEach(() => mock.timers.reset());

  test('an agent that forgot the instance (restart): registered again at the next check, with a warning and lost/registered events', async () => {
    const agent = new FakeAgent();
    const { registration, warnings, events } = started(agent);
    await registration.start();
    assert.ok(agent.services.has('hello-10.0.0.7-50051'));
    await advance(DEFAULT_ANTI_ENTROPY_INTERVAL_MS);
    assert.deepEqual(events, [], 'known: nothing to do');
    agent.restart();
    await advance(DEFAULT_ANTI_ENTROPY_INTERVAL_MS);
    assert.ok(agent.services.has('hello-10.0.0.7-50051'), 'registered again');
    assert.deepEqual(events, ['lost', 'registered']);
    assert.match(warnings.join('\n'), /no longer knows the instance .*registering it again/);
    await registration.deregister();
  });

  test('a TTL pass refused with 404 checks at once: registered again well before the interval', async () => {
    const agent = new FakeAgent();
    const { registration, events } = started(agent, {
      check: { ttl: '3s' },
      antiEntropyIntervalMs: 60_000,
    });
    await registration.start();
    agent.restart();
    // The next pass is due within ttl/3 = 1 s; the check and the registration follow at once.
    await advance(1_000);
    assert.deepEqual(events, ['lost', 'registered']);
    assert.deepEqual((agent.services.get('hello-10.0.0.7-50051') as { Check: unknown }).Check, {
      TTL: '3s',
      Status: 'passing',
    });
    await registration.deregister();
  });

  test('an agent down, then back empty: checks retried after a short growing backoff, the instance back within about 2 s of the agent', async () => {
    const agent = new FakeAgent();
    const { registration, events } = started(agent);
    await registration.start();
    agent.up = false;
    agent.restart();
    await advance(20_000);
    const retries = events.filter((e) => e.startsWith('retry'));
    assert.ok(retries.length >= 5, `${retries.length} retries in 20 s`);
    // Never more often than the first backoff step, never less often than every 2 s.
    for (const retry of retries) {
      const delay = Number(retry.split(' ')[1]);
      assert.ok(delay >= 200 && delay <= 2_000, retry);
    }
    const checksWhileDown = agent.requests.filter((r) => r.startsWith('GET')).length;
    assert.ok(checksWhileDown <= 30, `${checksWhileDown} checks in 20 s`);
    agent.up = true;
    await advance(2_100);
    assert.ok(agent.services.has('hello-10.0.0.7-50051'));
    assert.deepEqual(events.slice(-2), ['lost', 'registered']);
    await registration.deregister();
  });

  test('an agent that refuses the new registration (403): retried at the interval, not every 2 s, and warned about once', async () => {
    const agent = new FakeAgent();
    const { registration, warnings, events } = started(agent, { token: 'secret-token-value' });
    await registration.start();
    agent.restart();
    agent.refuseRegister = true;
    await advance(60_000, 250);
    const registers = agent.requests.filter((r) => r.endsWith('/register')).length - 1;
    assert.ok(registers >= 8 && registers <= 13, `${registers} registrations in 60 s`);
    const refused = warnings.filter((w) => /HTTP 403/.test(w));
    assert.equal(refused.length, 1, warnings.join('\n'));
    assert.match(refused[0]!, /lacks service:write/);
    assert.doesNotMatch(warnings.join('\n'), /secret-token-value/);
    assert.equal(events.filter((e) => e === 'lost').length, 1, 'lost once, not at each attempt');
    assert.ok(!events.includes('registered'));
    assert.equal(warnings.filter((w) => /no longer knows/.test(w)).length, 1);
    agent.refuseRegister = false;
    await advance(DEFAULT_ANTI_ENTROPY_INTERVAL_MS * 2, 250);
    assert.ok(agent.services.has('hello-10.0.0.7-50051'));
    assert.equal(events.at(-1), 'registered');
    await registration.deregister();
  });

  test('deregister() stops every timer: no request after it, however long', async () => {
    const agent = new FakeAgent();
    const { registration } = started(agent, { check: { ttl: '3s' } });
    await registration.start();
    await advance(3_000);
    await registration.deregister();
    assert.equal(agent.services.size, 0);
    const made = agent.requests.length;
    await advance(60_000, 1_000);
    assert.equal(agent.requests.length, made);
    await registration.deregister(); // twice is harmless
    assert.equal(agent.requests.length, made);
  });

  test('a listener that throws is reported through the logger, and the registration goes on', async () => {
    const agent = new FakeAgent();
    const { registration, warnings } = started(agent);
    registration.on('lost', () => {
      throw new Error('listener bug');
    });
    await registration.start();
    agent.restart();
    await advance(DEFAULT_ANTI_ENTROPY_INTERVAL_MS);
    assert.ok(agent.services.has('hello-10.0.0.7-50051'));
    assert.match(
      warnings.join('\n'),
      /a 'lost' listener of the registration of .* threw: listener bug/,
    );
    await registration.deregister();
  });

  test('antiEntropyIntervalMs below 100 ms is a ConfigError', () => {
    assert.throws(
      () =>
        new ConsulRegistration({ name: 'h', host: '10.0.0.1', port: 1, antiEntropyIntervalMs: 10 }),
      /registerService: invalid antiEntropyIntervalMs/,
    );
  });
});
