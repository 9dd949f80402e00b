/**
 * Imported before grpc-js: grpc-js reads this variable once, when it loads. With it, grpc-js's
 * built-in `dns:` resolver uses c-ares and asks the DNS server named in the target
 * (`dns://127.0.0.1:PORT/name:port`), so the comparison asks the same bind9 as grpc-lb does.
 * Without it the built-in resolver would ask the system's resolver, which knows nothing of the
 * test zone. It changes nothing else.
 */
process.env['GRPC_NODE_USE_ALTERNATIVE_RESOLVER'] = 'true';

export {};
