import { EXIT_INPUT, EXIT_UNHEALTHY, EXIT_USAGE, type ExitCode } from './exit-codes';

export type CliErrorCode = 'USAGE' | 'INPUT' | 'UNHEALTHY';

/**
 * An error a command reports to the operator: its message is printed as one line on stderr (no
 * stack trace) and the process exits with `exitCode`.
 */
export class CliError extends Error {
  readonly code: CliErrorCode;
  readonly exitCode: ExitCode;

  constructor(code: CliErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.exitCode =
      code === 'USAGE' ? EXIT_USAGE : code === 'UNHEALTHY' ? EXIT_UNHEALTHY : EXIT_INPUT;
    this.name = 'CliError';
  }
}

/** The command line is wrong (exit 2); `command` names the command whose `--help` explains it. */
export class UsageError extends CliError {
  readonly command: string | undefined;

  constructor(message: string, command?: string) {
    super('USAGE', message);
    this.command = command;
    this.name = 'UsageError';
  }
}

/** The input cannot be used (exit 1): a file that cannot be read, a document that is wrong. */
export class InputError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INPUT', message, options);
    this.name = 'InputError';
  }
}

/**
 * What the command checked is not well (exit 3): the result is printed, and this says what failed,
 * e.g. endpoints a probe found unable to take calls.
 */
export class UnhealthyError extends CliError {
  constructor(message: string) {
    super('UNHEALTHY', message);
    this.name = 'UnhealthyError';
  }
}
