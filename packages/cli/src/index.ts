// The `grpc-lb` command line, for running it from code and for adding commands to it.
export { runCli, createProgram, commandPath } from './program';
export { COMMANDS } from './registry';
export type { CliCommand, CommandContext } from './command';
export { processIo, type CliIo } from './io';
export { EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_UNHEALTHY, type ExitCode } from './exit-codes';
export { CliError, UsageError, InputError, UnhealthyError, type CliErrorCode } from './errors';
export {
  writeJson,
  writeTable,
  formatTable,
  writeWarnings,
  writeError,
  oneLine,
  type TableColumn,
} from './output';
export { readInputFiles, STDIN_NAME, type InputFile } from './input-files';
