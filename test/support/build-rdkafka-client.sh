#!/usr/bin/env bash
# Builds rdkafka-client.c (a small Kafka client on librdkafka 2.15.1, see its header) into the
# kafka-mock cache, next to mockcluster: $KMOCK_DIR (default ~/.cache/spore-kafka-mock)/rdkafka-client.
# Rebuilt only when the .c or librdkafka.a is newer than the binary; runs `kafka-mock.sh build`
# first when the library is missing. Prints the binary's path on stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${KMOCK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spore-kafka-mock}
R=$DIR/package/deps/librdkafka
SRC=$HERE/rdkafka-client.c
OUT=$DIR/rdkafka-client
[ -f "$R/src/librdkafka.a" ] || bash "$HERE/../../../shared/kafka-mock/kafka-mock.sh" build >&2
if ! { [ -x "$OUT" ] && [ "$OUT" -nt "$SRC" ] && [ "$OUT" -nt "$R/src/librdkafka.a" ]; }; then
  # build beside, then rename: concurrent builders never leave a half-written binary
  TMP=$(mktemp "$DIR/.rdkafka-client.XXXXXX")
  trap 'rm -f "$TMP"' EXIT
  gcc -O2 -Wall -Wextra -isystem "$R/src" -o "$TMP" "$SRC" "$R/src/librdkafka.a" -lpthread -lm -ldl -lrt
  chmod 755 "$TMP"
  mv -f "$TMP" "$OUT"
  echo "built $OUT" >&2
fi
echo "$OUT"
