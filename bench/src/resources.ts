/**
 * Everything the bench started (backend sets, proxies, temp dirs), stopped in reverse order at the
 * end, on an error, or on Ctrl-C — each exactly once.
 */
export class Resources {
  private readonly stack: { name: string; stop: () => Promise<void> }[] = [];

  /** Registers `stop`; returns a function that stops this one resource now (once). */
  add(name: string, stop: () => Promise<void>): () => Promise<void> {
    const entry = { name, stop };
    this.stack.push(entry);
    return async () => {
      const index = this.stack.indexOf(entry);
      if (index < 0) return;
      this.stack.splice(index, 1);
      await stop();
    };
  }

  /** Stops everything still registered, newest first; failures are reported, not thrown. */
  async stopAll(report: (line: string) => void): Promise<void> {
    while (this.stack.length > 0) {
      const entry = this.stack.pop()!;
      try {
        await entry.stop();
      } catch (error) {
        report(
          `stopping ${entry.name} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
  }

  get size(): number {
    return this.stack.length;
  }
}
