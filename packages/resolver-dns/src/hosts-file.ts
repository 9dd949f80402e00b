import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';

export const DEFAULT_HOSTS_PATH = '/etc/hosts';

/**
 * hosts(5): `address name [aliases...]`. Names are matched case-insensitively and exactly (no
 * search domains), as getaddrinfo's `files` source does. Returns lower-cased name → addresses in
 * file order.
 */
export function parseHosts(text: string): Map<string, string[]> {
  const hosts = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const [address, ...names] = raw.replace(/#.*$/, '').trim().split(/\s+/);
    if (address === undefined || names.length === 0 || isIP(address) === 0) continue;
    for (const name of names) {
      const key = name.toLowerCase().replace(/\.$/, '');
      const list = hosts.get(key) ?? [];
      if (!list.includes(address)) list.push(address);
      hosts.set(key, list);
    }
  }
  return hosts;
}

/** The hosts file, or an empty map when it cannot be read (a missing /etc/hosts is not an error). */
export async function readHosts(path: string): Promise<Map<string, string[]>> {
  try {
    return parseHosts(await readFile(path, 'utf8'));
  } catch {
    return new Map();
  }
}
