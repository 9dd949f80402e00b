import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import type { Command } from 'commander';

import type { CliIo } from './io';
import { commandPath, createProgram } from './program';

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
