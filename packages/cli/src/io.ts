import { readFile } from 'node:fs/promises';

/** Where a command reads and writes: the process's streams, or buffers in tests. */
export interface CliIo {
  /** Writes to stdout (the command's result). */
  writeOut(text: string): void;
  /** Writes to stderr (warnings, errors, help after a usage error). */
  writeErr(text: string): void;
  /** The whole of stdin, as UTF-8 text. */
  readStdin(): Promise<string>;
  /** The whole of a file, as UTF-8 text; rejects with the file system's error (`code` ENOENT…). */
  readFile(path: string): Promise<string>;
  /** Whether stderr is a terminal (a progress line is only drawn on one). */
  readonly stderrIsTTY?: boolean;
}

/** The running process's stdin, stdout, stderr and file system. */
export function processIo(): CliIo {
  return {
    writeOut: (text) => {
      process.stdout.write(text);
    },
    writeErr: (text) => {
      process.stderr.write(text);
    },
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) {
        chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
      }
      return Buffer.concat(chunks).toString('utf8');
    },
    readFile: (path) => readFile(path, 'utf8'),
    stderrIsTTY: process.stderr.isTTY === true,
  };
}
