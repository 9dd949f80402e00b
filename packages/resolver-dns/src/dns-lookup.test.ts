/**
 * What answers turn into, with a scripted DNS (no sockets): SRV priority fallback, one address
 * family failing while the other answers, and addresses no connection can use.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { QueryResult } from './dns-client';
import { lookupTarget, type LookupEnvironment, type LookupOutcome } from './dns-lookup';
import type { DnsQuestion, DnsRecord, DnsResponse } from './dns-message';
import type { AddressFamily } from './dns-options';
import type { DnsTarget } from './dns-target';
import { DnsResolutionError } from './errors';

const SERVER = { host: '127.0.0.1', port: 53 };

/** What the scripted DNS says for `name type`: records, a negative rcode, or a failure. */
type Scripted = readonly string[] | 'NXDOMAIN' | 'SERVFAIL';

/**
 * `zone['a.test A'] = ['127.0.0.2']`; SRV records as `priority weight port target`. A name and
 * type not listed answer NOERROR with no records. SERVFAIL rejects as queryDns does.
 */
function scripted(
  zone: Readonly<Record<string, Scripted>>,
  asked: string[] = [],
): NonNullable<LookupEnvironment['query']> {
  return (question: DnsQuestion): Promise<QueryResult> => {
    const key = `${question.name} ${question.type}`;
    asked.push(key);
    const entry = zone[key] ?? [];
    if (entry === 'SERVFAIL') {
      return Promise.reject(
        new DnsResolutionError(
          question.name,
          `DNS ${question.type} query for ${question.name} failed: 127.0.0.1:53 answered SERVFAIL`,
        ),
      );
    }
    const answers: DnsRecord[] =
      entry === 'NXDOMAIN'
        ? []
        : entry.map((data): DnsRecord => {
            if (question.type !== 'SRV') {
              return { name: question.name, type: question.type, class: 'IN', ttl: 5, data };
            }
            const [priority, weight, port, target] = data.split(' ');
            return {
              name: question.name,
              type: 'SRV',
              class: 'IN',
              ttl: 5,
              data: {
                priority: Number(priority),
                weight: Number(weight),
                port: Number(port),
                target: target!,
              },
            };
          });
    const response: DnsResponse = {
      rcode: entry === 'NXDOMAIN' ? 'NXDOMAIN' : 'NOERROR',
      truncated: false,
      answers,
      authorities: [],
      additionals: [],
    };
    return Promise.resolve({ response, server: SERVER, transport: 'udp' });
  };
}

function environment(
  zone: Readonly<Record<string, Scripted>>,
  extra: Partial<LookupEnvironment> = {},
): LookupEnvironment {
  return {
    servers: [SERVER],
    search: [],
    ndots: 1,
    hosts: undefined,
    family: 'any',
    timeoutMs: 100,
    attempts: 1,
    firstServer: 0,
    signal: new AbortController().signal,
    unref: true,
    query: scripted(zone),
    ...extra,
  };
}

function addressTarget(name: string, port = 50051): DnsTarget {
  return {
    original: `dns+lb://127.0.0.1/${name}:${port}`,
    kind: 'address',
    name,
    absolute: true,
    port,
    server: SERVER,
    authority: `${name}:${port}`,
    options: {},
  };
}

function srvTarget(name: string): DnsTarget {
  return {
    original: `dns+lb://127.0.0.1/${name}`,
    kind: 'srv',
    name,
    absolute: true,
    port: undefined,
    server: SERVER,
    authority: name,
    options: {},
  };
}

function hosts(outcome: LookupOutcome): string[] {
  return outcome.endpoints
    .map((e) => `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`)
    .sort();
}

async function lookup(
  target: DnsTarget,
  zone: Readonly<Record<string, Scripted>>,
  family: AddressFamily = 'any',
): Promise<LookupOutcome> {
  return lookupTarget(target, environment(zone, { family }));
}

describe('SRV: fallback to the next priority (RFC 2782)', () => {
  const SRV = '_grpc._tcp.api.test';

  const cases: {
    name: string;
    zone: Record<string, Scripted>;
    expected: string[];
    warning?: RegExp;
  }[] = [
    {
      name: 'no target of the best priority has an address: the next priority is used',
      zone: {
        [`${SRV} SRV`]: ['0 10 5001 gone.test', '0 10 5002 empty.test', '1 10 5003 backup.test'],
        'gone.test A': 'NXDOMAIN',
        'gone.test AAAA': 'NXDOMAIN',
        'backup.test A': ['127.0.0.4'],
      },
      expected: ['127.0.0.4:5003'],
      warning: /no target of priority 0 resolved.*using priority 1/,
    },
    {
      name: 'every lookup of the best priority fails (SERVFAIL): the next priority is used',
      zone: {
        [`${SRV} SRV`]: ['0 10 5001 broken.test', '5 10 5003 backup.test'],
        'broken.test A': 'SERVFAIL',
        'broken.test AAAA': 'SERVFAIL',
        'backup.test A': ['127.0.0.4'],
      },
      expected: ['127.0.0.4:5003'],
      warning: /broken.test.*SERVFAIL/,
    },
    {
      name: 'the best priority has only unusable addresses: the next priority is used',
      zone: {
        [`${SRV} SRV`]: ['0 10 5001 sinkhole.test', '1 10 5003 backup.test'],
        'sinkhole.test A': ['0.0.0.0'],
        'sinkhole.test AAAA': ['::'],
        'backup.test A': ['127.0.0.4'],
      },
      expected: ['127.0.0.4:5003'],
    },
    {
      name: 'two priorities without an address: the third is used',
      zone: {
        [`${SRV} SRV`]: [
          '0 1 5001 a.test',
          '1 1 5002 b.test',
          '2 1 5003 c.test',
          '3 1 5004 d.test',
        ],
        'c.test A': ['127.0.0.4'],
        'd.test A': ['127.0.0.5'],
      },
      expected: ['127.0.0.4:5003'],
    },
    {
      name: 'one target of the best priority resolves: it is used, the other skipped, no fallback',
      zone: {
        [`${SRV} SRV`]: ['0 10 5001 ok.test', '0 10 5002 broken.test', '1 10 5003 backup.test'],
        'ok.test A': ['127.0.0.2'],
        'broken.test A': 'SERVFAIL',
        'broken.test AAAA': 'SERVFAIL',
        'backup.test A': ['127.0.0.4'],
      },
      expected: ['127.0.0.2:5001'],
      warning: /broken.test/,
    },
  ];

  for (const c of cases) {
    test(c.name, async () => {
      const outcome = await lookup(srvTarget(SRV), c.zone);
      assert.deepEqual(hosts(outcome), c.expected);
      if (c.warning) {
        assert.ok(
          outcome.warnings.some((w) => c.warning!.test(w)),
          `a warning matching ${String(c.warning)} in ${JSON.stringify(outcome.warnings)}`,
        );
      }
    });
  }

  test('the note names the priority that was used', async () => {
    const outcome = await lookup(srvTarget(SRV), {
      [`${SRV} SRV`]: ['0 10 5001 gone.test', '7 10 5003 backup.test'],
      'backup.test A': ['127.0.0.4'],
    });
    assert.match(
      outcome.note,
      /1 endpoint from DNS SRV _grpc._tcp.api.test \(1 record, priority 7\)/,
    );
  });

  test('no target of any priority has an address: an honest empty set', async () => {
    const outcome = await lookup(srvTarget(SRV), {
      [`${SRV} SRV`]: ['0 10 5001 a.test', '1 10 5003 b.test'],
      'a.test A': 'NXDOMAIN',
      'a.test AAAA': 'NXDOMAIN',
    });
    assert.deepEqual(outcome.endpoints, []);
    assert.match(outcome.note, /no usable target/);
  });

  test('no target of any priority resolves and some lookups failed: an error (the last set is kept)', async () => {
    await assert.rejects(
      lookup(srvTarget(SRV), {
        [`${SRV} SRV`]: ['0 10 5001 broken.test', '1 10 5003 empty.test'],
        'broken.test A': 'SERVFAIL',
        'broken.test AAAA': 'SERVFAIL',
      }),
      (error: unknown) =>
        error instanceof DnsResolutionError &&
        /SRV _grpc._tcp.api.test: no target could be resolved/.test(error.message) &&
        /broken.test/.test(error.message),
    );
  });

  test('lower priorities are not looked up when the best one resolves', async () => {
    const asked: string[] = [];
    await lookupTarget(
      srvTarget(SRV),
      environment(
        {},
        {
          query: scripted(
            {
              [`${SRV} SRV`]: ['0 10 5001 ok.test', '1 10 5003 backup.test'],
              'ok.test A': ['127.0.0.2'],
            },
            asked,
          ),
        },
      ),
    );
    assert.ok(!asked.some((q) => q.startsWith('backup.test')), JSON.stringify(asked));
  });
});

describe('family=any: one family failing does not fail the lookup', () => {
  test('AAAA fails, A answered: the A records are used, with a warning', async () => {
    const outcome = await lookup(addressTarget('api.test'), {
      'api.test A': ['127.0.0.2', '127.0.0.3'],
      'api.test AAAA': 'SERVFAIL',
    });
    assert.deepEqual(hosts(outcome), ['127.0.0.2:50051', '127.0.0.3:50051']);
    assert.ok(
      outcome.warnings.some((w) => /AAAA api.test failed.*using the A records alone/.test(w)),
      JSON.stringify(outcome.warnings),
    );
  });

  test('A fails, AAAA answered: the AAAA records are used', async () => {
    const outcome = await lookup(addressTarget('api.test'), {
      'api.test A': 'SERVFAIL',
      'api.test AAAA': ['::1'],
    });
    assert.deepEqual(hosts(outcome), ['[::1]:50051']);
    assert.ok(outcome.warnings.some((w) => /using the AAAA records alone/.test(w)));
  });

  test('one family fails and the other has no records: an error (the name may still be there)', async () => {
    await assert.rejects(
      lookup(addressTarget('api.test'), { 'api.test A': 'SERVFAIL', 'api.test AAAA': [] }),
      DnsResolutionError,
    );
  });

  test('both fail: an error', async () => {
    await assert.rejects(
      lookup(addressTarget('api.test'), {
        'api.test A': 'SERVFAIL',
        'api.test AAAA': 'SERVFAIL',
      }),
      /SERVFAIL/,
    );
  });

  test('an SRV target whose AAAA lookup fails is still used through its A records', async () => {
    const outcome = await lookup(srvTarget('_grpc._tcp.api.test'), {
      '_grpc._tcp.api.test SRV': ['0 10 5001 a.test'],
      'a.test A': ['127.0.0.2'],
      'a.test AAAA': 'SERVFAIL',
    });
    assert.deepEqual(hosts(outcome), ['127.0.0.2:5001']);
  });
});

describe('unusable addresses are skipped', () => {
  test('0.0.0.0, ::, broadcast, multicast and link-local answers never become endpoints', async () => {
    const outcome = await lookup(addressTarget('mixed.test', 7), {
      'mixed.test A': ['0.0.0.0', '127.0.0.2', '224.0.0.1', '239.1.2.3', '255.255.255.255'],
      'mixed.test AAAA': ['::', '::1', 'ff02::1', 'fe80::1', '::ffff:0.0.0.0'],
    });
    assert.deepEqual(hosts(outcome), ['127.0.0.2:7', '[::1]:7']);
    for (const skipped of ['0.0.0.0', '224.0.0.1', '255.255.255.255', '::', 'ff02::1', 'fe80::1']) {
      assert.ok(
        outcome.warnings.some((w) => w.includes(`unusable address ${skipped} `)),
        `a warning for ${skipped} in ${JSON.stringify(outcome.warnings)}`,
      );
    }
    assert.match(outcome.note, /2 endpoints/);
  });

  test('an answer with nothing usable is an error naming the addresses (the last set is kept)', async () => {
    await assert.rejects(
      lookup(addressTarget('sinkhole.test'), {
        'sinkhole.test A': ['0.0.0.0'],
        'sinkhole.test AAAA': ['::'],
      }),
      (error: unknown) =>
        error instanceof DnsResolutionError &&
        /DNS A\/AAAA sinkhole.test answered only unusable addresses: 0.0.0.0 \(unspecified\), :: \(unspecified\)/.test(
          error.message,
        ),
    );
  });

  test('family=ipv4: a multicast-only answer is an error', async () => {
    await assert.rejects(
      lookup(addressTarget('mc.test'), { 'mc.test A': ['224.0.0.251'] }, 'ipv4'),
      /only unusable addresses: 224.0.0.251 \(multicast\)/,
    );
  });

  test('an SRV answer whose every target is unusable is an error, not an empty set', async () => {
    await assert.rejects(
      lookup(srvTarget('_grpc._tcp.api.test'), {
        '_grpc._tcp.api.test SRV': ['0 10 5001 sinkhole.test'],
        'sinkhole.test A': ['0.0.0.0'],
      }),
      /no target could be resolved.*sinkhole.test.*0.0.0.0 \(unspecified\)/,
    );
  });

  test('a hosts file entry of 0.0.0.0 (a blocked name) is not an endpoint', async () => {
    const env = environment(
      { 'blocked.test A': ['127.0.0.9'] },
      { hosts: new Map([['blocked.test', ['0.0.0.0', '::']]]) },
    );
    await assert.rejects(
      lookupTarget({ ...addressTarget('blocked.test'), server: undefined }, env),
      /the hosts file.*only unusable addresses: 0.0.0.0 \(unspecified\), ::/,
    );
  });
});

describe('a large answer is read over several turns of the event loop', () => {
  /** How many rounds of the event loop (immediates) ran before `work` settled. */
  async function roundsTaken(work: Promise<unknown>): Promise<number> {
    let rounds = 0;
    let done = false;
    const settled = work.finally(() => (done = true));
    while (!done) {
      await new Promise((resolve) => setImmediate(resolve));
      if (!done) rounds++;
    }
    await settled;
    return rounds;
  }

  const many = Array.from(
    { length: 4_094 },
    (_, i) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`,
  );

  test('4,094 A records: read on a later round than the answer came, handed on later again', async () => {
    const outcome = lookup(addressTarget('many.test'), { 'many.test A': many }, 'ipv4');
    assert.ok((await roundsTaken(outcome)) >= 2);
    assert.equal((await outcome).endpoints.length, 4_094);
  });

  test('a few records: handed on in the round the answer came', async () => {
    const few = many.slice(0, 3);
    const outcome = lookup(addressTarget('few.test'), { 'few.test A': few }, 'ipv4');
    assert.equal(await roundsTaken(outcome), 0);
    assert.equal((await outcome).endpoints.length, 3);
  });

  test('the resolver stopping meanwhile: the lookup gives up', async () => {
    const controller = new AbortController();
    const env = environment({ 'many.test A': many }, { family: 'ipv4', signal: controller.signal });
    const outcome = lookupTarget(addressTarget('many.test'), env);
    controller.abort();
    await assert.rejects(outcome, /DNS query aborted/);
  });
});
