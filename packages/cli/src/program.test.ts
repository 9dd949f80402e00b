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
    const commands = allCommands(program).filter((c) => c.name() !== 'help');
    assert.ok(commands.some((c) => commandPath(c) === 'grpc-lb istio translate'));
    for (const command of commands) {
      const path = commandPath(command);
      assert.notEqual(command.description(), '', `${path} has a description`);
      const io = memoryIo();
      assert.equal(await runCli([...path.split(' ').slice(1), '--help'], io), 0, path);
      assert.match(io.out, new RegExp(`^Usage: ${path} `));
      // `help <command>` only where there are commands to name.
      assert.equal(/\nCommands:/.test(io.out), command.commands.length > 0, path);
      assert.equal(io.err, '');
    }
  });

  test('a usage error names the command whose help explains it', async () => {
    const io = memoryIo();
    assert.equal(await runCli(['istio', 'translate', '-f', 'vs.yaml', '--nope'], io), 2);
    assert.equal(io.err, "error: unknown option '--nope' (see 'grpc-lb istio translate --help')\n");
  });
});
