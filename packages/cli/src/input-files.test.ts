import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { InputError, UsageError } from './errors';
import { readInputFiles } from './input-files';
import type { CliIo } from './io';

function io(files: Record<string, string | { code: string }>, stdin = ''): CliIo {
  return {
    writeOut: () => {},
    writeErr: () => {},
    readStdin: () => Promise.resolve(stdin),
    readFile: (path) => {
      const entry = files[path];
      if (typeof entry === 'string') return Promise.resolve(entry);
      const code = entry?.code ?? 'ENOENT';
      return Promise.reject(Object.assign(new Error(`${code}: ${path}`), { code }));
    },
  };
}

describe('readInputFiles', () => {
  test('reads files and stdin in the order given, naming stdin <stdin>', async () => {
    const files = await readInputFiles(io({ 'a.yaml': 'A' }, 'S'), ['a.yaml', '-'], 'cmd');
    assert.deepEqual(files, [
      { name: 'a.yaml', text: 'A' },
      { name: '<stdin>', text: 'S' },
    ]);
  });

  test('says in a few words why a file cannot be read', async () => {
    const cases: [string, string][] = [
      ['ENOENT', 'cannot read f.yaml: no such file'],
      ['EISDIR', 'cannot read f.yaml: it is a directory'],
      ['EACCES', 'cannot read f.yaml: permission denied'],
    ];
    for (const [code, message] of cases) {
      await assert.rejects(
        readInputFiles(io({ 'f.yaml': { code } }), ['f.yaml'], 'cmd'),
        (error: unknown) => error instanceof InputError && error.message === message,
      );
    }
  });

  test('stdin named twice is a usage error of the command', async () => {
    await assert.rejects(
      readInputFiles(io({}), ['-', '-'], 'grpc-lb x'),
      (error: unknown) => error instanceof UsageError && error.command === 'grpc-lb x',
    );
  });
});
