import { Command, InvalidArgumentError } from 'commander';

import {
  Backoff,
  ConfigError,
  normalizeEndpoint,
  parseTargetUri,
  redactSecrets,
  SOURCE_LABEL,
  TargetError,
  type EndpointResolver,
  type NormalizedEndpoint,
  type Resolution,
} from '@grpc-lb/core';

import type { CliCommand, CommandContext } from '../command';
import { InputError, UsageError } from '../errors';
import { oneLine, writeJson, writeTable, writeWarnings } from '../output';
import { createSchemeLookup, type RegistryOptions } from '../resolvers';

const ENDPOINTS = 'grpc-lb endpoints';
const DEFAULT_TIMEOUT_S = 10;

/** The options of every command that resolves a target: the timeout and where the registries are. */
export interface ResolveOptions {
  readonly timeout: number;
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly consulAddr?: string;
  readonly consulTokenFile?: string;
  readonly etcdEndpoints?: string;
}

interface EndpointsOptions extends ResolveOptions {
  readonly json?: boolean;
  readonly watch?: boolean;
}

/** One resolution as shown: endpoints validated as a channel validates them, and what came with them. */
export interface Shown {
  readonly endpoints: readonly NormalizedEndpoint[];
  readonly note: string | undefined;
  readonly serviceConfigSource: string | undefined;
  readonly serviceConfig: string | undefined;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > 3600) {
    throw new InvalidArgumentError('expected a number of seconds greater than 0, at most 3600');
  }
  return n;
}

function clock(date = new Date()): string {
  return date.toISOString().slice(11, 23);
}

/** Endpoints validated as core's adapter validates them; a bad one is skipped with a warning. */
function show(resolution: Resolution, warn: (message: string) => void): Shown {
  const endpoints: NormalizedEndpoint[] = [];
  const seen = new Set<string>();
  for (const raw of resolution.endpoints) {
    try {
      const endpoint = normalizeEndpoint(raw);
      if (seen.has(endpoint.key)) continue;
      seen.add(endpoint.key);
      endpoints.push(endpoint);
    } catch (error) {
      warn(`skipped an endpoint: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  endpoints.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const config = resolution.serviceConfig;
  return {
    endpoints,
    note: resolution.note,
    serviceConfigSource: resolution.serviceConfigSource,
    serviceConfig:
      config === undefined
        ? undefined
        : typeof config === 'string'
          ? config
          : JSON.stringify(config),
  };
}

export function otherLabels(endpoint: NormalizedEndpoint): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [name, value] of Object.entries(endpoint.labels)) {
    if (name !== SOURCE_LABEL) labels[name] = value;
  }
  return labels;
}

function labelText(endpoint: NormalizedEndpoint): string {
  return Object.entries(otherLabels(endpoint))
    .map(([name, value]) => `${name}=${value}`)
    .join(',');
}

function endpointJson(endpoint: NormalizedEndpoint): Record<string, unknown> {
  return {
    address: endpoint.key,
    weight: endpoint.weight,
    zone: endpoint.zone ?? null,
    source: endpoint.labels[SOURCE_LABEL] ?? null,
    labels: otherLabels(endpoint),
  };
}

function resolutionJson(target: string, shown: Shown): Record<string, unknown> {
  return {
    target: redactSecrets(target),
    endpoints: shown.endpoints.map(endpointJson),
    note: shown.note === undefined ? null : oneLine(shown.note),
    serviceConfigSource:
      shown.serviceConfigSource === undefined ? null : oneLine(shown.serviceConfigSource),
  };
}

function writeResolution(context: CommandContext, shown: Shown): void {
  const { io } = context;
  if (shown.endpoints.length === 0) {
    io.writeOut('no endpoints\n');
  } else {
    writeTable(
      io,
      [
        { heading: 'ADDRESS' },
        { heading: 'WEIGHT', align: 'right' },
        { heading: 'ZONE' },
        { heading: 'SOURCE' },
        { heading: 'LABELS' },
      ],
      shown.endpoints.map((e) => [
        e.key,
        String(e.weight),
        e.zone ?? '-',
        e.labels[SOURCE_LABEL] ?? '-',
        labelText(e) || '-',
      ]),
    );
  }
  if (shown.note !== undefined) io.writeOut(`note: ${oneLine(shown.note)}\n`);
  io.writeOut(
    `service config: ${shown.serviceConfigSource === undefined ? "none from the registry (the channel's own applies)" : oneLine(shown.serviceConfigSource)}\n`,
  );
}

function describeEndpoint(endpoint: NormalizedEndpoint): string {
  const parts = [`weight=${endpoint.weight}`];
  if (endpoint.zone !== undefined) parts.push(`zone=${endpoint.zone}`);
  const source = endpoint.labels[SOURCE_LABEL];
  if (source !== undefined) parts.push(`source=${source}`);
  const labels = labelText(endpoint);
  if (labels !== '') parts.push(`labels=${labels}`);
  return `${endpoint.key} ${parts.join(' ')}`;
}

function sameEndpoint(a: NormalizedEndpoint, b: NormalizedEndpoint): boolean {
  return describeEndpoint(a) === describeEndpoint(b);
}

/** What changed from `before` to `after`, one line (or JSON object) per change, with the time. */
function writeChanges(
  context: CommandContext,
  json: boolean,
  before: Shown,
  after: Shown,
  at: Date,
): void {
  const { io } = context;
  const time = json ? at.toISOString() : clock(at);
  const old = new Map(before.endpoints.map((e) => [e.key, e]));
  const now = new Map(after.endpoints.map((e) => [e.key, e]));
  const emit = (event: string, text: string, extra: Record<string, unknown>) => {
    if (json) writeJson(io, { time, event, ...extra }, { compact: true });
    else io.writeOut(`${time} ${event} ${text}\n`);
  };
  for (const endpoint of before.endpoints) {
    if (!now.has(endpoint.key)) {
      emit('removed', endpoint.key, { endpoint: endpointJson(endpoint) });
    }
  }
  for (const endpoint of after.endpoints) {
    const previous = old.get(endpoint.key);
    if (previous === undefined) {
      emit('added', describeEndpoint(endpoint), { endpoint: endpointJson(endpoint) });
    } else if (!sameEndpoint(previous, endpoint)) {
      emit('changed', describeEndpoint(endpoint), {
        endpoint: endpointJson(endpoint),
        was: endpointJson(previous),
      });
    }
  }
  if (before.serviceConfigSource !== after.serviceConfigSource) {
    const source = after.serviceConfigSource ?? 'none';
    emit('service-config', oneLine(source), {
      serviceConfigSource: after.serviceConfigSource === undefined ? null : oneLine(source),
    });
  }
}

/** The resolver's progress, as events the command waits on. */
type Event =
  | { readonly kind: 'update'; readonly resolution: Resolution; readonly at: Date }
  | { readonly kind: 'error'; readonly error: Error };

/**
 * Drives the resolver of `target` (as a channel would, without one) until its first resolution,
 * or throws an InputError when none comes within `options.timeout`; `command` names the command
 * a malformed target is a usage error of. `first` receives the resolution; with `options.watch`
 * the resolver then keeps running and every change is printed, until SIGINT or SIGTERM.
 */
export async function resolveTarget(
  context: CommandContext,
  target: string,
  options: EndpointsOptions,
  command: string,
  first: (shown: Shown) => void,
): Promise<void> {
  const { io } = context;
  const registries: RegistryOptions = {
    ...(options.kubeconfig === undefined ? {} : { kubeconfig: options.kubeconfig }),
    ...(options.context === undefined ? {} : { kubeContext: options.context }),
    ...(options.consulAddr === undefined ? {} : { consulAddr: options.consulAddr }),
    ...(options.consulTokenFile === undefined ? {} : { consulTokenFile: options.consulTokenFile }),
    ...(options.etcdEndpoints === undefined ? {} : { etcdEndpoints: options.etcdEndpoints }),
  };
  const lookup = createSchemeLookup(registries);
  let resolver: EndpointResolver;
  try {
    const uri = parseTargetUri(target);
    const factory = lookup.get(uri.scheme);
    if (factory === undefined) {
      throw new UsageError(
        `unknown scheme "${uri.scheme}:" in ${redactSecrets(target)} (known: ${lookup
          .schemes()
          .map((s) => `${s}:`)
          .join(', ')})`,
        command,
      );
    }
    const parsed = factory.parseTarget(uri, target);
    resolver = factory.create(parsed, { target, channelOptions: {} });
  } catch (error) {
    if (error instanceof TargetError) throw new UsageError(error.message, command);
    if (error instanceof ConfigError) throw new InputError(error.message, { cause: error });
    throw error;
  }

  const warn = (message: string) => writeWarnings(io, [message]);
  let wake: (() => void) | undefined;
  const events: Event[] = [];
  const push = (event: Event) => {
    events.push(event);
    const w = wake;
    wake = undefined;
    w?.();
  };
  const next = () =>
    new Promise<void>((resolve) => {
      if (events.length > 0) resolve();
      else wake = resolve;
    });

  const backoff = new Backoff({ initialMs: 250, maxMs: 5_000 });
  let retry: NodeJS.Timeout | undefined;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (retry !== undefined) clearTimeout(retry);
    resolver.stop();
  };
  const scheduleRetry = () => {
    if (retry !== undefined || stopped) return;
    retry = setTimeout(() => {
      retry = undefined;
      if (!stopped) resolver.refresh();
    }, backoff.next());
    retry.unref();
  };

  // The first resolution, or the last error when none comes within --timeout.
  const started = Date.now();
  let progress: NodeJS.Timeout | undefined;
  let drawn = false;
  const clearProgress = () => {
    if (progress === undefined) return;
    clearInterval(progress);
    progress = undefined;
    if (drawn) io.writeErr('\r\u001b[K');
  };
  if (io.stderrIsTTY === true) {
    progress = setInterval(() => {
      const elapsed = ((Date.now() - started) / 1000).toFixed(1);
      io.writeErr(`\r\u001b[Kresolving ${redactSecrets(target)}… ${elapsed} s`);
      drawn = true;
    }, 100);
    progress.unref();
  }
  let timedOut = false;
  // Held (not unref'd): it is what keeps the command waiting for a registry that does not answer.
  const deadline = setTimeout(() => {
    timedOut = true;
    const w = wake;
    wake = undefined;
    w?.();
  }, options.timeout * 1000);

  let lastError: Error | undefined;
  let initial: Resolution | undefined;
  try {
    resolver.start({
      update: (resolution) => push({ kind: 'update', resolution, at: new Date() }),
      error: (error) => push({ kind: 'error', error }),
      warn: (message) => warn(message),
    });
    while (initial === undefined && !timedOut) {
      await next();
      for (const event of events.splice(0)) {
        if (event.kind === 'update') {
          initial = event.resolution;
          backoff.reset();
        } else if (initial === undefined) {
          // A setting that is wrong (a kubeconfig that does not exist) will not mend by waiting.
          if (event.error instanceof ConfigError) {
            throw new InputError(event.error.message, { cause: event.error });
          }
          lastError = event.error;
          scheduleRetry();
        }
      }
    }
  } finally {
    clearTimeout(deadline);
    clearProgress();
    if (initial === undefined || options.watch !== true) stop();
  }
  if (initial === undefined) {
    // grpc-js ends some messages (an etcd client's) with an empty "Resolution note:".
    const why =
      lastError === undefined
        ? 'no answer'
        : (lastError.message || lastError.name).replace(/\.?\s*Resolution note:\s*$/, '');
    throw new InputError(
      `cannot resolve ${redactSecrets(target)} within ${options.timeout} s: ${why}`,
    );
  }

  let current = show(initial, warn);
  first(current);
  if (options.watch !== true) return;

  // --watch: every later resolution, as changes, until SIGINT or SIGTERM.
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    const w = wake;
    wake = undefined;
    w?.();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  // Held: a watch runs until it is interrupted, even while the registry is silent.
  const alive = setInterval(() => {}, 60_000);
  let failing = false;
  try {
    for (;;) {
      await next();
      if (interrupted) break;
      for (const event of events.splice(0)) {
        if (event.kind === 'update') {
          backoff.reset();
          if (failing) {
            failing = false;
            warn(`${clock(event.at)} the registry answers again`);
          }
          const shown = show(event.resolution, warn);
          writeChanges(context, options.json === true, current, shown, event.at);
          current = shown;
        } else {
          if (!failing) {
            failing = true;
            warn(`${clock()} ${event.error.message} (keeping the last endpoints; retrying)`);
          }
          scheduleRetry();
        }
      }
    }
  } finally {
    clearInterval(alive);
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
    stop();
  }
}

/** Adds the options of a command that resolves a target: --timeout and where the registries are. */
export function addResolveOptions(command: Command): Command {
  return command
    .option(
      '--timeout <seconds>',
      'give up when the first resolution has not come in this time',
      seconds,
      DEFAULT_TIMEOUT_S,
    )
    .option(
      '--kubeconfig <file>',
      'kubeconfig for k8s: targets (default: $KUBECONFIG, in-cluster, ~/.kube/config)',
    )
    .option('--context <name>', 'kubeconfig context (default: its current context)')
    .option(
      '--consul-addr <address>',
      'Consul agent HTTP API (default: $CONSUL_HTTP_ADDR, else 127.0.0.1:8500)',
    )
    .option(
      '--consul-token-file <file>',
      'file holding the Consul ACL token (default: $CONSUL_HTTP_TOKEN_FILE, else $CONSUL_HTTP_TOKEN)',
    )
    .option(
      '--etcd-endpoints <list>',
      'etcd members, comma-separated (default: $ETCD_ENDPOINTS, else 127.0.0.1:2379)',
    );
}

/** `grpc-lb endpoints <target>`: what a target resolves to, as a channel would see it. */
export const endpointsCommand: CliCommand = {
  name: 'endpoints',
  create: (context) =>
    addResolveOptions(
      new Command('endpoints')
        .description(
          'Resolve a target with the resolvers an application uses and print its endpoints (address, weight, zone, source, labels), without connecting to them',
        )
        .argument(
          '<target>',
          'a grpc-lb target: static:, composite:, dns+lb:, k8s:, etcd:, consul:…',
        )
        .option('--json', 'print JSON instead of a table (with --watch, one JSON object per line)')
        .option(
          '-w, --watch',
          'keep watching and print additions, removals and changes, with times',
        ),
    )
      .addHelpText(
        'after',
        `
Nothing connects to the endpoints: the target's resolver is driven directly, as a channel's would
be. The table (or JSON) goes to stdout with the resolution's note and the service config document
the registry holds for it, if any; warnings go to stderr. With --watch, each change is printed as
it happens ("added", "removed", "changed", "service-config"), with its time, until Ctrl-C.

Exit status: 0 resolved (or a watch interrupted), 1 the registry could not be read within
--timeout or a setting is wrong, 2 a usage error (a malformed target).

Examples:
  grpc-lb endpoints 'static:///127.0.0.2:50051;version=v1,127.0.0.3:50051;version=v2'
  grpc-lb endpoints etcd:///services/hello --etcd-endpoints 10.0.0.5:2379 --json
  CONSUL_HTTP_ADDR=consul.internal:8500 grpc-lb endpoints consul:///hello --watch
  grpc-lb endpoints 'composite:///hello?vms=consul:///hello&pods=k8s:///hello.prod:grpc'
`,
      )
      .action(async (target: string, _options: unknown, command: Command) => {
        const options = command.opts<EndpointsOptions>();
        await resolveTarget(context, target, options, ENDPOINTS, (shown) => {
          if (options.json === true) {
            if (options.watch === true) {
              writeJson(
                context.io,
                {
                  time: new Date().toISOString(),
                  event: 'resolved',
                  ...resolutionJson(target, shown),
                },
                { compact: true },
              );
            } else {
              writeJson(context.io, resolutionJson(target, shown));
            }
          } else {
            writeResolution(context, shown);
          }
        });
      }),
};
