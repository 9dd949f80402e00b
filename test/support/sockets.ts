/** What this test process has open, read from /proc (Linux). */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** This process's established TCP connections to 127.0.0.1:`port` (from /proc: no guessing). */
export function openSocketsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const link = readlinkSync(`/proc/self/fd/${fd}`);
      const match = /^socket:\[(\d+)\]$/.exec(link);
      if (match) inodes.add(match[1]!);
    } catch {
      // the fd closed while we looked
    }
  }
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let count = 0;
  for (const line of readFileSync('/proc/self/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[2] === remote && fields[3] === '01' && inodes.has(fields[9] ?? '')) count++;
  }
  return count;
}
