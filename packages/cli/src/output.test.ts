import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { CliIo } from './io';
import { formatTable, oneLine, writeError, writeJson, writeWarnings } from './output';

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
    readFile: () => Promise.reject(new Error('no files here')),
  };
  return io;
}

describe('output helpers', () => {
  test('formatTable pads columns to their widest cell, right-aligns numbers, leaves no trailing spaces', () => {
    const table = formatTable(
      [{ heading: 'ADDRESS' }, { heading: 'WEIGHT', align: 'right' }, { heading: 'LABELS' }],
      [
        ['10.0.0.1:50051', '1', 'version=v1'],
        ['10.0.0.22:50051', '100', ''],
      ],
    );
    assert.equal(
      table,
      'ADDRESS          WEIGHT  LABELS\n' +
        '10.0.0.1:50051        1  version=v1\n' +
        '10.0.0.22:50051     100\n',
    );
  });

  test('formatTable keeps every row on one line', () => {
    assert.equal(formatTable([{ heading: 'A' }], [['x\ny']]), 'A\nx y\n');
  });

  test('writeJson indents for people and writes one line when compact', () => {
    const io = memoryIo();
    writeJson(io, { a: [1] });
    writeJson(io, { a: [1] }, { compact: true });
    assert.equal(io.out, '{\n  "a": [\n    1\n  ]\n}\n{"a":[1]}\n');
  });

  test('messages are one line each on stderr, with secrets masked', () => {
    const io = memoryIo();
    writeWarnings(io, ['first\n  continued', 'etcd://user:pw@h/x?token=abc']);
    writeError(io, 'bad Bearer abc.def');
    assert.equal(
      io.err,
      'warning: first continued\n' +
        'warning: etcd://***@h/x?token=***\n' +
        'error: bad Bearer ***\n',
    );
    assert.equal(io.out, '');
  });

  test('oneLine joins the lines of a message', () => {
    assert.equal(
      oneLine('  unknown option\n(Did you mean --host?)\n'),
      'unknown option (Did you mean --host?)',
    );
  });
});
