/**
 * The real Consul agent the Consul resolver is tested against (test/support/consul.ts: `consul
 * agent -dev` built from Go modules), through its HTTP API — what the resolver reads:
 * - services registered with the agent are read back from `/v1/health/service/<name>` with their
 *   address, port, tags, meta and weights; `?passing=true` leaves out instances whose checks fail;
 * - a blocking query (`?index=`) returns when the service changes, with a higher X-Consul-Index;
 * - Consul's own gRPC health check against real harness backends follows `setHealth()`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startBackends, waitFor, type BackendSet } from './harness';
import { requireConsul, startConsul, type Consul } from './support/consul';
import { serverFixture } from './support/server-fixture';

interface HealthEntry {
  Node: { Node: string };
  Service: {
    ID: string;
    Service: string;
    Address: string;
    Port: number;
    Tags: string[] | null;
    Meta: Record<string, string> | null;
    Weights: { Passing: number; Warning: number };
  };
  Checks: { CheckID: string; Status: string; ServiceID: string }[];
}

const fixture = serverFixture('consul', () => startConsul(), requireConsul);

async function register(c: Consul, definition: Record<string, unknown>): Promise<void> {
  const result = await c.api('PUT', '/v1/agent/service/register', definition);
  assert.equal(result.status, 200, `register ${JSON.stringify(definition)}: ${result.body}`);
}

async function health(c: Consul, service: string, query = ''): Promise<HealthEntry[]> {
  const result = await c.api('GET', `/v1/health/service/${service}${query}`);
  assert.equal(result.status, 200, result.body);
  return result.json as HealthEntry[];
}

describe('Consul agent built from Go modules', () => {
  test('reports the pinned version and has a leader', async (t) => {
    const c = await fixture.get(t);
    if (!c) return;
    await fixture.logged(async () => {
      assert.equal(c.version, '1.22.6');
      const self = await c.api('GET', '/v1/agent/self');
      assert.equal(self.status, 200);
      assert.equal((self.json as { Config: { Version: string } }).Config.Version, '1.22.6');
      const leader = await c.api('GET', '/v1/status/leader');
      assert.match(String(leader.json), /^127\.0\.0\.1:\d+$/);
    });
  });

  test('registered services are read back from /v1/health/service, failing checks filtered', async (t) => {
    const c = await fixture.get(t);
    if (!c) return;
    await fixture.logged(async () => {
      for (const [id, address, status] of [
        ['hello-1', '127.0.0.2', 'passing'],
        ['hello-2', '127.0.0.3', 'critical'],
      ] as const) {
        await register(c, {
          ID: id,
          Name: 'hello',
          Address: address,
          Port: 50051,
          Tags: ['grpc', 'v1'],
          Meta: { version: 'v1', zone: 'zone-a' },
          Weights: { Passing: 3, Warning: 1 },
          Check: { CheckID: `${id}-ttl`, TTL: '30s', Status: status },
        });
      }
      const all = await health(c, 'hello');
      assert.deepEqual(all.map((e) => [e.Service.ID, e.Service.Address, e.Service.Port]).sort(), [
        ['hello-1', '127.0.0.2', 50051],
        ['hello-2', '127.0.0.3', 50051],
      ]);
      const first = all.find((e) => e.Service.ID === 'hello-1')!;
      assert.deepEqual(first.Service.Tags, ['grpc', 'v1']);
      assert.deepEqual(first.Service.Meta, { version: 'v1', zone: 'zone-a' });
      assert.deepEqual(first.Service.Weights, { Passing: 3, Warning: 1 });
      assert.equal(first.Node.Node, 'grpc-lb-test');
      // Each entry carries the node's serfHealth check and the service's own.
      assert.deepEqual(first.Checks.map((check) => check.CheckID).sort(), [
        'hello-1-ttl',
        'serfHealth',
      ]);

      const passing = await health(c, 'hello', '?passing=true');
      assert.deepEqual(
        passing.map((e) => e.Service.ID),
        ['hello-1'],
      );
      const pass = await c.api('PUT', '/v1/agent/check/pass/hello-2-ttl');
      assert.equal(pass.status, 200, pass.body);
      const both = await health(c, 'hello', '?passing=true');
      assert.deepEqual(both.map((e) => e.Service.ID).sort(), ['hello-1', 'hello-2']);
      // A name nobody registered: an empty list, not an error.
      assert.deepEqual(await health(c, 'nobody'), []);
    });
  });

  test('a blocking query returns when the service changes, with a higher index', async (t) => {
    const c = await fixture.get(t);
    if (!c) return;
    await fixture.logged(async () => {
      await register(c, { ID: 'watched-1', Name: 'watched', Address: '127.0.0.2', Port: 1 });
      const first = await c.api('GET', '/v1/health/service/watched');
      assert.ok(first.index !== undefined && first.index > 0, 'X-Consul-Index is set');
      const started = Date.now();
      const blocked = c.api('GET', `/v1/health/service/watched?index=${first.index}&wait=20s`);
      // Nothing changed yet: the query is still waiting.
      const early = await Promise.race([
        blocked.then(() => 'returned'),
        new Promise((resolve) => setTimeout(() => resolve('waiting'), 300)),
      ]);
      assert.equal(early, 'waiting');
      await register(c, { ID: 'watched-2', Name: 'watched', Address: '127.0.0.3', Port: 2 });
      const changed = await blocked;
      assert.ok(Date.now() - started < 15_000, 'returned on the change, not at the 20 s wait');
      assert.ok(changed.index! > first.index, `index ${changed.index} > ${first.index}`);
      assert.deepEqual((changed.json as HealthEntry[]).map((e) => e.Service.ID).sort(), [
        'watched-1',
        'watched-2',
      ]);
      const gone = await c.api('PUT', '/v1/agent/service/deregister/watched-1');
      assert.equal(gone.status, 200);
      const after = await c.api(
        'GET',
        `/v1/health/service/watched?index=${changed.index}&wait=20s`,
      );
      assert.deepEqual(
        (after.json as HealthEntry[]).map((e) => e.Service.ID),
        ['watched-2'],
      );
    });
  });

  test("Consul's gRPC health check follows a real backend's health", async (t) => {
    const c = await fixture.get(t);
    if (!c) return;
    let backends: BackendSet | undefined;
    await fixture
      .logged(async () => {
        backends = await startBackends({ count: 2 });
        for (const backend of backends.backends) {
          await register(c, {
            ID: backend.name,
            Name: 'greeter',
            Address: backend.host,
            Port: backend.port,
            Check: { GRPC: backend.address, Interval: '1s', Timeout: '1s' },
          });
        }
        const passingIds = async (): Promise<string[]> =>
          (await health(c, 'greeter', '?passing=true')).map((e) => e.Service.ID).sort();
        await waitFor(async () => (await passingIds()).length === 2, {
          timeoutMs: 15_000,
          message: 'both backends passing their gRPC checks',
        });
        await backends.backends[0]!.setHealth('NOT_SERVING');
        await waitFor(async () => (await passingIds()).join() === 'backend-2', {
          timeoutMs: 15_000,
          message: 'backend-1 failing its check',
        });
        const stats = await backends.backends[0]!.stats();
        assert.ok(stats.healthCalls.Check >= 2, `Consul called Check (${stats.healthCalls.Check})`);
        await backends.backends[0]!.setHealth('SERVING');
        await waitFor(async () => (await passingIds()).length === 2, {
          timeoutMs: 15_000,
          message: 'backend-1 passing again',
        });
      })
      .finally(() => backends?.stopAll());
  });
});
