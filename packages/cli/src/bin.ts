#!/usr/bin/env node
import { processIo } from './io';
import { runCli } from './program';

// Node's deprecation warnings speak to the authors of the libraries that trigger them (grpc-js
// sets an IP address as the TLS server name for an https://127.0.0.1 etcd), not to an operator;
// they would break the one-line-per-message contract of stderr.
process.noDeprecation = true;

// A reader that goes away (`grpc-lb … | head`) is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

void runCli(process.argv.slice(2), processIo()).then((code) => {
  process.exitCode = code;
});
