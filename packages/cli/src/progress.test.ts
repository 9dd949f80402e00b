import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { CliIo } from './io';
import { ProgressLine } from './progress';

const ERASE = '\r\u001b[K';

function streams(stderrIsTTY: boolean): CliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stderrIsTTY,
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

async function until(condition: () => boolean): Promise<void> {
  const end = Date.now() + 5_000;
  while (!condition()) {
    assert.ok(Date.now() < end, 'timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('ProgressLine', () => {
  test('on a terminal: redrawn in place with the elapsed time, erased by clear()', async () => {
    const io = streams(true);
    const line = new ProgressLine(io);
    line.start((elapsed) => `resolving etcd:///hello… ${elapsed} s`);
    await until(() => io.err.split(ERASE).length > 2);
    line.clear();
    const parts = io.err.split(ERASE);
    assert.equal(parts[0], '');
    assert.equal(parts.at(-1), '', 'the last thing written erases the line');
    for (const drawn of parts.slice(1, -1)) {
      assert.match(drawn, /^resolving etcd:\/\/\/hello… \d+\.\d s$/);
    }
    assert.equal(io.out, '', 'never on stdout');
    const before = io.err;
    line.clear();
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(io.err, before, 'nothing more after clear()');
  });

  test('not a terminal: nothing is ever written', async () => {
    const io = streams(false);
    const line = new ProgressLine(io);
    line.start(() => 'resolving…');
    await new Promise((resolve) => setTimeout(resolve, 250));
    line.clear();
    assert.equal(io.err, '');
    assert.equal(io.out, '');
  });

  test('cleared before the first redraw: nothing to erase, nothing written', () => {
    const io = streams(true);
    const line = new ProgressLine(io);
    line.start(() => 'resolving…');
    line.clear();
    assert.equal(io.err, '');
  });

  test('its timer does not hold the process open', () => {
    const line = new ProgressLine(streams(true));
    line.start(() => 'x');
    const { timer } = line as unknown as { timer: NodeJS.Timeout };
    assert.equal(timer.hasRef(), false);
    line.clear();
  });
});
