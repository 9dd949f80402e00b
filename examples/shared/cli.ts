/** What every example shares: flags, a tally printed like `sort | uniq -c | sort -nr`, and exit codes. */

/** `--name N` from the command line, a positive integer, else `fallback`. */
export function intFlag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} needs a positive integer`);
  return value;
}

/** Counts of lines, as the seed articles' `sort | uniq -c | sort -nrk1`. */
export class Tally {
  private readonly counts = new Map<string, number>();

  add(line: string): void {
    this.counts.set(line, (this.counts.get(line) ?? 0) + 1);
  }

  /** How many times `line` was added. */
  count(line: string): number {
    return this.counts.get(line) ?? 0;
  }

  /** The lines added, in first-added order. */
  keys(): string[] {
    return [...this.counts.keys()];
  }

  get total(): number {
    let sum = 0;
    for (const count of this.counts.values()) sum += count;
    return sum;
  }

  print(prefix = ''): void {
    for (const [line, count] of [...this.counts].sort((a, b) => b[1] - a[1])) {
      console.log(`${String(count).padStart(7)} ${prefix}${line}`);
    }
  }
}

/** Runs `calls` calls, `concurrency` at a time; a thrown error is tallied by its message. */
export async function drive(
  calls: number,
  concurrency: number,
  call: (n: number) => Promise<void>,
  errors: Tally,
): Promise<void> {
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < calls) {
      const n = issued++;
      try {
        await call(n);
      } catch (error) {
        errors.add(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Runs an example's main; its result is the exit code, a throw prints and exits 1. */
export function run(main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
