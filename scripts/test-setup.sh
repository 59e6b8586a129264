#!/usr/bin/env bash
# What the test suite needs besides node_modules, set up by `npm test` itself so that the README's
# test command works on a fresh machine (CI runs the same command):
# - librdkafka's mock Kafka cluster, built once into ~/.cache/spore-kafka-mock (~40 s cold,
#   instant after), from ../shared/kafka-mock;
# - rdkafka-client (test/support/rdkafka-client.c on the mock's librdkafka 2.15.1, for the
#   flexible API versions), built beside it in under a second;
# - kcat, a librdkafka 2.0 client, from Debian's packages when it is missing;
# - pebble, the ACME test server (with pebble-challtestsrv), for the certificate issuance tests,
#   from Debian's packages when it is missing;
# - promtool (Debian's prometheus package), which checks every metrics endpoint, when it is missing;
# - redis-server (Debian's), the store of the cluster's tests, when it is missing;
# - Debian's Chromium, for the HTTP tunnels' browser tests, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d ../shared/kafka-mock ]; then
  echo "../shared/kafka-mock is missing: the Kafka tests run its mock cluster" >&2
  exit 1
fi
bash ../shared/kafka-mock/kafka-mock.sh build
bash test/support/build-rdkafka-client.sh >/dev/null
if ! command -v kcat >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq kcat) >/dev/null
  else
    echo "kcat is missing: install it (sudo apt-get install kcat) and run the tests again" >&2
    exit 1
  fi
fi
if [ ! -x /usr/bin/pebble ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq pebble) >/dev/null
  else
    echo "pebble is missing: install it (sudo apt-get install pebble) and run the tests again" >&2
    exit 1
  fi
fi
if [ ! -x /usr/bin/promtool ]; then
  if [ "$(id -u)" = 0 ]; then
    # The package's service is not wanted, only its promtool: policy-rc.d keeps it from starting.
    (apt-get update -qq && RUNLEVEL=1 apt-get install -y -qq --no-install-recommends prometheus) >/dev/null
  else
    echo "promtool is missing: install it (sudo apt-get install prometheus) and run the tests again" >&2
    exit 1
  fi
fi
if [ ! -x /usr/bin/redis-server ]; then
  if [ "$(id -u)" = 0 ]; then
    # Only the binary is wanted: policy-rc.d-less containers do not start its service, and the
    # tests start their own on a free port.
    (apt-get update -qq && RUNLEVEL=1 apt-get install -y -qq --no-install-recommends redis-server) >/dev/null
  else
    echo "redis-server is missing: install it (sudo apt-get install redis-server) and run the tests again" >&2
    exit 1
  fi
fi
bash scripts/install-chromium.sh
