/**
 * VirtualService + DestinationRule → a service config with one
 * `grpc-lb.traffic_split` policy and `methodConfig` entries, for one host.
 */
import { checkServiceConfig, ConfigError, parseTrafficSplitConfig } from '@grpc-lb/core';
import { translateDestinationRules, type TranslatedSubset } from './destination-rule';
import { IstioTranslationError } from './errors';
import { At, describe, isObject, otherFields, type Json } from './fields';
import { hostCovers, parseHostName, showHost, type HostName } from './hosts';
import { methodConfigs } from './method-config';
import { resourceName } from './parse-yaml';
import { translateHttpRoutes, type HttpRoute, type TrafficRoute } from './virtual-service';

export interface IstioTranslationInput {
  /** The service the client calls: `hello2`, `hello2.prod` or `hello2.prod.svc.cluster.local`. */
  readonly host: string;
  /** The namespace of `host` when it is a short name, and of resources that name none. */
  readonly namespace?: string;
  readonly virtualServices: readonly object[];
  readonly destinationRules: readonly object[];
}

export interface IstioTranslation {
  /** A service config for the client's channel, checked with core's `checkServiceConfig`. */
  readonly serviceConfig: Record<string, unknown>;
  /** Every field not carried over, each naming its resource and field path. */
  readonly warnings: string[];
  /** The resources that contributed, `VirtualService prod/hello2`. */
  readonly used: string[];
}

const TRAFFIC_SPLIT = 'grpc-lb.traffic_split';
/** The subset of every endpoint, for destinations that name no subset. */
const EVERY_ENDPOINT = 'all-endpoints';

interface Found {
  readonly at: At;
  readonly spec: Json;
  readonly namespace: string | undefined;
}

function exportNote(at: At, spec: Json, namespace: string | undefined): void {
  if (spec['exportTo'] === undefined) return;
  const list = at
    .key('exportTo')
    .list(spec['exportTo'])
    .map((v, i) => at.key('exportTo').index(i).string(v));
  if (list.length === 0 || list.includes('*')) return;
  const visible = list
    .filter((ns) => ns !== '~')
    .map((ns) => (ns === '.' ? (namespace ?? 'its own namespace') : ns));
  at.key('exportTo').note(
    visible.length === 0
      ? 'exported to no namespace: Istio applies it to no client; it is translated all the same'
      : `Istio applies it only to clients in ${visible.join(', ')}; here it applies to every client given this config`,
  );
}

function readResource(
  raw: object,
  kind: 'VirtualService' | 'DestinationRule',
  clientNamespace: string | undefined,
  warnings: string[],
): Found {
  if (!isObject(raw)) {
    throw new IstioTranslationError('BAD_RESOURCE', `${kind} (unnamed)`, '', 'expected an object');
  }
  const resource: Json = raw;
  const at = new At(resourceName(resource, kind), '', warnings);
  if (resource['kind'] !== undefined && resource['kind'] !== kind) {
    at.fail(`expected kind ${kind}, got ${describe(resource['kind'])}`);
  }
  const metadata = isObject(resource['metadata']) ? resource['metadata'] : {};
  const namespace =
    typeof metadata['namespace'] === 'string' ? metadata['namespace'] : clientNamespace;
  const spec = at.key('spec').object(resource['spec']);
  return { at, spec, namespace };
}

/** A resource's host, or undefined (with a warning) when it is not a host name. */
function parseIn(at: At, value: unknown, namespace: string | undefined): HostName | undefined {
  const text = at.string(value);
  const parsed = parseHostName(text, namespace);
  if (!parsed) at.note(`"${text}" is not a host name: it names no service`);
  return parsed;
}

/** Why the traffic split would refuse `pattern` as a route regex (core compiles it as it will). */
function regexProblem(pattern: string): string | undefined {
  try {
    parseTrafficSplitConfig({
      subsets: [{ name: 'all' }],
      routes: [{ match: { regex: pattern }, split: [{ subset: 'all', weight: 1 }] }],
    });
    return undefined;
  } catch (error) {
    if (error instanceof ConfigError) return error.problem;
    throw error;
  }
}

export function translateIstio(input: IstioTranslationInput): IstioTranslation {
  const warnings: string[] = [];
  const host = parseHostName(input.host, input.namespace);
  if (!host || host.kind === 'wildcard') {
    throw new IstioTranslationError('BAD_HOST', '', 'host', `"${input.host}" is not a host name`);
  }
  if (
    host.kind === 'service' &&
    input.namespace !== undefined &&
    host.namespace !== input.namespace
  ) {
    throw new IstioTranslationError(
      'BAD_HOST',
      '',
      'host',
      `"${input.host}" names namespace ${host.namespace}, but namespace ${input.namespace} was given`,
    );
  }
  const clientNamespace = host.kind === 'service' ? host.namespace : input.namespace;
  const shown = showHost(host);

  const rules: Found[] = [];
  for (const raw of input.destinationRules) {
    const found = readResource(raw, 'DestinationRule', clientNamespace, warnings);
    const hostAt = found.at.key('host');
    const ruleHost = parseIn(hostAt, found.spec['host'], found.namespace);
    if (!ruleHost) continue;
    if (!hostCovers(ruleHost, host)) {
      hostAt.note(`${showHost(ruleHost)} is not ${shown}: not used`);
      continue;
    }
    exportNote(found.at, found.spec, found.namespace);
    rules.push(found);
  }

  let service: Found | undefined;
  for (const raw of input.virtualServices) {
    const found = readResource(raw, 'VirtualService', clientNamespace, warnings);
    const hostsAt = found.at.key('hosts');
    const hosts = hostsAt
      .list(found.spec['hosts'] ?? [])
      .map((h, i) => parseIn(hostsAt.index(i), h, found.namespace))
      .filter((h): h is HostName => h !== undefined);
    if (!hosts.some((h) => hostCovers(h, host))) {
      hostsAt.note(
        `${hosts.map(showHost).join(', ') || '(none)'} do${hosts.length === 1 ? 'es' : ''} not include ${shown}: not used`,
      );
      continue;
    }
    if (found.spec['gateways'] !== undefined) {
      const gatewaysAt = found.at.key('gateways');
      const gateways = gatewaysAt.list(found.spec['gateways']);
      if (!gateways.includes('mesh')) {
        gatewaysAt.note(
          'bound to gateways only (no "mesh"): it does not apply to mesh clients; not used',
        );
        continue;
      }
    }
    if (service) {
      found.at
        .key('hosts')
        .note(
          `${service.at.resource} is already used for ${shown}: one VirtualService per host applies to mesh clients; not used`,
        );
      continue;
    }
    exportNote(found.at, found.spec, found.namespace);
    service = found;
  }

  if (!service && rules.length === 0) {
    throw new IstioTranslationError(
      'NO_RESOURCE_FOR_HOST',
      '',
      'host',
      `no VirtualService or DestinationRule applies to ${shown}` +
        (warnings.length > 0 ? ` (${warnings.join('; ')})` : ''),
    );
  }

  const rule = translateDestinationRules(rules);
  const subsets: TranslatedSubset[] = [...(rule?.subsets ?? [])];
  let everyEndpoint: string | undefined;
  const everyEndpointName = (): string => {
    if (everyEndpoint === undefined) {
      everyEndpoint = EVERY_ENDPOINT;
      for (let n = 2; subsets.some((s) => s.name === everyEndpoint); n++) {
        everyEndpoint = `${EVERY_ENDPOINT}-${n}`;
      }
      subsets.push({ name: everyEndpoint, labels: {}, policy: undefined });
    }
    return everyEndpoint;
  };

  let httpRoutes: HttpRoute[] = [];
  let routes: TrafficRoute[];
  if (service) {
    const { at, spec, namespace } = service;
    for (const key of otherFields(spec, ['hosts', 'gateways', 'http', 'exportTo'])) {
      if (key === 'tcp' || key === 'tls') {
        at.key(key).note(`${key} routes are not applied: gRPC calls follow the http routes`);
      } else at.key(key).note('not applied by the client');
    }
    if (spec['http'] === undefined) {
      at.key('http').fail('is missing: no http route to apply to gRPC calls', 'UNUSABLE_RESOURCE');
    }
    const before = warnings.length;
    httpRoutes = translateHttpRoutes(at.key('http'), spec['http'], {
      isHost: (name) => {
        const parsed = parseHostName(name, namespace);
        return parsed !== undefined && hostCovers(parsed, host) && parsed.kind !== 'wildcard';
      },
      hasSubset: (name) => subsets.some((s) => s.name === name),
      everyEndpoint: everyEndpointName,
      regexProblem,
    });
    if (httpRoutes.length === 0) {
      at.key('http').fail(
        'no http route can be used' +
          (warnings.length > before ? ` (${warnings.slice(before).join('; ')})` : ''),
        'UNUSABLE_RESOURCE',
      );
    }
    routes = httpRoutes.flatMap((r) => r.routes);
    if (!routes.some((r) => r.match === undefined)) {
      at.key('http').note(
        `no route matches every call: a call that matches none goes to every endpoint of ${shown}, round robin ` +
          '(Istio answers it with HTTP 404, which a gRPC client sees as UNIMPLEMENTED)',
      );
    }
  } else {
    routes = [{ name: 'default', split: [{ subset: everyEndpointName(), weight: 100 }] }];
  }

  const split: Json = {
    subsets: subsets.map((s) => ({
      name: s.name,
      labels: s.labels,
      ...(s.policy === undefined ? {} : { policy: s.policy }),
      ...(s.consistentHash === undefined ? {} : { consistentHash: s.consistentHash }),
    })),
    routes,
    ...(rule?.subsetPolicy === undefined ? {} : { subsetPolicy: rule.subsetPolicy }),
    ...(rule?.consistentHash === undefined ? {} : { consistentHash: rule.consistentHash }),
    ...(rule?.resilience ?? {}),
  };
  const serviceConfig: Record<string, unknown> = {
    loadBalancingConfig: [{ [TRAFFIC_SPLIT]: split }],
  };
  const methods = methodConfigs(httpRoutes);
  if (methods.length > 0) serviceConfig['methodConfig'] = methods;
  // Every field is checked as it is read; this catches what slips through, before a client sees it.
  try {
    checkServiceConfig(serviceConfig, `translation for ${shown}`);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new IstioTranslationError(
      'BAD_RESOURCE',
      [service?.at.resource, ...rules.map((r) => r.at.resource)].filter(Boolean).join(', '),
      '',
      `the translated config is refused: ${error.message}`,
    );
  }
  const used = [...(service ? [service.at.resource] : []), ...rules.map((r) => r.at.resource)];
  return { serviceConfig, warnings, used };
}
