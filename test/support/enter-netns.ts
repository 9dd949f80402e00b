/**
 * Imported FIRST by a `node:test` file whose tests need pod-like addresses: re-runs the file
 * inside a test network namespace of its own (netns.ts) and exits with that run's status, before
 * node:test is loaded here. When no namespace can be made (not root, no `ip`), it does nothing and
 * `addPodAddresses()` skips the tests that need addresses, or fails them under CI=true.
 */
import { reexecInTestNetnsSync } from './netns';

reexecInTestNetnsSync();
