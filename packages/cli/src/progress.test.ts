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

describe('ProgressLine', () => {
  test('on a terminal: redrawn in place with the elapsed time, erased by clear()', (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
    const io = streams(true);
    const line = new ProgressLine(io);
    line.start((elapsed) => `resolving etcd:///hello… ${elapsed} s`);
    assert.equal(io.err, '', 'nothing before the first redraw');
    for (let i = 0; i < 3; i++) t.mock.timers.tick(100);
    line.clear();
    assert.deepEqual(io.err.split(ERASE), [
      '',
      'resolving etcd:///hello… 0.1 s',
      'resolving etcd:///hello… 0.2 s',
      'resolving etcd:///hello… 0.3 s',
      '',
    ]);
    assert.equal(io.out, '', 'never on stdout');
    const before = io.err;
    line.clear();
    t.mock.timers.tick(1_000);
    assert.equal(io.err, before, 'nothing more after clear()');
  });

  test('not a terminal: nothing is ever written', (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
    const io = streams(false);
    const line = new ProgressLine(io);
    line.start(() => 'resolving…');
    t.mock.timers.tick(1_000);
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
