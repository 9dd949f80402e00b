/**
 * The etcd registration helper against a real etcd 3.4: what it writes, the lease it keeps alive,
 * what happens when the lease is lost, and deregistration.
 */
import assert from 'node:assert/strict';
import { after, describe, test, type TestContext } from 'node:test';
import { ConfigError } from '@grpc-lb/core';
import {
  EtcdRegistration,
  EtcdRegistrationError,
  parseEndpointValue,
  registerEndpoint,
} from '@grpc-lb/resolver-etcd';
import { waitFor } from './harness';
import { printEtcdLogsOnFailure, requireEtcd, startEtcd, type Etcd } from './support/etcd';

let shared: Promise<Etcd> | undefined;
after(async () => {
  if (shared) await (await shared).dispose();
});

async function etcdFor(t: TestContext): Promise<Etcd | undefined> {
  if (!requireEtcd(t)) return undefined;
  shared ??= startEtcd();
  return shared;
}

let serial = 0;
function service(name: string): string {
  return `services/${name}-${process.pid}-${++serial}`;
}

async function get(etcd: Etcd, key: string): Promise<string | undefined> {
  const out = await etcd.etcdctl('get', key, '--print-value-only');
  return out === '' ? undefined : out.replace(/\n$/, '');
}

/** The lease's remaining TTL and keys, from etcdctl (which shows lease IDs in hex). */
async function leaseInfo(etcd: Etcd, leaseId: string): Promise<{ ttl: number; keys: string[] }> {
  const hex = BigInt(leaseId).toString(16);
  const out = await etcd.etcdctl('lease', 'timetolive', hex, '--keys', '-w', 'json');
  const info = JSON.parse(out) as { ttl: number; keys?: string[] | null };
  return {
    ttl: info.ttl,
    keys: (info.keys ?? []).map((k) => Buffer.from(k, 'base64').toString()),
  };
}

const silent = { warn: () => undefined };

describe('etcd registration helper (real etcd)', () => {
  test('writes etcd naming JSON under a lease, kept alive, and deregister() deletes it', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('reg');
      const registration = await registerEndpoint({
        endpoints: etcd.endpoint,
        service: svc,
        host: '127.0.0.2',
        port: 5000,
        labels: { version: 'v2' },
        weight: 3,
        ttlSeconds: 2,
        logger: silent,
      });
      try {
        assert.equal(registration.key, `${svc}/127.0.0.2:5000`);
        const value = await get(etcd, registration.key);
        assert.equal(
          value,
          '{"Op":0,"Addr":"127.0.0.2:5000","Metadata":{"labels":{"version":"v2"},"weight":3}}',
        );
        assert.deepEqual(parseEndpointValue(value), {
          ok: true,
          endpoint: { host: '127.0.0.2', port: 5000, weight: 3, labels: { version: 'v2' } },
        });
        const leaseId = registration.leaseId!;
        assert.deepEqual((await leaseInfo(etcd, leaseId)).keys, [registration.key]);
        // Kept alive: still there after more than two TTLs.
        await new Promise((resolve) => setTimeout(resolve, 4_500));
        assert.equal(await get(etcd, registration.key), value);
        assert.ok((await leaseInfo(etcd, leaseId)).ttl > 0);
      } finally {
        await registration.deregister();
      }
      assert.equal(await get(etcd, registration.key), undefined);
      assert.equal(registration.registered, false);
      await registration.deregister(); // idempotent
    });
  });

  test('a lost lease (revoked in etcd) is replaced and the key written again', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    const svc = service('lost');
    const warnings: string[] = [];
    const registration = await registerEndpoint({
      endpoints: etcd.endpoint,
      service: svc,
      host: '127.0.0.3',
      port: 5000,
      ttlSeconds: 2,
      logger: { warn: (m) => warnings.push(m) },
    });
    try {
      const first = registration.leaseId!;
      const lost = new Promise((resolve) => registration.once('lost', resolve));
      await etcd.etcdctl('lease', 'revoke', BigInt(first).toString(16));
      await lost;
      await waitFor(() => registration.registered && registration.leaseId !== first, {
        timeoutMs: 10_000,
        message: 'a new lease',
      });
      assert.equal(await get(etcd, registration.key), registration.value);
      assert.match(warnings.join('\n'), new RegExp(`etcd lease of ${svc}/127.0.0.3:5000 lost`));
    } finally {
      await registration.deregister();
    }
  });

  test('etcd down for longer than the TTL: the key is written again when etcd is back', async (t) => {
    if (!requireEtcd(t)) return;
    const etcd = await startEtcd();
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        const svc = service('outage');
        const registration = await registerEndpoint({
          endpoints: etcd.endpoint,
          service: svc,
          host: '127.0.0.4',
          port: 5000,
          ttlSeconds: 1,
          logger: silent,
        });
        try {
          const first = registration.leaseId!;
          const lost = new Promise((resolve) => registration.once('lost', resolve));
          await etcd.kill();
          await lost;
          // etcd restores leases on restart with a fresh TTL; ours is gone from the client's view.
          await etcd.start();
          await waitFor(() => registration.registered, {
            timeoutMs: 20_000,
            message: 'registered again',
          });
          assert.notEqual(registration.leaseId, first);
          await waitFor(async () => (await get(etcd, registration.key)) === registration.value, {
            timeoutMs: 10_000,
            message: 'the key',
          });
          // The old lease expires, the key (now on the new lease) stays.
          await new Promise((resolve) => setTimeout(resolve, 3_000));
          assert.equal(await get(etcd, registration.key), registration.value);
        } finally {
          await registration.deregister();
        }
        assert.equal(await get(etcd, registration.key), undefined);
      });
    } finally {
      await etcd.dispose();
    }
  });

  test('a key deleted by someone else is written again at once, under the same lease, with one warning; a listener that throws is reported', async (t) => {
    const etcd = await etcdFor(t);
    if (!etcd) return;
    await printEtcdLogsOnFailure(etcd, async () => {
      const svc = service('deleted');
      const warnings: string[] = [];
      const registration = await registerEndpoint({
        endpoints: etcd.endpoint,
        service: svc,
        host: '127.0.0.5',
        port: 5000,
        ttlSeconds: 5,
        logger: { warn: (m) => warnings.push(m) },
      });
      try {
        const leaseId = registration.leaseId!;
        const restored: string[] = [];
        registration.on('restored', (e) => restored.push(e.leaseId));
        registration.on('restored', () => {
          throw new Error('listener bug');
        });
        for (let round = 1; round <= 2; round++) {
          await etcd.etcdctl('del', registration.key);
          await waitFor(() => restored.length === round, {
            timeoutMs: 5_000,
            message: `restored ${round}`,
          });
          assert.equal(await get(etcd, registration.key), registration.value);
        }
        assert.deepEqual(restored, [leaseId, leaseId]);
        assert.equal(registration.leaseId, leaseId);
        assert.deepEqual((await leaseInfo(etcd, leaseId)).keys, [registration.key]);
        const deleted = warnings.filter((w) => /was deleted by someone else/.test(w));
        assert.equal(deleted.length, 2, warnings.join('\n'));
        assert.match(
          deleted[0]!,
          new RegExp(
            `etcd key ${svc}/127\\.0\\.0\\.5:5000 was deleted by someone else; writing it again under lease ${leaseId}`,
          ),
        );
        assert.match(warnings.join('\n'), /a 'restored' listener .* threw: listener bug/);
      } finally {
        await registration.deregister();
      }
      // deregister() deletes the key for good: not written again.
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(await get(etcd, registration.key), undefined);
    });
  });

  test('etcd frozen for longer than the TTL: the lease is reported lost after one TTL without keepalive (not two), and the key is written again once etcd answers', async (t) => {
    if (!requireEtcd(t)) return;
    const etcd = await startEtcd();
    try {
      await printEtcdLogsOnFailure(etcd, async () => {
        const svc = service('frozen');
        const warnings: string[] = [];
        const lostErrors: Error[] = [];
        const ttlSeconds = 2;
        const registration = await registerEndpoint({
          endpoints: etcd.endpoint,
          service: svc,
          host: '127.0.0.6',
          port: 5000,
          ttlSeconds,
          timeoutMs: 1_000,
          logger: { warn: (m) => warnings.push(m) },
          onLost: (error) => lostErrors.push(error),
        });
        try {
          const first = registration.leaseId!;
          const lost = new Promise<number>((resolve) =>
            registration.once('lost', () => resolve(performance.now())),
          );
          // Wait for a keepalive to be answered, then freeze etcd right after it.
          await new Promise<void>((resolve) => setTimeout(resolve, 800));
          const frozenAt = performance.now();
          etcd.freeze();
          const lostAt = await lost;
          const afterMs = lostAt - frozenAt;
          process.stdout.write(
            `# lease reported lost ${Math.round(afterMs)} ms after etcd froze (TTL ${ttlSeconds * 1000} ms)\n`,
          );
          assert.ok(afterMs < ttlSeconds * 1000 * 1.5, `lost after ${afterMs} ms`);
          assert.equal(lostErrors.length, 1);
          assert.match(lostErrors[0]!.message, /no keepalive answered for 2000 ms/);
          assert.match(
            warnings.join('\n'),
            new RegExp(`etcd lease of ${svc}/127\\.0\\.0\\.6:5000 lost`),
          );
          assert.equal(registration.registered, false);
          etcd.thaw();
          await waitFor(() => registration.registered, {
            timeoutMs: 15_000,
            message: 'registered again',
          });
          assert.notEqual(registration.leaseId, first);
          await waitFor(async () => (await get(etcd, registration.key)) === registration.value, {
            timeoutMs: 5_000,
            message: 'the key',
          });
          // The old lease expires or was revoked; the key, now on the new lease, stays.
          await new Promise((resolve) => setTimeout(resolve, ttlSeconds * 1000 + 1_000));
          assert.equal(await get(etcd, registration.key), registration.value);
          assert.deepEqual((await leaseInfo(etcd, registration.leaseId!)).keys, [registration.key]);
        } finally {
          etcd.thaw();
          await registration.deregister();
        }
      });
    } finally {
      await etcd.dispose();
    }
  });

  test('registerEndpoint() with etcd unreachable gives up after startTimeoutMs with a clear error', async () => {
    const started = performance.now();
    await assert.rejects(
      registerEndpoint({
        endpoints: '127.0.0.1:1',
        service: 'services/nowhere',
        host: '127.0.0.2',
        port: 5000,
        startTimeoutMs: 1_500,
        timeoutMs: 500,
        auth: { username: 'u', password: 'hunter22' },
        logger: silent,
      }),
      (error: unknown) =>
        error instanceof EtcdRegistrationError &&
        error.code === 'REGISTRATION_FAILED' &&
        error.key === 'services/nowhere/127.0.0.2:5000' &&
        /could not register services\/nowhere\/127\.0\.0\.2:5000 within 1500 ms/.test(
          error.message,
        ) &&
        error.message.includes('http://127.0.0.1:1 as user "u"') &&
        !error.message.includes('hunter22'),
    );
    assert.ok(performance.now() - started < 5_000);
  });

  test('the host defaults to $POD_IP; bad options are ConfigErrors', () => {
    const saved = process.env['POD_IP'];
    try {
      process.env['POD_IP'] = '10.1.2.3';
      const registration = new EtcdRegistration({ service: 'services/x', port: 80, id: 'pod-a' });
      assert.equal(registration.key, 'services/x/pod-a');
      assert.equal(registration.address, '10.1.2.3:80');
      delete process.env['POD_IP'];
      const bad: [object, RegExp][] = [
        [{ service: 'services/x', port: 80 }, /host: no host given and \$POD_IP is not set/],
        [{ service: '', host: 'a', port: 80 }, /service/],
        [{ service: 's', host: 'a', port: 0 }, /port/],
        [{ service: 's', host: 'not a host', port: 1 }, /host/],
        [{ service: 's', host: 'a', port: 1, ttlSeconds: 0 }, /ttlSeconds/],
        [{ service: 's', host: 'a', port: 1, weight: -1 }, /weight/],
        [{ service: 's', host: 'a', port: 1, metadata: {}, labels: { a: 'b' } }, /not both/],
      ];
      for (const [options, message] of bad) {
        assert.throws(
          () => new EtcdRegistration(options as never),
          (error: unknown) => error instanceof ConfigError && message.test(error.message),
          JSON.stringify(options),
        );
      }
      const plain = new EtcdRegistration({ service: 's/', host: '::1', port: 9, format: 'plain' });
      assert.equal(plain.key, 's/[::1]:9');
      assert.equal(plain.value, '[::1]:9');
      const own = new EtcdRegistration({
        service: 's',
        host: 'h',
        port: 9,
        metadata: { Weight: 2 },
      });
      assert.equal(own.value, '{"Op":0,"Addr":"h:9","Metadata":{"Weight":2}}');
    } finally {
      if (saved === undefined) delete process.env['POD_IP'];
      else process.env['POD_IP'] = saved;
    }
  });
});
