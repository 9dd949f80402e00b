/**
 * The Go interop server of test/interop/etcd-go: a grpc-go Greeter that registers itself with
 * etcd's own `endpoints.Manager` and prints one JSON line (`{"registered": key, "addr": …}`) once
 * it has.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface GoEtcdServer {
  readonly child: ChildProcess;
  readonly registered: { readonly registered: string; readonly addr: string };
}

/** Starts the Go server (`binary` from `buildEtcdGoInterop().server`) and waits for its line. */
export async function startGoEtcdServer(binary: string, args: string[]): Promise<GoEtcdServer> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const registered = await new Promise<{ registered: string; addr: string }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`Go server not registered within 20 s; ${stderr}`));
    }, 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { registered: string; addr: string });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Go server exited ${String(code)}: ${stderr}`));
    });
  });
  return { child, registered };
}
