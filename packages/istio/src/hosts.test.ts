import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hostCovers, parseHostName, showHost } from './hosts';

describe('parseHostName', () => {
  const cases: [string, string | undefined, string | undefined][] = [
    ['hello2', 'prod', 'hello2.prod.svc.cluster.local'],
    ['hello2', undefined, 'hello2'],
    ['hello2.prod', undefined, 'hello2.prod.svc.cluster.local'],
    ['hello2.prod.svc', 'other', 'hello2.prod.svc.cluster.local'],
    ['Hello2.Prod.svc.cluster.local.', undefined, 'hello2.prod.svc.cluster.local'],
    ['hello2.prod.svc.corp.example', undefined, 'hello2.prod.svc.cluster.local'],
    ['api.example.com', 'prod', 'api.example.com'],
    ['*', undefined, '*'],
    ['*.prod.svc.cluster.local', undefined, '*.prod.svc.cluster.local'],
    ['hello_2', 'prod', undefined],
    ['', 'prod', undefined],
    ['a..b', 'prod', undefined],
  ];
  for (const [text, namespace, shown] of cases) {
    test(`"${text}"${namespace ? ` in ${namespace}` : ''} → ${shown ?? 'not a host name'}`, () => {
      const host = parseHostName(text, namespace);
      assert.equal(host === undefined ? undefined : showHost(host), shown);
    });
  }
});

describe('hostCovers', () => {
  const client = parseHostName('hello2', 'prod')!;
  const unknownNamespace = parseHostName('hello2', undefined)!;
  const cases: [string, string | undefined, boolean, boolean][] = [
    // pattern, its namespace, covers hello2 in prod, covers hello2 in an unknown namespace
    ['hello2', 'prod', true, true],
    ['hello2', 'staging', false, true],
    ['hello2.prod.svc.cluster.local', 'staging', true, true],
    ['hello3', 'prod', false, false],
    ['*', undefined, true, true],
    ['*.prod.svc.cluster.local', undefined, true, true],
    ['*.staging.svc.cluster.local', undefined, false, true],
    ['*.svc.cluster.local', undefined, true, true],
    ['*.example.com', undefined, false, false],
    ['hello2.example.com', undefined, false, false],
  ];
  for (const [pattern, namespace, forProd, forUnknown] of cases) {
    test(`${pattern}${namespace ? ` (in ${namespace})` : ''} covers hello2.prod: ${forProd}, hello2: ${forUnknown}`, () => {
      const parsed = parseHostName(pattern, namespace)!;
      assert.equal(hostCovers(parsed, client), forProd);
      assert.equal(hostCovers(parsed, unknownNamespace), forUnknown);
    });
  }

  test('external names are compared as written, wildcards by suffix', () => {
    const api = parseHostName('api.example.com', 'prod')!;
    assert.ok(hostCovers(parseHostName('API.example.com', undefined)!, api));
    assert.ok(hostCovers(parseHostName('*.example.com', undefined)!, api));
    assert.ok(!hostCovers(parseHostName('hello2', 'prod')!, api));
  });
});
