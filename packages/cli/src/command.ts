import type { Command } from 'commander';

import type { CliIo } from './io';

/** What every command is given: where to read and write. */
export interface CommandContext {
  readonly io: CliIo;
}

/**
 * A top-level command of `grpc-lb` (`grpc-lb istio …`). Each lives in its own module under
 * `commands/` and is listed once in `registry.ts`; the program adds them in that order, and gives
 * every command it builds (subcommands included) the same error handling and output.
 *
 * An action reports a problem by throwing: a `UsageError` (exit 2) for a command line that is
 * wrong, an `InputError` (exit 1) for input that cannot be used. It writes its result with the
 * helpers of `output.ts`, through `context.io`.
 */
export interface CliCommand {
  /** The word that selects it: `grpc-lb <name>`. */
  readonly name: string;
  /** Builds the commander command, with its options, subcommands and actions. */
  create(context: CommandContext): Command;
}
