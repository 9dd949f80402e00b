import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { assertOneErrorLine, grpcLb, LAUNCHER } from './testing/run-bin';

const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('grpc-lb: help', () => {
  test('--help lists the commands and the exit codes, exit 0', () => {
    const run = grpcLb(['--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: grpc-lb /);
    assert.match(run.stdout, /\n {2}istio /);
    assert.match(run.stdout, /Exit status: 0 .*1 .*2 a usage error/);
    assert.equal(run.stderr, '');
  });

  test('istio translate --help describes every option, exit 0', () => {
    const run = grpcLb(['istio', 'translate', '--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: grpc-lb istio translate \[options\]/);
    for (const option of [
      '-f, --file <file>',
      '--host <host>',
      '--namespace <namespace>',
      '--json',
    ]) {
      assert.ok(run.stdout.includes(option), `help names ${option}`);
    }
    assert.equal(run.stderr, '');
  });

  test('istio --help and help istio list translate, exit 0', () => {
    for (const args of [
      ['istio', '--help'],
      ['help', 'istio'],
    ]) {
      const run = grpcLb(args);
      assert.equal(run.code, 0, args.join(' '));
      assert.match(run.stdout, /\n {2}translate /);
    }
  });

  test('--version prints the package version', () => {
    const run = grpcLb(['--version']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test("the package's bin (bin/grpc-lb.js) runs the same program, exit codes included", () => {
    const version = grpcLb(['--version'], '', LAUNCHER);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, grpcLb(['--version']).stdout);
    assert.equal(grpcLb(['frobnicate'], '', LAUNCHER).code, 2);
  });

  test('no command prints the usage on stderr, exit 2', () => {
    const run = grpcLb([]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^Usage: grpc-lb /);
    assert.equal(run.stdout, '');
  });
});

describe('grpc-lb: usage errors exit 2 with one line', () => {
  test('an unknown command', () => {
    const run = grpcLb(['frobnicate']);
    assert.equal(run.code, 2);
    assert.equal(
      assertOneErrorLine(run),
      "error: unknown command 'frobnicate' (see 'grpc-lb --help')",
    );
  });

  test('istio translate without -f', () => {
    const run = grpcLb(['istio', 'translate']);
    assert.equal(run.code, 2);
    assert.match(
      assertOneErrorLine(run),
      /required option '-f, --file <file>'.*grpc-lb istio translate --help/,
    );
  });

  test('a misspelt option, with the suggestion on the same line', () => {
    const run = grpcLb(['istio', 'translate', '-f', 'x.yaml', '--hots', 'a']);
    assert.equal(run.code, 2);
    assert.match(assertOneErrorLine(run), /unknown option '--hots' \(Did you mean --host\?\)/);
  });

  test('an unknown option never shows the secret written into it', () => {
    const run = grpcLb(['istio', 'translate', '-f', 'x.yaml', '--token=s3cr3t-value']);
    assert.equal(run.code, 2);
    assert.doesNotMatch(assertOneErrorLine(run), /s3cr3t/);
  });

  test('a stray argument', () => {
    const run = grpcLb(['istio', 'translate', '-f', 'x.yaml', 'y.yaml']);
    assert.equal(run.code, 2);
    assert.match(assertOneErrorLine(run), /too many arguments/);
  });

  test('a stray help after a command without subcommands', () => {
    const run = grpcLb(['istio', 'translate', '-f', 'x.yaml', 'help']);
    assert.equal(run.code, 2);
    assert.match(assertOneErrorLine(run), /too many arguments/);
  });

  test('stdin given twice', () => {
    const run = grpcLb(['istio', 'translate', '-f', '-', '-f', '-']);
    assert.equal(run.code, 2);
    assert.match(assertOneErrorLine(run), /-f - \(stdin\) can be given only once/);
  });
});

describe('grpc-lb istio translate: input that cannot be used exits 1 with one line', () => {
  test('a missing file is named', () => {
    const missing = join(dir, 'no-such-vs.yaml');
    const run = grpcLb(['istio', 'translate', '-f', missing]);
    assert.equal(run.code, 1);
    assert.equal(assertOneErrorLine(run), `error: cannot read ${missing}: no such file`);
  });

  test('a file name quoting a credential is shown with the credential masked', () => {
    const run = grpcLb(['istio', 'translate', '-f', 'https://ops:hunter2@example.com/vs.yaml']);
    assert.equal(run.code, 1);
    assert.equal(
      assertOneErrorLine(run),
      'error: cannot read https://***@example.com/vs.yaml: no such file',
    );
  });

  test('a directory is named', () => {
    const run = grpcLb(['istio', 'translate', '-f', dir]);
    assert.equal(run.code, 1);
    assert.equal(assertOneErrorLine(run), `error: cannot read ${dir}: it is a directory`);
  });

  test('the first file that cannot be read stops the command before any output', () => {
    const good = join(dir, 'empty.yaml');
    writeFileSync(good, '');
    const run = grpcLb(['istio', 'translate', '-f', good, '-f', join(dir, 'missing.yaml')]);
    assert.equal(run.code, 1);
    assert.match(assertOneErrorLine(run), /missing\.yaml: no such file/);
  });
});
