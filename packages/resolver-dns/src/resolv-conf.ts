import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { DNS_PORT, type DnsServerAddress } from './dns-target';

/**
 * The parts of resolv.conf(5) a resolver needs, read as glibc reads them: up to 3 `nameserver`
 * lines, the last `search` or `domain` line, and `options ndots: timeout: attempts: rotate`.
 * One extension, for local DNS servers on other ports (glibc ignores such lines): a nameserver may
 * carry a port, `127.0.0.1:5353` or `[::1]:5353`.
 */
export interface ResolvConf {
  readonly nameservers: readonly DnsServerAddress[];
  readonly search: readonly string[];
  readonly ndots: number;
  /** `options timeout:N`, in milliseconds. */
  readonly timeoutMs: number | undefined;
  /** `options attempts:N`. */
  readonly attempts: number | undefined;
  /** `options rotate`: start each query at the next nameserver. */
  readonly rotate: boolean;
}

export interface ParsedResolvConf {
  readonly conf: ResolvConf;
  /** Lines that were ignored and why, for an operator. */
  readonly warnings: readonly string[];
}

export const DEFAULT_RESOLV_CONF_PATH = '/etc/resolv.conf';
const MAX_NAMESERVERS = 3;
const MAX_NDOTS = 15;
const MAX_TIMEOUT_S = 30;
const MAX_ATTEMPTS = 5;
const MAX_SEARCH_DOMAINS = 32;
const LOCAL_NAMESERVER: DnsServerAddress = { host: '127.0.0.1', port: DNS_PORT };

function parseNameserver(text: string): DnsServerAddress | undefined {
  if (isIP(text) !== 0) return { host: text, port: DNS_PORT };
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text);
  const plain = /^([^:]+):(\d{1,5})$/.exec(text);
  const match = bracketed ?? plain;
  if (!match) return undefined;
  const host = match[1]!;
  const port = Number(match[2]);
  if (isIP(host) === 0 || port < 1 || port > 65535) return undefined;
  return { host, port };
}

function domainName(text: string): string | undefined {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  return /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$/.test(name) && !name.includes('..')
    ? name
    : undefined;
}

function boundedInt(text: string, max: number): number | undefined {
  return /^\d{1,6}$/.test(text) ? Math.min(Number(text), max) : undefined;
}

export function parseResolvConf(text: string): ParsedResolvConf {
  const warnings: string[] = [];
  const nameservers: DnsServerAddress[] = [];
  let search: string[] = [];
  let ndots = 1;
  let timeoutMs: number | undefined;
  let attempts: number | undefined;
  let rotate = false;
  let extraNameservers = 0;

  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (line === '') return;
    const [keyword = '', ...args] = line.split(/\s+/);
    const where = `line ${index + 1}`;
    switch (keyword) {
      case 'nameserver': {
        const server = args[0] === undefined ? undefined : parseNameserver(args[0]);
        if (!server) {
          warnings.push(`${where}: nameserver "${args[0] ?? ''}" is not an IP address; ignored`);
        } else if (nameservers.length >= MAX_NAMESERVERS) {
          extraNameservers++;
        } else {
          nameservers.push(server);
        }
        return;
      }
      case 'search':
      case 'domain': {
        const domains: string[] = [];
        for (const arg of keyword === 'domain' ? args.slice(0, 1) : args) {
          if (arg === '.') continue;
          const name = domainName(arg);
          if (name === undefined)
            warnings.push(`${where}: search domain "${arg}" is invalid; ignored`);
          else if (!domains.includes(name)) domains.push(name);
        }
        search = domains.slice(0, MAX_SEARCH_DOMAINS);
        return;
      }
      case 'options':
        for (const option of args) {
          const [name, value = ''] = option.split(':', 2);
          if (name === 'ndots') ndots = boundedInt(value, MAX_NDOTS) ?? ndots;
          else if (name === 'timeout') {
            const seconds = boundedInt(value, MAX_TIMEOUT_S);
            if (seconds !== undefined) timeoutMs = Math.max(1, seconds) * 1000;
          } else if (name === 'attempts') {
            const n = boundedInt(value, MAX_ATTEMPTS);
            if (n !== undefined) attempts = Math.max(1, n);
          } else if (name === 'rotate') rotate = true;
        }
        return;
      default:
        // sortlist, lookup and other keywords do not affect what we query.
        return;
    }
  });
  if (extraNameservers > 0) {
    warnings.push(
      `only the first ${MAX_NAMESERVERS} nameservers are used (as in glibc); ${extraNameservers} more ignored`,
    );
  }
  if (nameservers.length === 0) {
    warnings.push('no usable nameserver line; asking 127.0.0.1:53');
    nameservers.push(LOCAL_NAMESERVER);
  }
  return { conf: { nameservers, search, ndots, timeoutMs, attempts, rotate }, warnings };
}

/** Reads and parses resolv.conf; a missing or unreadable file gives glibc's defaults and a warning. */
export async function readResolvConf(path: string): Promise<ParsedResolvConf> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    const parsed = parseResolvConf('');
    return {
      conf: parsed.conf,
      warnings: [`cannot read ${path} (${code}); asking 127.0.0.1:53 with no search domains`],
    };
  }
  const parsed = parseResolvConf(text);
  return { conf: parsed.conf, warnings: parsed.warnings.map((w) => `${path}: ${w}`) };
}

/**
 * The names to try for `name`, in order, as res_search(3) does: a name with at least `ndots`
 * dots is tried as-is first, then with each search domain; a shorter one the other way round.
 * An absolute name (written with a trailing dot) is only tried as-is.
 */
export function searchCandidates(
  name: string,
  absolute: boolean,
  conf: Pick<ResolvConf, 'search' | 'ndots'>,
): string[] {
  if (absolute || conf.search.length === 0) return [name];
  const dots = name.split('.').length - 1;
  const expanded = conf.search.map((domain) => `${name}.${domain}`).filter((n) => n.length <= 253);
  const ordered = dots >= conf.ndots ? [name, ...expanded] : [...expanded, name];
  return [...new Set(ordered.map((n) => n.toLowerCase()))];
}
