import { redactSecrets } from '@grpc-lb/core';

import type { CliIo } from './io';

/**
 * Output shared by every command: results on stdout (JSON or a table), messages on stderr, one
 * line each. Messages go through `redactSecrets`, so a token or password quoted from a target or a
 * document never reaches the terminal or a log.
 */

/** `value` as JSON on stdout: indented for people, or on one line (`compact`) for scripts. */
export function writeJson(io: CliIo, value: unknown, options: { compact?: boolean } = {}): void {
  io.writeOut(`${JSON.stringify(value, null, options.compact === true ? undefined : 2)}\n`);
}

/** One message as a single line (line breaks become spaces), secrets masked. */
export function oneLine(text: string): string {
  return redactSecrets(text.trim().replace(/\s*\r?\n\s*/g, ' '));
}

/** `warning: <message>` on stderr, one line per warning. */
export function writeWarnings(io: CliIo, warnings: readonly string[]): void {
  for (const warning of warnings) io.writeErr(`warning: ${oneLine(warning)}\n`);
}

/** `error: <message>` on stderr, as one line. */
export function writeError(io: CliIo, message: string): void {
  io.writeErr(`error: ${oneLine(message)}\n`);
}

/** A column of a table: its heading, and how far to the right its cells are aligned. */
export interface TableColumn {
  readonly heading: string;
  readonly align?: 'left' | 'right';
}

/**
 * Rows as a plain-text table with a heading line, columns separated by two spaces and padded to
 * their widest cell (the last column is not padded on the left-aligned side, so lines carry no
 * trailing spaces). Cells are single-line: a line break in a cell becomes a space.
 */
export function formatTable(
  columns: readonly TableColumn[],
  rows: readonly (readonly string[])[],
): string {
  const clean = (cell: string | undefined) => (cell ?? '').replace(/\s*\r?\n\s*/g, ' ');
  const lines = [
    columns.map((c) => c.heading),
    ...rows.map((row) => columns.map((_c, i) => clean(row[i]))),
  ];
  const widths = columns.map((_c, i) => Math.max(...lines.map((line) => line[i]!.length)));
  return lines
    .map((line) =>
      line
        .map((cell, i) => {
          const width = widths[i]!;
          if (columns[i]!.align === 'right') return cell.padStart(width);
          return i === line.length - 1 ? cell : cell.padEnd(width);
        })
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** `rows` as a table on stdout (see `formatTable`). */
export function writeTable(
  io: CliIo,
  columns: readonly TableColumn[],
  rows: readonly (readonly string[])[],
): void {
  io.writeOut(formatTable(columns, rows));
}
