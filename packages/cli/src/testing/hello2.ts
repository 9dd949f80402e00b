/**
 * The hello2 routing of a published walk-through (gRPC greeter hello2 in three versions, on VMs
 * and pods behind one mesh): a VirtualService shifting SayHello 30/60/10 over subsets v1/v2/v3,
 * and the DestinationRule that defines them with a connection pool. The article shows the
 * VirtualService's spec alone; its apiVersion and metadata are filled in here.
 */
export const HELLO2_VIRTUAL_SERVICE = `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: hello2-vs
  namespace: grpc-reciprocal-hello
spec:
  hosts:
    - hello2-svc
  http:
    - name: grpc-hello-route
      match:
        - uri:
            prefix: /org.feuyeux.grpc.Greeter/SayHello
      route:
        - destination:
            host: hello2-svc
            subset: v1
          weight: 30
        - destination:
            host: hello2-svc
            subset: v2
          weight: 60
        - destination:
            host: hello2-svc
            subset: v3
          weight: 10
`;

export const HELLO2_DESTINATION_RULE = `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: hello2-dr
  namespace: grpc-reciprocal-hello
spec:
  host: hello2-svc
  subsets:
    - labels:
        version: v1
      name: v1
    - labels:
        version: v2
      name: v2
    - labels:
        version: v3
      name: v3
  trafficPolicy:
    connectionPool:
      http:
        http1MaxPendingRequests: 20
        http2MaxRequests: 100
        maxRequestsPerConnection: 10
        maxRetries: 1
      tcp:
        connectTimeout: 10s
        maxConnections: 10
`;

/** The traffic split both translate to. */
export const HELLO2_TRAFFIC_SPLIT = {
  subsets: [
    { name: 'v1', labels: { version: 'v1' } },
    { name: 'v2', labels: { version: 'v2' } },
    { name: 'v3', labels: { version: 'v3' } },
  ],
  routes: [
    {
      name: 'grpc-hello-route',
      match: { prefix: '/org.feuyeux.grpc.Greeter/SayHello' },
      split: [
        { subset: 'v1', weight: 30 },
        { subset: 'v2', weight: 60 },
        { subset: 'v3', weight: 10 },
      ],
    },
  ],
  // From the connection pool's http2MaxRequests and http1MaxPendingRequests.
  limits: { maxPending: 20, maxRequests: 100 },
};
