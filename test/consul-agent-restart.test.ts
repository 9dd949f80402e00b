/**
 * `registerService()` against the real Consul agent (test/support/consul.ts: `consul agent -dev`,
 * which keeps its services in memory only): when the agent restarts empty, the helper notices and
 * registers the instance again, so it is passing again within a few seconds without the
 * application doing anything; after `deregister()` it stays gone.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { registerService } from '@grpc-lb/resolver-consul';
import { waitFor } from './harness';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { serverFixture } from './support/server-fixture';

const consul = serverFixture('consul', () => startConsul(), requireConsul);

async function passing(c: Consul, service: string): Promise<string[]> {
  const result = await c.api('GET', `/v1/health/service/${service}?passing=true`);
  assert.equal(result.status, 200, result.body);
  return (result.json as { Service: { ID: string } }[]).map((e) => e.Service.ID);
}

describe('registerService against a real agent', () => {
  test('an agent restarted empty: the instance is registered again and passing within a few seconds', async (t) => {
    const c = await consul.get(t);
    if (!c) return;
    await consul.logged(async () => {
      const warnings: string[] = [];
      const events: string[] = [];
      const registration = await registerService({
        name: 'survivor',
        host: '127.0.0.1',
        port: 50999,
        address: c.address,
        check: { ttl: '6s' },
        logger: { warn: (m) => warnings.push(m) },
      });
      registration.on('lost', () => events.push('lost'));
      registration.on('registered', () => events.push('registered'));
      try {
        assert.deepEqual(await passing(c, 'survivor'), [registration.id]);
        await c.stop();
        await c.start();
        const readyAt = performance.now();
        assert.deepEqual(await passing(c, 'survivor'), [], 'the dev agent forgot it');
        await waitFor(async () => (await passing(c, 'survivor')).length === 1, {
          timeoutMs: 10_000,
          intervalMs: 100,
          message: 'the instance is passing again after the restart',
        });
        const backMs = Math.round(performance.now() - readyAt);
        t.diagnostic(JSON.stringify({ agentReadyToPassingMs: backMs }));
        assert.ok(backMs < 8_000, `${backMs} ms`);
        assert.deepEqual(events, ['lost', 'registered']);
        assert.match(warnings.join('\n'), /no longer knows the instance/);
        // And it stays passing: the TTL passes reach the new agent's check.
        await new Promise((resolve) => setTimeout(resolve, 7_000));
        assert.deepEqual(await passing(c, 'survivor'), [registration.id]);
      } finally {
        await registration.deregister();
      }
      assert.deepEqual(await passing(c, 'survivor'), []);
      // Nothing runs after deregister(): another restart does not bring it back.
      await c.stop();
      await c.start();
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      const all = await c.api('GET', '/v1/health/service/survivor');
      assert.deepEqual(all.json, []);
    });
  });
});
