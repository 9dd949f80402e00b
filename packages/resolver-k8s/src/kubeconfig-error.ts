import { ConfigError } from '@grpc-lb/core';

/**
 * A kubeconfig that cannot be loaded, described without a word of its content. The YAML parser's
 * message quotes the lines around the fault, and a kubeconfig holds bearer tokens, client keys and
 * passwords; the error would reach every failed call's details and the log. So the file is named
 * with the line and column only, plus the parser's short reason or client-node's field check
 * (`clusters[0].name is missing`), which name no value.
 */
export function kubeconfigError(error: unknown, file: string): ConfigError {
  return new ConfigError('kubeconfig', `${file} ${describeLoadFailure(error)}`, 'k8s resolver');
}

const SAFE_REASON = /^[a-z][a-z ,()-]{0,80}$/i;
const MISSING_FIELD = /^(clusters|users|contexts)\[\d+\](\.[A-Za-z-]+)* is missing$/;

function describeLoadFailure(error: unknown): string {
  if (typeof error !== 'object' || error === null) return 'cannot be loaded';
  const { name, reason, mark, code, message } = error as {
    name?: unknown;
    reason?: unknown;
    mark?: { line?: unknown; column?: unknown };
    code?: unknown;
    message?: unknown;
  };
  if (typeof name === 'string' && name.startsWith('YAMLException')) {
    const why = typeof reason === 'string' && SAFE_REASON.test(reason) ? `: ${reason}` : '';
    const line = typeof mark?.line === 'number' ? mark.line + 1 : undefined;
    const column = typeof mark?.column === 'number' ? mark.column + 1 : undefined;
    const where =
      line === undefined
        ? ''
        : ` at line ${line}${column === undefined ? '' : `, column ${column}`}`;
    return `is not valid YAML${where}${why}`;
  }
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return `cannot be read (${code})`;
  if (typeof message === 'string') {
    if (MISSING_FIELD.test(message)) return `is not a usable kubeconfig: ${message}`;
  }
  return 'is not a usable kubeconfig (its content is not shown, since it may hold credentials)';
}
