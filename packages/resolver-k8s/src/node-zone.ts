/**
 * The zone of the node this pod runs on, for zone-aware routing: the downward API gives a pod its
 * node's name (`spec.nodeName`, as the env var `NODE_NAME`) but not the node's labels, so the
 * Node is read once from the API server for its `topology.kubernetes.io/zone` label.
 *
 *     env:
 *       - name: NODE_NAME
 *         valueFrom: { fieldRef: { fieldPath: spec.nodeName } }
 *
 *     registerK8s({ grpc, zone: await k8sNodeZone() });
 */
import { redactSecrets, type Logger } from '@grpc-lb/core';
import { createK8sApi, statusMessage, statusOf, type K8sConnectionOptions } from './k8s-client';

/** The label the kubelet (or the cloud provider) puts on every Node. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
/** The environment variable the pod sets from `spec.nodeName` through the downward API. */
export const NODE_NAME_ENV = 'NODE_NAME';

export interface NodeZoneOptions extends K8sConnectionOptions {
  /** The node's name; default the `NODE_NAME` environment variable. */
  readonly nodeName?: string;
  /** Where the one warning goes when the zone cannot be read. Default: console.warn. */
  readonly logger?: Logger;
}

/**
 * The `topology.kubernetes.io/zone` label of this pod's node, or undefined — with one warning
 * saying why (no node name, the Node or its label missing, RBAC refusing `get` on `nodes`, the API
 * server unreachable) — when it cannot be had. Never rejects: zone-aware routing is then off.
 */
export async function k8sNodeZone(options: NodeZoneOptions = {}): Promise<string | undefined> {
  const { nodeName = process.env[NODE_NAME_ENV], logger, ...connection } = options;
  const warn = (message: string): undefined => {
    const line = `the node's zone is unknown, zone-aware routing stays off: ${redactSecrets(message)}`;
    try {
      (logger ?? { warn: (m: string) => console.warn(`[grpc-lb] ${m}`) }).warn(line);
    } catch {
      // A logger that throws must not turn "zone unknown" into a rejection.
      console.warn(`[grpc-lb] ${line}`);
    }
    return undefined;
  };
  if (!nodeName) {
    return warn(
      `no node name (set the env var ${NODE_NAME_ENV} from the downward API field spec.nodeName)`,
    );
  }
  try {
    const api = await createK8sApi(connection);
    if (!api.readNodeLabels) return warn('this Kubernetes client cannot read Nodes');
    const labels = await api.readNodeLabels(nodeName);
    if (labels === undefined) return warn(`Node ${nodeName} does not exist at ${api.server}`);
    const zone = labels[ZONE_LABEL];
    if (!zone) return warn(`Node ${nodeName} has no label ${ZONE_LABEL}`);
    return zone;
  } catch (error) {
    const status = statusOf(error);
    if (status === 403) {
      return warn(
        `403 Forbidden reading Node ${nodeName}: ${statusMessage(error) ?? 'forbidden'}. ` +
          `Grant this identity get on nodes (a ClusterRole, since Nodes are cluster-scoped), or set the zone yourself (GRPC_LB_ZONE)`,
      );
    }
    const detail = statusMessage(error) ?? (error instanceof Error ? error.message : String(error));
    return warn(`reading Node ${nodeName} failed${status ? ` (${status})` : ''}: ${detail}`);
  }
}
