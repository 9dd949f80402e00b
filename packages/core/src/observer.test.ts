import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LoadBalancerObserver, type ObservedBalancer } from './observer';

const balancer: ObservedBalancer = { snapshot: () => [] };

describe('LoadBalancerObserver events', () => {
  test('a listener that throws is contained: the other listeners still run and emit does not throw', () => {
    const observer = new LoadBalancerObserver();
    const warnings: string[] = [];
    observer.attach(balancer, { warn: (m) => warnings.push(m) });
    const seen: string[] = [];
    observer.on('return', () => {
      throw new Error('listener bug');
    });
    observer.on('return', (e) => seen.push(e.address));
    assert.doesNotThrow(() => observer.emit('return', { target: 't', address: 'a:1' }));
    assert.deepEqual(seen, ['a:1']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /"return" listener threw: listener bug/);
  });

  test('a listener that keeps throwing is reported once', () => {
    const observer = new LoadBalancerObserver();
    const warnings: string[] = [];
    observer.attach(balancer, { warn: (m) => warnings.push(m) });
    observer.on('health', () => {
      throw new Error('again');
    });
    for (let i = 0; i < 5; i++) {
      observer.emit('health', { target: 't', address: 'a:1', health: 'serving' });
    }
    assert.equal(warnings.length, 1);
  });

  test('a non-Error thrown value is reported too', () => {
    const observer = new LoadBalancerObserver();
    const warnings: string[] = [];
    observer.attach(balancer, { warn: (m) => warnings.push(m) });
    observer.on('panic', () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      throw 'a string';
    });
    observer.emit('panic', { target: 't', active: true, healthyPercent: 0, thresholdPercent: 50 });
    assert.match(warnings[0]!, /a string/);
  });

  test('once() listeners run once, as with any EventEmitter', () => {
    const observer = new LoadBalancerObserver();
    let calls = 0;
    observer.once('return', () => calls++);
    observer.emit('return', { target: 't', address: 'a:1' });
    observer.emit('return', { target: 't', address: 'a:1' });
    assert.equal(calls, 1);
  });

  test('emit returns whether any listener was registered', () => {
    const observer = new LoadBalancerObserver();
    assert.equal(observer.emit('return', { target: 't', address: 'a:1' }), false);
    observer.on('return', () => {});
    assert.equal(observer.emit('return', { target: 't', address: 'a:1' }), true);
  });
});
