#!/usr/bin/env bash
# Debian's Chromium, which the browser tests (test/front/dashboard.test.ts) drive through
# playwright-core. Debian's package rather than `npx playwright install`: it comes from the same
# apt mirror as everything else, and a browser download is not reachable from CI's network.
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  if [ ! -x /usr/bin/chromium ]; then
    echo "apt-get installed chromium, but /usr/bin/chromium is not there" >&2
    exit 1
  fi
else
  echo "chromium is missing: install it (sudo apt-get install chromium) and run the tests again" >&2
  exit 1
fi
