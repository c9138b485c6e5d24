#!/usr/bin/env node
// The installed `doppel` command: the compiled CLI (run `npm run setup` to build it).
import '../dist/cli/src/main.js';
