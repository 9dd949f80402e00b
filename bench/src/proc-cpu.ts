/**
 * CPU time of other processes (proxies, backends) from /proc, to show where the cores went during
 * a run: on a 2-core machine the client, the proxy and the backends compete for the same CPUs.
 * Linux only; elsewhere every reading is NaN.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clockTicks: number | undefined;

export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Fields of /proc/<pid>/stat after the command name, which may itself contain spaces. */
export function parseProcStat(text: string): { ppid: number; utime: number; stime: number } {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state) of proc(5): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(fields[1]), utime: Number(fields[11]), stime: Number(fields[12]) };
}

function readStat(pid: number): ReturnType<typeof parseProcStat> | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** PIDs whose parent is `pid`. */
export function childPids(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat?.ppid === pid) children.push(Number(entry));
  }
  return children;
}

/** CPU (user + system) used so far by `pids` and their direct children, ms; NaN if unreadable. */
export function cpuMsOf(pids: readonly number[]): number {
  let ticks = 0;
  let readable = false;
  for (const pid of pids) {
    for (const p of [pid, ...childPids(pid)]) {
      const stat = readStat(p);
      if (!stat) continue;
      readable = true;
      ticks += stat.utime + stat.stime;
    }
  }
  return readable ? (ticks * 1000) / ticksPerSecond() : NaN;
}

/** CPU time the whole machine spent busy so far (all cores, /proc/stat), ms; NaN if unreadable. */
export function machineBusyMs(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    return (parseMachineBusyTicks(line) * 1000) / ticksPerSecond();
  } catch {
    return NaN;
  }
}

/** Busy ticks from the aggregate `cpu` line of /proc/stat: everything but idle and iowait. */
export function parseMachineBusyTicks(line: string): number {
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== 'cpu') throw new Error('not the aggregate cpu line of /proc/stat');
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = fields.slice(1, 9).map(Number);
  return [user, nice, system, irq, softirq, steal].reduce<number>((a, b) => a + (b ?? 0), 0);
}
