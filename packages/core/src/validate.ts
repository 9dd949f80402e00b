import { TargetError } from './errors';
import { createCompositeResolverFactory } from './composite-target';
import { manualResolverFactory } from './manual-target';
import type { ResolverFactory } from './resolver-contract';
import { staticResolverFactory } from './static-target';
import { parseTargetUri } from './target-uri';

/**
 * Parses a target the way a client built on it would, without creating a
 * channel: returns the default authority, or throws `TargetError` naming the
 * offending part. Pass the factories of resolver packages to check their schemes.
 */
export function validateTarget(
  target: string,
  factories: readonly ResolverFactory[] = [],
): { scheme: string; defaultAuthority: string } {
  const uri = parseTargetUri(target);
  const all: ResolverFactory[] = [staticResolverFactory, manualResolverFactory];
  all.push(
    createCompositeResolverFactory({
      get: (scheme) => all.find((f) => f.scheme === scheme),
      schemes: () => all.map((f) => f.scheme),
    }),
    ...(factories as ResolverFactory[]),
  );
  const factory = all.find((f) => f.scheme === uri.scheme);
  if (!factory) {
    throw new TargetError(
      target,
      `unknown scheme "${uri.scheme}:" (known: ${all.map((f) => f.scheme).join(', ')})`,
    );
  }
  const parsed = factory.parseTarget(uri, target);
  return { scheme: uri.scheme, defaultAuthority: factory.defaultAuthority(parsed, uri) };
}
