/**
 * A traffic policy document by source, as a registry would hold it for a composite target whose
 * sources are named `vms` and `pods`: `pods` percent of every call to the pods, the rest to the VMs.
 */
export function podsSharePolicy(pods: number): string {
  return JSON.stringify({
    loadBalancingConfig: [
      {
        'grpc-lb.traffic_split': {
          subsets: [
            { name: 'vms', labels: { source: 'vms' } },
            { name: 'pods', labels: { source: 'pods' } },
          ],
          routes: [
            {
              split: [
                { subset: 'vms', weight: 100 - pods },
                { subset: 'pods', weight: pods },
              ],
            },
          ],
        },
      },
    ],
  });
}
