import { TargetError } from './errors';
import { isValidHost, isValidPort } from './endpoint';
import type { TargetUri } from './resolver-contract';

/** Same split as grpc-js applies to a channel target: `scheme:[//authority/]path`. */
const URI = /^([A-Za-z][A-Za-z0-9+.-]*):(?:\/\/([^/]*)\/)?(.+)$/;

export function parseTargetUri(target: string): TargetUri {
  if (typeof target !== 'string' || target.length === 0) {
    throw new TargetError(String(target), 'target must be a non-empty string');
  }
  const match = URI.exec(target);
  if (!match) {
    throw new TargetError(
      target,
      'expected scheme:[//authority/]path, e.g. static:///127.0.0.1:50051',
    );
  }
  return { scheme: match[1]!, authority: match[2], path: match[3]! };
}

export function targetUriToString(uri: TargetUri): string {
  return uri.authority === undefined
    ? `${uri.scheme}:${uri.path}`
    : `${uri.scheme}://${uri.authority}/${uri.path}`;
}

export interface HostPort {
  readonly host: string;
  readonly port: number | undefined;
}

/**
 * Splits `host[:port]`, `[v6]:port` or a bare IPv6 literal. Throws
 * `TargetError` (naming `what` inside `target`) when either part is invalid.
 */
export function parseHostPort(text: string, target: string, what: string): HostPort {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new TargetError(target, `${what} "${text}" has an unclosed "["`);
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':'))
        throw new TargetError(target, `${what} "${text}": expected ":port" after "]"`);
      portText = rest.slice(1);
    }
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 1) {
      const at = text.indexOf(':');
      host = text.slice(0, at);
      portText = text.slice(at + 1);
    } else {
      host = text; // no port, or a bare IPv6 literal
    }
  }
  if (!isValidHost(host)) {
    throw new TargetError(target, `${what} "${text}" has an invalid host "${host}"`);
  }
  let port: number | undefined;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!isValidPort(port)) {
      throw new TargetError(
        target,
        `${what} "${text}" has an invalid port "${portText}" (expected 1-65535)`,
      );
    }
  }
  return { host, port };
}
