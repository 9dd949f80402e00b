import type { CliIo } from './io';

const ERASE_LINE = '\r\u001b[K';
const REDRAW_MS = 100;

/**
 * A line on stderr that says what the command waits for (`resolving etcd:///hello… 2.1 s`),
 * redrawn in place while it waits and erased before anything else is printed. Drawn only when
 * stderr is a terminal: a pipe or a log file never gets it, so output stays clean for scripts.
 */
export class ProgressLine {
  private timer: NodeJS.Timeout | undefined;
  private drawn = false;

  constructor(private readonly io: CliIo) {}

  /** Starts drawing `text(elapsed seconds)` every 100 ms (from the first redraw on). */
  start(text: (elapsedS: string) => string): void {
    if (this.io.stderrIsTTY !== true || this.timer !== undefined) return;
    const started = Date.now();
    this.timer = setInterval(() => {
      const elapsed = ((Date.now() - started) / 1000).toFixed(1);
      this.io.writeErr(`${ERASE_LINE}${text(elapsed)}`);
      this.drawn = true;
    }, REDRAW_MS);
    this.timer.unref();
  }

  /** Stops drawing and erases the line, if one was drawn. Safe to call more than once. */
  clear(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.drawn) this.io.writeErr(ERASE_LINE);
    this.drawn = false;
  }
}
