import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Command, CommanderError } from 'commander';

import type { CliCommand, CommandContext } from './command';
import { CliError, UsageError } from './errors';
import { EXIT_INPUT, EXIT_OK, EXIT_USAGE, type ExitCode } from './exit-codes';
import { processIo, type CliIo } from './io';
import { oneLine, writeError } from './output';
import { COMMANDS } from './registry';

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
    version?: unknown;
  };
  return typeof manifest.version === 'string' ? manifest.version : '0.0.0';
}

/** `grpc-lb istio translate`: the words that run `command`. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Gives `command` and every subcommand the program's behaviour: output through `io`, and every
 * command-line mistake commander finds turned into a UsageError of the command it was made on
 * (commander's own printing of it is silenced; `runCli` prints one line).
 */
function applySettings(command: Command, io: CliIo): void {
  command.helpOption('-h, --help', 'print this help');
  // Only a command with subcommands gets `help <subcommand>`; on a leaf, `help` is a stray argument.
  if (command.commands.length > 0) {
    command.helpCommand('help [command]', 'print the help of a command');
  }
  command
    .configureOutput({
      writeOut: (text) => io.writeOut(text),
      writeErr: (text) => io.writeErr(text),
      outputError: () => {},
    })
    .exitOverride((error) => {
      // Help, --version, and the usage a bare `grpc-lb` or `grpc-lb istio` prints, are already
      // written; runCli only turns them into an exit code.
      if (error.code.startsWith('commander.help') || error.code === 'commander.version') {
        throw error;
      }
      throw new UsageError(error.message.replace(/^error:\s*/, ''), commandPath(command));
    });
  for (const sub of command.commands) applySettings(sub, io);
}

/** The `grpc-lb` program with `commands` (every registered command by default). */
export function createProgram(
  context: CommandContext,
  commands: readonly CliCommand[] = COMMANDS,
): Command {
  const program = new Command('grpc-lb')
    .description(
      'Operator commands for grpc-lb, client-side service discovery and load balancing for Node gRPC',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .addHelpText(
      'after',
      `
Exit status: 0 done (warnings may be printed), 1 the input cannot be used, 2 a usage error,
3 done but what was checked is not well (grpc-lb endpoints --probe: endpoints that cannot take calls).
Run 'grpc-lb <command> --help' for a command's options.
`,
    );
  for (const command of commands) program.addCommand(command.create(context));
  applySettings(program, context.io);
  return program;
}

/** Prints what `error` says as one line on stderr and returns the exit code it stands for. */
function report(io: CliIo, error: unknown): ExitCode {
  if (error instanceof CommanderError) {
    if (error.code === 'commander.help' && error.exitCode !== 0) return EXIT_USAGE;
    return EXIT_OK;
  }
  if (error instanceof UsageError) {
    const help = error.command === undefined ? '' : ` (see '${error.command} --help')`;
    writeError(io, `${oneLine(error.message)}${help}`);
    return EXIT_USAGE;
  }
  if (error instanceof CliError) {
    writeError(io, error.message);
    return error.exitCode;
  }
  writeError(io, error instanceof Error ? error.message || error.name : String(error));
  return EXIT_INPUT;
}

/**
 * Runs `grpc-lb` with `argv` (the arguments after the program name) and returns its exit code:
 * 0 done, 1 the input cannot be used, 2 a usage error, 3 what was checked is not well. Never throws; every error is printed as
 * one line on stderr.
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo = processIo(),
  commands: readonly CliCommand[] = COMMANDS,
): Promise<ExitCode> {
  try {
    const program = createProgram({ io }, commands);
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT_OK;
  } catch (error) {
    return report(io, error);
  }
}
