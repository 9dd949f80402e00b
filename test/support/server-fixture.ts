/**
 * One real server shared by a test file: started in `before`, disposed in `after` (its dir and log
 * kept when a test failed), skipped without its binary — or failing, with CI=true.
 *
 *   const consul = serverFixture('consul', () => startConsul(), requireConsul);
 *   test('…', async (t) => {
 *     const c = await consul.get(t);
 *     if (!c) return;                       // skipped: no binary
 *     await consul.logged(async () => { … });  // on failure: the server's log, dir kept
 *   });
 */
import { after, before, type TestContext } from 'node:test';

export interface FixtureServer {
  logs(maxBytes?: number): string;
  dispose(failed?: boolean): Promise<void>;
}

export interface ServerFixture<S extends FixtureServer> {
  /** The server; `undefined` after `t.skip()` when its binary cannot be had (not under CI). */
  get(t: TestContext): Promise<S | undefined>;
  /** Runs `body`; if it throws, prints the server's log and keeps its dir. */
  logged<T>(body: () => Promise<T>): Promise<T>;
}

export function serverFixture<S extends FixtureServer>(
  name: string,
  start: () => Promise<S>,
  available: (t: TestContext) => Promise<boolean>,
): ServerFixture<S> {
  let server: S | undefined;
  let setupError: Error | undefined;
  let failed = false;
  before(async () => {
    try {
      server = await start();
    } catch (error) {
      setupError = error instanceof Error ? error : new Error(String(error));
    }
  });
  after(async () => {
    await server?.dispose(failed);
  });
  return {
    async get(t) {
      if (!(await available(t))) return undefined;
      if (setupError !== undefined) throw setupError;
      return server;
    },
    async logged(body) {
      try {
        return await body();
      } catch (error) {
        failed = true;
        if (server) process.stderr.write(`--- ${name} log ---\n${server.logs(8_000)}\n`);
        throw error;
      }
    },
  };
}
