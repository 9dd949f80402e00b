/**
 * A real 3-member etcd cluster on 127.0.0.1 at free ports (Debian's etcd 3.4, or 3.6 with
 * GRPC_LB_ETCD_VERSION=3.6), with fast elections (heartbeat 10 ms, election 100 ms) and progress
 * notifications every 500 ms, for tests that kill or freeze members.
 *
 *   const cluster = await startEtcdCluster();
 *   const leader = await cluster.leader();
 *   await leader.process.kill();
 *   await cluster.etcdctl(cluster.members[1]!, 'put', 'services/a/1', '127.0.0.2:5000');
 *   await cluster.dispose();
 */
import { join } from 'node:path';
import { defaultEtcdVersion, ensureEtcd } from './etcd';
import {
  freePorts,
  httpRequest,
  makeServerDir,
  removeServerDir,
  run,
  ServerProcess,
} from './server-process';
import { ensureTestbin } from './testbin';

export interface EtcdMember {
  readonly name: string;
  /** `127.0.0.1:<client port>`. */
  readonly endpoint: string;
  readonly process: ServerProcess;
}

export class EtcdCluster {
  constructor(
    readonly dir: string,
    readonly members: readonly EtcdMember[],
    private readonly etcdctlPath: string,
  ) {}

  /** etcdctl (API v3) against `member`; resolves with stdout. */
  etcdctl(member: EtcdMember, ...args: string[]): Promise<string> {
    return run(
      this.etcdctlPath,
      [
        `--endpoints=http://${member.endpoint}`,
        '--dial-timeout=5s',
        '--command-timeout=10s',
        ...args,
      ],
      { env: { ...process.env, ETCDCTL_API: '3' } },
    );
  }

  async healthy(member: EtcdMember): Promise<boolean> {
    const result = await httpRequest(`http://${member.endpoint}/health`, { timeoutMs: 1_000 });
    return /"health":\s*"true"/.test(result.body);
  }

  /** The member that leads the cluster now (asked of the running members). */
  async leader(): Promise<EtcdMember> {
    for (const member of this.members) {
      if (!member.process.running) continue;
      try {
        const status = JSON.parse(
          await this.etcdctl(member, 'endpoint', 'status', '--write-out=json'),
        ) as { Status: { header: { member_id: number | string }; leader: number | string } }[];
        const own = status[0]?.Status;
        if (own && String(own.header.member_id) === String(own.leader)) return member;
      } catch {
        // not answering: ask the next one
      }
    }
    throw new Error('no member of the etcd cluster says it leads');
  }

  async dispose(failed = false): Promise<void> {
    for (const member of this.members) {
      member.process.thaw();
      await member.process.kill();
    }
    removeServerDir(this.dir, 'etcd-cluster', failed);
  }
}

export async function startEtcdCluster(): Promise<EtcdCluster> {
  const version = defaultEtcdVersion();
  const tools =
    version === '3.4'
      ? ensureEtcd()
      : await ensureTestbin('etcd').then((b) => ({
          etcd: b.binaries['etcd']!,
          etcdctl: b.binaries['etcdctl']!,
        }));
  const dir = makeServerDir('etcd-cluster');
  const ports = await freePorts(6);
  const names = ['m0', 'm1', 'm2'];
  const peer = (i: number): string => `http://127.0.0.1:${ports[3 + i]!}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const members = names.map((name, i): EtcdMember => {
    const client = `http://127.0.0.1:${ports[i]!}`;
    const child = new ServerProcess({
      name: `etcd ${version} ${name}`,
      command: tools.etcd,
      args: [
        ...['--name', name, '--data-dir', join(dir, name)],
        ...['--listen-client-urls', client, '--advertise-client-urls', client],
        ...['--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i)],
        ...['--initial-cluster', initial, '--initial-cluster-state', 'new'],
        ...['--heartbeat-interval', '10', '--election-timeout', '100'],
        '--experimental-watch-progress-notify-interval=500ms',
        ...['--log-level', 'warn', '--logger', 'zap'],
      ],
      cwd: dir,
      logFile: join(dir, `${name}.log`),
    });
    return { name, endpoint: `127.0.0.1:${ports[i]!}`, process: child };
  });
  const cluster = new EtcdCluster(dir, members, tools.etcdctl);
  try {
    for (const member of members) member.process.start();
    for (const member of members) {
      await member.process.waitReady(() => cluster.healthy(member), 20_000, 50);
    }
  } catch (error) {
    await cluster.dispose(true);
    throw error;
  }
  return cluster;
}
