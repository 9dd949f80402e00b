import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Command } from 'commander';

import type { CliIo } from './io';
import { commandPath, createProgram, runCli } from './program';

function memoryIo(): CliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    writeOut: (text: string) => {
      io.out += text;
    },
    writeErr: (text: string) => {
      io.err += text;
    },
    readStdin: () => Promise.resolve(''),
    readFile: () => Promise.reject(Object.assign(new Error('ENOENT'), { code: 'ENOENT' })),
  };
  return io;
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

describe('the grpc-lb program', () => {
  test('every command has a description and a --help that exits 0 on stdout', async () => {
    const program = createProgram({ io: memoryIo() });
    const paths = allCommands(program)
      .filter((c) => c.name() !== 'help')
      .map((c) => {
        assert.notEqual(c.description(), '', `${commandPath(c)} has a description`);
        return commandPath(c).split(' ').slice(1);
      });
    assert.ok(paths.some((p) => p.join(' ') === 'istio translate'));
    for (const path of paths) {
      const io = memoryIo();
      assert.equal(await runCli([...path, '--help'], io), 0, path.join(' '));
      assert.match(io.out, new RegExp(`^Usage: ${['grpc-lb', ...path].join(' ')} `));
      assert.equal(io.err, '');
    }
  });

  test('a usage error names the command whose help explains it', async () => {
    const io = memoryIo();
    assert.equal(await runCli(['istio', 'translate', '-f', 'vs.yaml', '--nope'], io), 2);
    assert.equal(io.err, "error: unknown option '--nope' (see 'grpc-lb istio translate --help')\n");
  });
});
