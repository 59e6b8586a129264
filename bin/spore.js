#!/usr/bin/env node
// Runs the bundled CLI; `npm ci` builds dist/spore.mjs through the `prepare` script.
import "../dist/spore.mjs"
