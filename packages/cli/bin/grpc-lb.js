#!/usr/bin/env node
// The `grpc-lb` command. It lives outside dist/ so that a workspace install can link it before
// the first build; the program itself is the compiled dist/bin.js.
'use strict';

const { existsSync } = require('node:fs');
const { join } = require('node:path');

const main = join(__dirname, '..', 'dist', 'bin.js');
if (!existsSync(main)) {
  process.stderr.write(
    `error: grpc-lb is not built (${main} is missing); run: node scripts/run.mjs build\n`,
  );
  process.exitCode = 1;
} else {
  require(main);
}
