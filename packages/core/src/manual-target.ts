import { TargetError } from './errors';
import type {
  EndpointResolver,
  Resolution,
  ResolutionSink,
  ResolvedEndpoint,
  ResolverFactory,
} from './resolver-contract';

/**
 * `manual:` — endpoints pushed by the application at run time, like grpc-go's
 * manual resolver. For tests, demos and for feeding discovery data the
 * application gets by its own means:
 *
 *     const backends = new ManualEndpoints([{ host: '127.0.0.2', port: 50051 }]);
 *     const client = new Greeter(backends.target, creds);
 *     backends.update([...]);
 */
const registry = new Map<string, ManualEndpoints>();
let nextId = 1;

export class ManualEndpoints {
  readonly id: string;
  /** The target to give a client: `manual:///<id>`. */
  readonly target: string;
  private current: { resolution: Resolution } | { error: Error } | undefined;
  private readonly sinks = new Set<ResolutionSink>();
  private refreshes = 0;

  constructor(initial?: readonly ResolvedEndpoint[] | Resolution, options: { id?: string } = {}) {
    this.id = options.id ?? `endpoints-${process.pid}-${nextId++}`;
    if (!/^[A-Za-z0-9._-]+$/.test(this.id)) {
      throw new TargetError(
        `manual:///${this.id}`,
        'a manual id may hold only letters, digits, ".", "_" and "-"',
      );
    }
    this.target = `manual:///${this.id}`;
    registry.set(this.id, this);
    if (initial !== undefined) this.update(initial);
  }

  /** Replace the whole endpoint set (an empty list is allowed: calls then fail fast). */
  update(next: readonly ResolvedEndpoint[] | Resolution): void {
    const resolution: Resolution = isResolution(next) ? next : { endpoints: next };
    this.current = { resolution };
    for (const sink of this.sinks) sink.update(resolution);
  }

  /** Report a discovery failure, as a registry outage would. */
  fail(error: Error): void {
    this.current = { error };
    for (const sink of this.sinks) sink.error(error);
  }

  /** How many channels are resolving this target right now (0 after every client is closed). */
  get activeResolvers(): number {
    return this.sinks.size;
  }

  /** How many times channels asked for re-resolution (after the adapter's rate limit). */
  get refreshCount(): number {
    return this.refreshes;
  }

  /** Forget this target; clients still using it keep their last endpoints. */
  dispose(): void {
    registry.delete(this.id);
  }

  /** @internal */
  attach(sink: ResolutionSink): void {
    this.sinks.add(sink);
    const current = this.current;
    if (current === undefined) return;
    if ('error' in current) sink.error(current.error);
    else sink.update(current.resolution);
  }

  /** @internal */
  detach(sink: ResolutionSink): void {
    this.sinks.delete(sink);
  }

  /** @internal */
  noteRefresh(): void {
    this.refreshes++;
  }
}

function isResolution(value: readonly ResolvedEndpoint[] | Resolution): value is Resolution {
  return !Array.isArray(value);
}

class ManualResolver implements EndpointResolver {
  private sink: ResolutionSink | undefined;
  constructor(private readonly source: ManualEndpoints) {}
  start(sink: ResolutionSink): void {
    this.sink = sink;
    this.source.attach(sink);
  }
  refresh(): void {
    this.source.noteRefresh();
  }
  stop(): void {
    if (this.sink) this.source.detach(this.sink);
    this.sink = undefined;
  }
}

export const manualResolverFactory: ResolverFactory<ManualEndpoints> = {
  scheme: 'manual',
  parseTarget(uri, original) {
    const source = registry.get(uri.path);
    if (!source) {
      throw new TargetError(
        original,
        `no ManualEndpoints with id "${uri.path}" exists in this process`,
      );
    }
    return source;
  },
  defaultAuthority(source) {
    return source.id;
  },
  create(source) {
    return new ManualResolver(source);
  },
};
