import { isIPv4, isIPv6 } from 'node:net';
import type { SliceLike } from './slices';

/** The core/v1 Endpoints fields read here (the object is named after its Service). */
export interface EndpointsLike {
  readonly metadata?: {
    readonly name?: string;
    readonly resourceVersion?: string;
    readonly labels?: Readonly<Record<string, string>>;
  };
  readonly subsets?: readonly {
    /** Ready addresses. */
    readonly addresses?: readonly EndpointAddressLike[];
    /** Addresses of pods that are not ready: never given calls. */
    readonly notReadyAddresses?: readonly EndpointAddressLike[];
    readonly ports?: readonly {
      readonly name?: string;
      readonly port?: number;
      readonly protocol?: string;
    }[];
  }[];
}

export interface EndpointAddressLike {
  readonly ip?: string;
  readonly nodeName?: string;
  readonly targetRef?: { readonly kind?: string; readonly name?: string };
}

/**
 * One Endpoints object as the EndpointSlices the merge reads: each subset becomes one slice per
 * address family (named `<name>[<subset>]`), with its ports. `addresses` are ready;
 * `notReadyAddresses` are neither ready nor serving, so they get no calls. Endpoints say nothing
 * about terminating pods (the controller drops them), so there is never a terminating fallback.
 * An `ip` that is neither IPv4 nor IPv6 is kept in the IPv4 slice, where the merge warns about it.
 * The object's labels go to each slice (and so, as a slice's do, to its endpoints).
 */
export function slicesFromEndpoints(endpoints: EndpointsLike): SliceLike[] {
  const name = endpoints.metadata?.name ?? '(unnamed)';
  const slices: SliceLike[] = [];
  (endpoints.subsets ?? []).forEach((subset, index) => {
    const families: Record<'IPv4' | 'IPv6', NonNullable<SliceLike['endpoints']>[number][]> = {
      IPv4: [],
      IPv6: [],
    };
    const add = (address: EndpointAddressLike, ready: boolean): void => {
      const ip = address.ip ?? '';
      const family = isIPv6(ip) && !isIPv4(ip) ? 'IPv6' : 'IPv4';
      families[family].push({
        addresses: [ip],
        conditions: { ready, serving: ready, terminating: false },
        ...(address.nodeName ? { nodeName: address.nodeName } : {}),
        ...(address.targetRef ? { targetRef: address.targetRef } : {}),
      });
    };
    for (const address of subset.addresses ?? []) add(address, true);
    for (const address of subset.notReadyAddresses ?? []) add(address, false);
    for (const addressType of ['IPv4', 'IPv6'] as const) {
      const members = families[addressType];
      // A subset always has an address; a family it lacks is no slice (and no "no port" warning).
      if (members.length === 0) continue;
      const labels = endpoints.metadata?.labels;
      slices.push({
        metadata: { name: `${name}[${index}]`, ...(labels ? { labels } : {}) },
        addressType,
        endpoints: members,
        ports: subset.ports ?? [],
      });
    }
  });
  return slices;
}
