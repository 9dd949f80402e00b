import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { CliIo } from '../io';
import { runCli } from '../program';

function memoryIo(files: Record<string, string> = {}): CliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stderrIsTTY: false,
    writeOut: (text: string) => {
      io.out += text;
    },
    writeErr: (text: string) => {
      io.err += text;
    },
    readStdin: () => Promise.resolve(''),
    readFile: (path: string) =>
      Object.hasOwn(files, path)
        ? Promise.resolve(files[path]!)
        : Promise.reject(Object.assign(new Error('ENOENT'), { code: 'ENOENT' })),
  };
  return io;
}

const SPLIT = JSON.stringify({
  loadBalancingConfig: [
    {
      'grpc-lb.traffic_split': {
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
          { name: 'canary', labels: { version: 'v3' } },
        ],
        routes: [
          {
            name: 'say',
            match: { method: '/helloworld.Greeter/SayHello' },
            split: [
              { subset: 'v1', weight: 90 },
              { subset: 'v2', weight: 10 },
            ],
          },
          {
            name: 'beta',
            match: { headers: [{ name: 'x-user', exact: 'beta' }] },
            split: [{ subset: 'v2', weight: 1 }],
          },
          {
            name: 'admin',
            match: { prefix: '/admin.Admin/' },
            split: [
              { subset: 'v1', weight: 1 },
              { subset: 'canary', weight: 1 },
            ],
          },
          {
            name: 'gets',
            match: { regex: '/shop\\.Cart/Get.*' },
            split: [
              { subset: 'v1', weight: 1 },
              { subset: 'v2', weight: 3 },
            ],
          },
        ],
      },
    },
  ],
});

const TARGET = 'static:///127.0.0.2:1;version=v1,127.0.0.3:1;version=v2,127.0.0.4:1;version=v2';

interface Split {
  subset: string;
  weight: number;
  share: number;
  endpoints: string[];
  empty: boolean;
}

interface Explained {
  policy: string;
  route: { name: string; index: number } | null;
  split?: Split[];
  candidates?: string[];
  serviceConfigSource: string | null;
}

async function explainJson(args: readonly string[], target = TARGET): Promise<Explained> {
  const io = memoryIo({ 'split.json': SPLIT });
  const code = await runCli(['explain', target, '--config', 'split.json', '--json', ...args], io);
  assert.equal(code, 0, io.err);
  return JSON.parse(io.out) as Explained;
}

describe('grpc-lb explain: traffic split from --config', () => {
  test('a route by method: the split, each share in percent, and each subset its endpoints', async () => {
    const out = await explainJson(['--method', '/helloworld.Greeter/SayHello']);
    assert.equal(out.policy, 'grpc-lb.traffic_split');
    assert.equal(out.serviceConfigSource, '--config split.json');
    assert.deepEqual(out.route, { name: 'say', index: 0 });
    assert.deepEqual(
      out.split!.map((s) => [s.subset, s.weight, s.share, s.endpoints, s.empty]),
      [
        ['v1', 90, 90, ['127.0.0.2:1'], false],
        ['v2', 10, 10, ['127.0.0.3:1', '127.0.0.4:1'], false],
      ],
    );
  });

  test('a route by header (names are case-insensitive), and the first match wins', async () => {
    const out = await explainJson(['--method', '/x.Y/Z', '--header', 'X-User=beta']);
    assert.deepEqual(out.route, { name: 'beta', index: 1 });
    // The method route comes first: the header does not take it away.
    const first = await explainJson([
      '--method',
      '/helloworld.Greeter/SayHello',
      '--header',
      'x-user=beta',
    ]);
    assert.deepEqual(first.route, { name: 'say', index: 0 });
  });

  test('a route by prefix, with an empty subset named', async () => {
    const out = await explainJson(['--method', '/admin.Admin/Reload']);
    assert.deepEqual(out.route, { name: 'admin', index: 2 });
    const canary = out.split!.find((s) => s.subset === 'canary')!;
    assert.equal(canary.empty, true);
    assert.deepEqual(canary.endpoints, []);
    assert.equal(canary.share, 50);

    const io = memoryIo({ 'split.json': SPLIT });
    const code = await runCli(
      ['explain', TARGET, '--config', 'split.json', '--method', '/admin.Admin/Reload'],
      io,
    );
    assert.equal(code, 0, io.err);
    assert.match(io.out, /^route: +"admin" \(route 3 of 4/m);
    assert.match(io.out, /^canary +1 +50% +round_robin +version=v3 +\(empty\)$/m);
    assert.match(
      io.out,
      /^subset "canary" is empty: with onEmptySubset "redistribute" its 50% goes to the route's other subsets/m,
    );
  });

  test('a route whose every subset is empty: its calls fail, said once', async () => {
    const io = memoryIo({ 'split.json': SPLIT });
    const code = await runCli(
      [
        'explain',
        'static:///127.0.0.2:1;version=v1',
        '--config',
        'split.json',
        '--method',
        '/x.Y/Z',
        '--header',
        'x-user=beta',
      ],
      io,
    );
    assert.equal(code, 0, io.err);
    assert.match(
      io.out,
      /^every subset of the route is empty \("v2"\): its calls fail with UNAVAILABLE$/m,
    );
    assert.doesNotMatch(io.out, /^subset "v2" is empty/m);
  });

  test('a route by regex over the whole method name', async () => {
    const out = await explainJson(['--method', '/shop.Cart/GetItems']);
    assert.deepEqual(out.route, { name: 'gets', index: 3 });
    assert.deepEqual(
      out.split!.map((s) => [s.subset, s.share]),
      [
        ['v1', 25],
        ['v2', 75],
      ],
    );
    // The pattern must match the whole name: "/shop.Cart/ListGet" does not.
    const none = await explainJson(['--method', '/shop.Cart/ListGet']);
    assert.equal(none.route, null);
  });

  test('no route matches: every endpoint is a candidate, round robin', async () => {
    const out = await explainJson(['--method', '/other.Svc/Call']);
    assert.equal(out.route, null);
    assert.equal(out.split, undefined);
    assert.deepEqual(out.candidates, ['127.0.0.2:1', '127.0.0.3:1', '127.0.0.4:1']);

    const io = memoryIo({ 'split.json': SPLIT });
    assert.equal(
      await runCli(
        ['explain', TARGET, '--config', 'split.json', '--method', '/other.Svc/Call'],
        io,
      ),
      0,
    );
    assert.match(
      io.out,
      /none of the 4 routes matches: the call goes to every endpoint, round robin/,
    );
  });

  test('subsets over a composite target select by labels across its sources', async () => {
    const out = await explainJson(
      ['--method', '/helloworld.Greeter/SayHello'],
      'composite:///hello?vms=static:///127.0.0.5:1;version=v1&pods=static:///127.0.0.6:1;version=v2',
    );
    assert.deepEqual(
      out.split!.map((s) => [s.subset, s.endpoints]),
      [
        ['v1', ['127.0.0.5:1']],
        ['v2', ['127.0.0.6:1']],
      ],
    );
  });
});

describe('grpc-lb explain: other policies and configs', () => {
  test('without a service config: our round robin, every endpoint a candidate', async () => {
    const io = memoryIo();
    assert.equal(await runCli(['explain', TARGET, '--method', '/a.B/C'], io), 0, io.err);
    assert.match(io.out, /^service config: none/m);
    assert.match(io.out, /^policy: +grpc-lb\.round_robin$/m);
    assert.match(io.out, /^candidates: +every endpoint \(3\): 127\.0\.0\.2:1, /m);
  });

  test('another policy is named, and every endpoint is a candidate', async () => {
    const io = memoryIo({
      'lr.json': JSON.stringify({ loadBalancingConfig: [{ 'grpc-lb.least_request': {} }] }),
    });
    assert.equal(
      await runCli(['explain', TARGET, '--config', 'lr.json', '--method', '/a.B/C', '--json'], io),
      0,
      io.err,
    );
    const out = JSON.parse(io.out) as Explained;
    assert.equal(out.policy, 'grpc-lb.least_request');
    assert.equal(out.candidates!.length, 3);
  });

  test('a --config that is not valid is exit 1 naming the file and the field', async () => {
    const bad = memoryIo({
      'bad.json': JSON.stringify({
        loadBalancingConfig: [
          { 'grpc-lb.traffic_split': { subsets: [{ name: 'a', labels: {} }], routes: 3 } },
        ],
      }),
      'text.json': 'not json',
    });
    assert.equal(
      await runCli(['explain', TARGET, '--config', 'bad.json', '--method', '/a.B/C'], bad),
      1,
    );
    assert.match(bad.err, /^error: .*bad\.json.*routes/);
    const text = memoryIo({ 'text.json': 'not json' });
    assert.equal(
      await runCli(['explain', TARGET, '--config', 'text.json', '--method', '/a.B/C'], text),
      1,
    );
    assert.match(text.err, /^error: --config text\.json: not valid JSON/);
    const missing = memoryIo();
    assert.equal(
      await runCli(['explain', TARGET, '--config', 'no.json', '--method', '/a.B/C'], missing),
      1,
    );
    assert.match(missing.err, /^error: cannot read no\.json: no such file/);
  });
});

describe('grpc-lb explain: usage errors (exit 2)', () => {
  test('--method is required and must be a full method name', async () => {
    const io = memoryIo();
    assert.equal(await runCli(['explain', TARGET], io), 2);
    assert.match(io.err, /^error: required option '--method <name>' not specified/);
    const bad = memoryIo();
    assert.equal(await runCli(['explain', TARGET, '--method', 'SayHello'], bad), 2);
    assert.match(bad.err, /^error: --method "SayHello" is not a full method name/);
  });

  test('a --header that is not name=value', async () => {
    for (const value of ['x-user', '=beta', 'bad name=1']) {
      const io = memoryIo();
      assert.equal(
        await runCli(['explain', TARGET, '--method', '/a.B/C', '--header', value], io),
        2,
        value,
      );
      assert.match(io.err, /^error: option '--header <name=value>' argument .* is invalid/);
    }
  });

  test('a malformed target', async () => {
    const io = memoryIo();
    assert.equal(await runCli(['explain', 'static:///nope', '--method', '/a.B/C'], io), 2);
    assert.match(io.err, /see 'grpc-lb explain --help'/);
  });
});

describe('grpc-lb explain: help', () => {
  test('--help names every option, exit 0; grpc-lb --help lists the command', async () => {
    const io = memoryIo();
    assert.equal(await runCli(['explain', '--help'], io), 0);
    assert.match(io.out, /^Usage: grpc-lb explain \[options\] <target>/);
    for (const option of [
      '--method <name>',
      '--header <name=value>',
      '--config <file>',
      '--json',
      '--timeout <seconds>',
      '--etcd-endpoints <list>',
    ]) {
      assert.ok(io.out.includes(option), option);
    }
    const top = memoryIo();
    assert.equal(await runCli(['--help'], top), 0);
    assert.match(top.out, /\n {2}explain /);
  });
});
