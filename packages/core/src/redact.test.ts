import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isSecretName, redactSecrets } from './redact';

describe('redactSecrets', () => {
  const cases: [string, string][] = [
    ['static://u:TOKEN@h/127.0.0.1:1', 'static://***@h/127.0.0.1:1'],
    ['dns+lb://u:TOKEN@127.0.0.1/api:1', 'dns+lb://***@127.0.0.1/api:1'],
    ['consul://user:p%40ss@10.0.0.5:8500/hello', 'consul://***@10.0.0.5:8500/hello'],
    ['https://user:p@ss@etcd:2379', 'https://***@etcd:2379'],
    ['k8s://TOKEN@prod/hello:grpc', 'k8s://***@prod/hello:grpc'],
    ['dns:///u:TOKEN@api.prod:50051', 'dns:///***@api.prod:50051'],
    ['dns:u:TOKEN@api.prod:50051', 'dns:***@api.prod:50051'],
    ['user:pass@consul.internal:8500', '***@consul.internal:8500'],
    [
      'DNS server "u:TOKEN@127.0.0.1" has an invalid port',
      'DNS server "***@127.0.0.1" has an invalid port',
    ],
    ['consul:///hello?tag=v2&token=TOKEN&dc=dc1', 'consul:///hello?tag=v2&token=***&dc=dc1'],
    ['dns:///api:1?password=TOKEN', 'dns:///api:1?password=***'],
    ['static:///a:1;token=TOKEN,b:2;zone=x', 'static:///a:1;token=***,b:2;zone=x'],
    ['static:///a:1;api_key=TOKEN', 'static:///a:1;api_key=***'],
    ['x?X-Consul-Token=TOKEN', 'x?X-Consul-Token=***'],
    ['x?access_token=TOKEN&clientSecret=S2', 'x?access_token=***&clientSecret=***'],
    ['x?%74oken=TOKEN', 'x?%74oken=***'],
    ['Authorization: Bearer abc.def-ghi', 'Authorization: Bearer ***'],
    ['Authorization: Basic dTpwYXNz', 'Authorization: Basic ***'],
    ['Basic auth is refused', 'Basic auth is refused'],
    ['static:///127.0.0.1:1;version=v1;weight=3', 'static:///127.0.0.1:1;version=v1;weight=3'],
    ['k8s:///hello.prod:grpc', 'k8s:///hello.prod:grpc'],
    [
      'etcd://10.0.0.5:2379,[::1]:2379/services/hello',
      'etcd://10.0.0.5:2379,[::1]:2379/services/hello',
    ],
    ['invalid tls.key: expected PEM text', 'invalid tls.key: expected PEM text'],
    ['monkey=1&keyboard=2', 'monkey=1&keyboard=2'],
    // A target nested as a parameter value (a composite's sources), with its own parameters.
    [
      'composite:///h?vms=consul:///hello?token=TOKEN&pods=k8s:///a.b:1',
      'composite:///h?vms=consul:///hello?token=***&pods=k8s:///a.b:1',
    ],
    ['composite:///h?a=static:///a:1;token=TOKEN', 'composite:///h?a=static:///a:1;token=***'],
    [
      'composite:///h?a=consul:///x?dc=1%26token=TOKEN',
      'composite:///h?a=consul:///x?dc=1%26token=***',
    ],
    ['composite:///h?a=consul:///x%3Ftoken=TOKEN', 'composite:///h?a=consul:///x%3Ftoken=***'],
  ];
  for (const [input, expected] of cases) {
    test(`${input} → ${expected}`, () => {
      assert.equal(redactSecrets(input), expected);
    });
  }

  test('is idempotent and never shows a planted secret (property)', () => {
    const secret = fc
      .string({
        minLength: 6,
        maxLength: 24,
        unit: fc.constantFrom(...'ABCDEFGHJKMNPQRSTWXYZ2345679'),
      })
      .map((s) => `Q${s}`);
    const place = fc.constantFrom(
      (s: string) => `static://u:${s}@h/127.0.0.1:1`,
      (s: string) => `dns+lb://${s}@127.0.0.1/api:1`,
      (s: string) => `dns:${s}@api:1`,
      (s: string) => `consul:///hello?tag=a&token=${s}`,
      (s: string) => `composite:///h?a=consul:///hello?token=${s}&b=static:///a:1`,
      (s: string) => `composite:///h?a=consul:///hello?dc=1%26token=${s}`,
      (s: string) => `static:///a:1;secret=${s},b:2`,
      (s: string) => `${s}:x@host:8500`,
      (s: string) => `Bearer ${s}`,
      (s: string) => `invalid target "etcd://u:${s}@h:2379/svc": credentials do not belong here`,
    );
    fc.assert(
      fc.property(secret, place, (s, where) => {
        const once = redactSecrets(where(s));
        assert.ok(!once.includes(s), once);
        assert.equal(redactSecrets(once), once);
      }),
      { numRuns: 300 },
    );
  });
});

describe('isSecretName', () => {
  for (const name of [
    'token',
    'TOKEN',
    'password',
    'passwd',
    'secret',
    'key',
    'api_key',
    'apiKey',
    'apikey',
    'X-Consul-Token',
    'access_token',
    'accesstoken',
    'client-secret',
    'clientsecret',
    'auth',
    'credentials',
    'sig',
  ]) {
    test(`${name} holds a secret`, () => assert.ok(isSecretName(name)));
  }
  for (const name of ['version', 'zone', 'weight', 'monkey', 'keyboard', 'author', 'tag', 'dc']) {
    test(`${name} does not`, () => assert.ok(!isSecretName(name)));
  }
});
