import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import type { Command } from 'commander';

import type { CliIo } from './io';
import { commandPath, createProgram, runCli } from './program';

/**
 * The package README against the program: a command's README section has an option-table row for
 * each option its `--help` lists (but --help), written as declared (`-w, --watch`,
 * `--timeout <seconds>`), and no other; and every flag the section names is one the command takes.
 */

const README = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');

const silentIo: CliIo = {
  stderrIsTTY: false,
  writeOut: () => undefined,
  writeErr: () => undefined,
  readStdin: () => Promise.resolve(''),
  readFile: () => Promise.reject(new Error('not read')),
};

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

function command(path: string): Command {
  const found = allCommands(createProgram({ io: silentIo })).find((c) => commandPath(c) === path);
  assert.ok(found, path);
  return found;
}

/** The README from `heading` (a `##` or `###` line's text) to the next heading of its level or above. */
function section(heading: string): string {
  const match = new RegExp(`^(#+) ${heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm').exec(
    README,
  );
  assert.ok(match, `the README has a "${heading}" section`);
  const rest = README.slice(match.index + match[0].length);
  const next = new RegExp(`^#{1,${match[1]!.length}} `, 'm').exec(rest);
  return rest.slice(0, next === null ? undefined : next.index);
}

/** Every long flag named in `text` (`--probe-timeout`). */
function longFlags(text: string): Set<string> {
  return new Set(text.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []);
}

/** The flags of each option-table row, as written (`-w, --watch`, `--timeout <seconds>`). */
function tableFlags(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .flatMap((line) => line.split('|').map((cell) => cell.trim()))
    .flatMap((cell) => /^`(-[^`]+)`$/.exec(cell)?.[1] ?? []);
}

/** The long flags `--help` lists for `c`, but --help itself (every command has it). */
function helpFlags(c: Command): Set<string> {
  return new Set(c.options.flatMap((o) => o.long ?? []).filter((f) => f !== '--help'));
}

function without(set: Set<string>, ...flags: string[]): Set<string> {
  return new Set([...set].filter((f) => !flags.includes(f)));
}

const REGISTRY = section('Registry settings');

const COMMANDS = [
  { path: 'grpc-lb endpoints', readme: section('grpc-lb endpoints') },
  // Its section points at the registry settings of `grpc-lb endpoints` for those flags.
  { path: 'grpc-lb explain', readme: `${section('grpc-lb explain')}\n${REGISTRY}` },
  { path: 'grpc-lb istio translate', readme: section('grpc-lb istio translate') },
] as const;

describe('the README and --help', () => {
  for (const { path, readme } of COMMANDS) {
    test(`${path}: the README names exactly the flags --help lists`, () => {
      const c = command(path);
      assert.deepEqual(
        [...without(longFlags(readme), '--help')].sort(),
        [...helpFlags(c)].sort(),
        `README section "${path}" (left) against '${path} --help' (right)`,
      );
    });

    test(`${path}: its option tables have a row for every option, written as declared`, () => {
      const declared = command(path)
        .options.filter((o) => o.long !== '--help')
        .map((o) => o.flags);
      assert.deepEqual([...tableFlags(readme)].sort(), [...declared].sort());
    });
  }

  test('explain: the README points at the registry settings it shares with endpoints', () => {
    assert.match(section('grpc-lb explain'), /\[registry settings\]\(#registry-settings\)/);
    const shared = [...helpFlags(command('grpc-lb explain'))].filter((f) =>
      helpFlags(command('grpc-lb endpoints')).has(f),
    );
    for (const flag of longFlags(REGISTRY)) assert.ok(shared.includes(flag), flag);
  });

  test('grpc-lb: the program options and every command are in the README', () => {
    const program = createProgram({ io: silentIo });
    for (const flag of helpFlags(program)) assert.match(section('Every command'), new RegExp(flag));
    const leaves = allCommands(program).filter((c) => c.commands.length === 0 && c !== program);
    for (const leaf of leaves.filter((c) => c.name() !== 'help')) {
      const path = commandPath(leaf);
      assert.ok(README.includes(`\n## ${path}\n`), `a "## ${path}" section`);
      assert.ok(
        README.includes(`- \`${path} `) || README.includes(`- \`${path}\``),
        `${path} in the list of commands`,
      );
    }
  });
});

/** The rows of every `| exit | example |` table: the exit status and the example's first code span. */
function errorRows(): { exit: number; example: string }[] {
  return README.split('\n').flatMap((line) => {
    const row = /^\| (\d) +\| `([^`]+)`/.exec(line);
    return row === null ? [] : [{ exit: Number(row[1]), example: row[2]! }];
  });
}

/** An example as a pattern: `…` and a placeholder of several words (`<what it found>`) stand for any text. */
function examplePattern(example: string): RegExp {
  const parts = example.split(/…|<[A-Za-z]+(?: [A-Za-z]+)+>/);
  return new RegExp(`^${parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}\n$`);
}

function filesIo(files: Readonly<Record<string, string>>): CliIo & { err: string } {
  const io = {
    err: '',
    stderrIsTTY: false,
    writeOut: () => undefined,
    writeErr: (text: string) => {
      io.err += text;
    },
    readStdin: () => Promise.resolve(''),
    readFile: (path: string) =>
      files[path] === undefined
        ? Promise.reject(Object.assign(new Error('ENOENT'), { code: 'ENOENT' }))
        : Promise.resolve(files[path]),
  };
  return io;
}

function virtualService(name: string, host: string): string {
  return [
    'apiVersion: networking.istio.io/v1',
    'kind: VirtualService',
    `metadata: {name: ${name}, namespace: prod}`,
    'spec:',
    `  hosts: [${host}]`,
    '  http:',
    '    - route:',
    `        - destination: {host: ${host}}`,
    '',
  ].join('\n');
}

const FILES: Record<string, string> = {
  'configmap.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello2}\n',
  'tcp-vs.yaml': virtualService('hello2', 'hello2-svc').replace(/ {2}http:[\s\S]*/, '  tcp: []\n'),
  'a-vs.yaml': virtualService('hello2', 'hello2-svc'),
  'b-vs.yaml': virtualService('hello3', 'hello3-svc'),
  // Document 2 (after the `---` on line 13) breaks on line 14.
  'hello2-dr.yaml': `${virtualService('hello2', 'hello2-svc')}\n\n\n\n---\nspec: a: b\n`,
};

/**
 * How each example of the README's error tables is produced without a registry; the others come
 * from a registry's answer and are checked against real servers (test/cli-*.test.ts).
 */
const EXAMPLES: readonly {
  readonly starts: string;
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}[] = [
  {
    starts: 'error: k8s resolver: invalid kubeconfig',
    argv: ['endpoints', 'k8s:///hello.prod:grpc', '--kubeconfig', '/tmp/nope'],
  },
  {
    starts: 'error: cannot read the etcd CA certificate',
    argv: ['endpoints', 'etcd:///services/hello'],
    env: { ETCDCTL_CACERT: '/etc/etcd/ca.pem' },
  },
  {
    starts: 'error: cannot read the CA certificate',
    argv: ['endpoints', 'static:///127.0.0.2:1', '--probe', '--probe-cacert', '/etc/grpc/ca.pem'],
  },
  {
    starts: 'error: etcd user "app" (--etcd-user) has no password',
    argv: ['endpoints', 'etcd:///services/hello', '--etcd-user', 'app'],
  },
  { starts: 'error: invalid target', argv: ['endpoints', 'static:///nope'] },
  { starts: 'error: unknown scheme', argv: ['endpoints', 'xds:///hello'] },
  {
    starts: 'error: --etcd-user takes a user name only',
    argv: ['endpoints', 'etcd:///services/hello', '--etcd-user', 'app:secret'],
  },
  {
    starts: "error: option '--probe' cannot be used",
    argv: ['endpoints', 'static:///127.0.0.2:1', '--probe', '--watch'],
  },
  {
    starts: 'error: cannot read hello2-vs.yaml',
    argv: ['istio', 'translate', '-f', 'hello2-vs.yaml'],
  },
  {
    starts: 'error: hello2-dr.yaml: document 2, line 14',
    argv: ['istio', 'translate', '-f', 'hello2-dr.yaml'],
  },
  {
    starts: 'error: no VirtualService or DestinationRule',
    argv: ['istio', 'translate', '-f', 'configmap.yaml'],
  },
  {
    starts: 'error: VirtualService prod/hello2: http: is missing',
    argv: ['istio', 'translate', '-f', 'tcp-vs.yaml'],
  },
  {
    starts: 'error: the resources name several hosts',
    argv: ['istio', 'translate', '-f', 'a-vs.yaml', '-f', 'b-vs.yaml'],
  },
  {
    starts: 'error: --host hello9',
    argv: ['istio', 'translate', '-f', 'a-vs.yaml', '--host', 'hello9'],
  },
  { starts: "error: required option '-f, --file <file>'", argv: ['istio', 'translate'] },
];

/** Rows whose message is a registry's answer (or a probe's), checked against real servers. */
const FROM_SERVERS = [
  'error: cannot resolve consul:///hello within 10 s: querying',
  'error: cannot resolve etcd:///services/hello within 10 s: etcd list',
  'error: cannot resolve consul:///hello within 10 s: reading',
  'error: cannot resolve etcd:///services/hello within 10 s: etcd list of "services/hello/" at https',
  'error: 2 of 4 endpoints cannot take calls',
];

describe('the README error tables', () => {
  test('every example is one this test runs, or one from a registry or probe', () => {
    for (const { example } of errorRows()) {
      const known = [...EXAMPLES.map((e) => e.starts), ...FROM_SERVERS];
      assert.ok(
        known.some((s) => example.startsWith(s)),
        example,
      );
    }
  });

  for (const { starts, argv, env = {} } of EXAMPLES) {
    test(`${starts}…: the exit status and the line the README shows`, async () => {
      const row = errorRows().find((r) => r.example.startsWith(starts));
      assert.ok(row, `a README row starting ${starts}`);
      const saved = { ...process.env };
      for (const key of Object.keys(process.env)) {
        if (key.startsWith('ETCDCTL_') || key === 'KUBECONFIG') delete process.env[key];
      }
      Object.assign(process.env, env);
      try {
        const io = filesIo(FILES);
        assert.equal(await runCli(argv, io), row.exit, io.err);
        assert.match(io.err, examplePattern(row.example));
      } finally {
        for (const key of Object.keys(process.env)) delete process.env[key];
        Object.assign(process.env, saved);
      }
    });
  }
});
