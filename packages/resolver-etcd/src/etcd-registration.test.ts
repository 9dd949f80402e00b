import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { EtcdRegistration } from './etcd-registration';
import { FakeLeaseEtcd } from './testing/fake-lease-etcd';

async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

function make(etcd: FakeLeaseEtcd, extra: { onLost?: (error: Error) => void } = {}) {
  const warnings: string[] = [];
  const registration = new EtcdRegistration(
    {
      endpoints: '10.9.0.1:2379',
      service: 'services/hello',
      host: '10.0.0.1',
      port: 5000,
      ttlSeconds: 3,
      logger: { warn: (m) => warnings.push(m) },
      ...extra,
    },
    etcd.createClient,
  );
  return { registration, warnings };
}

describe('etcd registration helper (fake etcd, mocked timers)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  test('no keepalive answered for one TTL: lost at once (warning, onLost, lost event), then a new lease and the key again', async () => {
    const etcd = new FakeLeaseEtcd();
    const lostByCallback: Error[] = [];
    const { registration, warnings } = make(etcd, { onLost: (e) => lostByCallback.push(e) });
    await registration.start();
    const first = etcd.leases[0]!;
    assert.equal(registration.leaseId, first.id);
    const lostEvents: Error[] = [];
    registration.on('lost', (e) => lostEvents.push(e));
    // Keepalives answered: alive well past the TTL.
    for (let i = 0; i < 5; i++) {
      mock.timers.tick(1_000);
      first.answerKeepalive();
    }
    assert.equal(lostEvents.length, 0);
    // No answer: lost after exactly one TTL.
    mock.timers.tick(2_999);
    assert.equal(lostEvents.length, 0);
    mock.timers.tick(1);
    assert.equal(lostEvents.length, 1);
    assert.deepEqual(lostByCallback, lostEvents);
    assert.match(lostEvents[0]!.message, /no keepalive answered for 3000 ms/);
    assert.match(warnings.join('\n'), /etcd lease of services\/hello\/10\.0\.0\.1:5000 lost/);
    assert.ok(first.revoked, 'the old lease is revoked (or its keepalives at least stopped)');
    assert.equal(registration.registered, false);
    // Registering again starts at once (a 0 ms timer).
    mock.timers.tick(0);
    await settle();
    assert.equal(registration.registered, true);
    assert.notEqual(registration.leaseId, first.id);
    assert.deepEqual(etcd.puts.at(-1), {
      key: 'services/hello/10.0.0.1:5000',
      value: registration.value,
      leaseId: registration.leaseId,
    });
    await registration.deregister();
  });

  test('a key deleted by someone else is put again under the same lease, once per deletion', async () => {
    const etcd = new FakeLeaseEtcd();
    const { registration, warnings } = make(etcd);
    await registration.start();
    const restored: string[] = [];
    registration.on('restored', (e) => restored.push(e.leaseId));
    etcd.deleteByOther(registration.key);
    await settle();
    assert.deepEqual(restored, [registration.leaseId]);
    assert.equal(etcd.store.get(registration.key)?.lease, registration.leaseId);
    assert.equal(etcd.puts.length, 2);
    assert.equal(warnings.filter((w) => /deleted by someone else/.test(w)).length, 1);
    // The old watch is gone; the new one sees the next deletion.
    etcd.deleteByOther(registration.key);
    await settle();
    assert.equal(restored.length, 2);
    assert.equal(etcd.leases.length, 1, 'no new lease for a deleted key');
    await registration.deregister();
  });

  test('a failed re-put is retried after a backoff; a listener or onLost that throws is reported, not thrown', async () => {
    const etcd = new FakeLeaseEtcd();
    const { registration, warnings } = make(etcd, {
      onLost: () => {
        throw new Error('callback bug');
      },
    });
    await registration.start();
    registration.on('restored', () => {
      throw new Error('listener bug');
    });
    etcd.failPuts = new Error('etcdserver: request timed out');
    etcd.deleteByOther(registration.key);
    await settle();
    assert.equal(etcd.store.has(registration.key), false);
    assert.match(warnings.join('\n'), /request timed out; retrying/);
    etcd.failPuts = undefined;
    // The first retry comes after 250 ms ± 20% jitter.
    mock.timers.tick(300);
    await settle();
    assert.equal(etcd.store.get(registration.key)?.lease, registration.leaseId);
    assert.match(warnings.join('\n'), /a 'restored' listener .* threw: listener bug/);
    // The lease is lost: the throwing onLost is contained too.
    mock.timers.tick(3_000);
    assert.match(warnings.join('\n'), /the onLost callback .* threw: callback bug/);
    await registration.deregister();
  });

  test('deregister() stops every timer and the watch: nothing happens after it', async () => {
    const etcd = new FakeLeaseEtcd();
    const { registration, warnings } = make(etcd);
    await registration.start();
    await registration.deregister();
    assert.ok(etcd.watchers.every((w) => w.cancelled));
    assert.equal(etcd.store.has(registration.key), false);
    const before = warnings.length;
    mock.timers.tick(60_000);
    await settle();
    etcd.deleteByOther(registration.key);
    await settle();
    assert.equal(warnings.length, before);
    assert.equal(etcd.leases.length, 1);
    assert.equal(etcd.clientsClosed, etcd.clientsMade);
  });
});
