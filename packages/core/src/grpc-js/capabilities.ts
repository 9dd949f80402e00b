/**
 * What core uses of the grpc-js module it is given. `register()` checks each
 * one before registering anything: a version string is not enough, because a
 * copy of a module object (`{ ...grpc }`) cannot be traced back to its
 * package.json, and the `experimental` surface changed shape at every minor
 * (1.13 has no `statusOrFromValue`, which every resolver update calls).
 * A unit test reads the compiled core for every use of the module and fails
 * if one is missing here.
 */

type Kind = 'function' | 'object' | 'string';

/** Dotted paths from the module object, with the kind of value each must be. */
export const GRPC_CAPABILITIES: Readonly<Record<string, Kind>> = {
  Client: 'function',
  Metadata: 'function',
  'credentials.createInsecure': 'function',
  status: 'object',
  connectivityState: 'object',
  logVerbosity: 'object',
  experimental: 'object',
  'experimental.registerResolver': 'function',
  'experimental.registerLoadBalancerType': 'function',
  'experimental.isLoadBalancerNameRegistered': 'function',
  'experimental.createResolver': 'function',
  'experimental.parseLoadBalancingConfig': 'function',
  'experimental.statusOrFromValue': 'function',
  'experimental.statusOrFromError': 'function',
  'experimental.CHANNEL_ARGS_CONFIG_SELECTOR_KEY': 'string',
  'experimental.parseDuration': 'function',
  'experimental.trace': 'function',
  'experimental.LeafLoadBalancer': 'function',
  'experimental.UnavailablePicker': 'function',
  'experimental.QueuePicker': 'function',
  'experimental.PickResultType': 'object',
};

function lookup(root: unknown, path: string): unknown {
  let value: unknown = root;
  for (const part of path.split('.')) {
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
      return undefined;
    }
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** The capabilities `grpc` lacks (or has as the wrong kind of value), as dotted paths; empty when usable. */
export function missingCapabilities(grpc: unknown): string[] {
  return Object.entries(GRPC_CAPABILITIES)
    .filter(([path, kind]) => {
      const value = lookup(grpc, path);
      return kind === 'object'
        ? (typeof value !== 'object' && typeof value !== 'function') || value === null
        : typeof value !== kind;
    })
    .map(([path]) => path);
}
