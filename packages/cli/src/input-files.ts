import { InputError, UsageError } from './errors';
import type { CliIo } from './io';

/** The name `-f -` gives stdin in messages. */
export const STDIN_NAME = '<stdin>';

/** A file given on the command line, read whole. */
export interface InputFile {
  /** As the operator wrote it (`vs.yaml`), or `<stdin>` for `-`. */
  readonly name: string;
  readonly text: string;
}

/** Why a file could not be read, in a few words, from the file system's error code. */
function readProblem(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EISDIR':
      return 'it is a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Reads every file of `paths` in order (`-` is stdin, allowed once). A file that cannot be read is
 * an InputError naming it; stdin named twice is a UsageError of `command`.
 */
export async function readInputFiles(
  io: CliIo,
  paths: readonly string[],
  command: string,
): Promise<InputFile[]> {
  if (paths.filter((p) => p === '-').length > 1) {
    throw new UsageError('-f - (stdin) can be given only once', command);
  }
  const files: InputFile[] = [];
  for (const path of paths) {
    if (path === '-') {
      files.push({ name: STDIN_NAME, text: await io.readStdin() });
      continue;
    }
    try {
      files.push({ name: path, text: await io.readFile(path) });
    } catch (error) {
      throw new InputError(`cannot read ${path}: ${readProblem(error)}`, { cause: error });
    }
  }
  return files;
}
