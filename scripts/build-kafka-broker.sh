#!/usr/bin/env bash
# Builds the development/test Kafka broker (librdkafka's mock cluster, see
# scripts/kafka-broker/mock-broker.c) from the librdkafka 2.12 sources that
# ship inside the npm package node-rdkafka@3.6.1. Debian's librdkafka is too
# old. The result is cached in .cache/kafka-broker/ (git-ignored); a second
# run with the same launcher source does nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/kafka-broker"
src="$root/scripts/kafka-broker/mock-broker.c"
stamp="$(sha256sum "$src" | cut -c1-16)-rdkafka-3.6.1"
if [ -x "$cache/mock-broker" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
mkdir -p "$cache"
lib="$cache/librdkafka"
if [ ! -f "$lib/src/librdkafka.a" ]; then
  echo "kafka-broker: building librdkafka 2.12 from node-rdkafka@3.6.1 (about a minute, once)" >&2
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent node-rdkafka@3.6.1 >/dev/null && tar xzf node-rdkafka-3.6.1.tgz)
  rm -rf "$lib" && mv "$work/package/deps/librdkafka" "$lib" && rm -rf "$work"
  (cd "$lib" && ./configure --disable-gssapi >"$cache/configure.log" 2>&1 \
    && make -j"$(nproc)" -C src librdkafka.a >"$cache/make.log" 2>&1) || {
      echo "kafka-broker: librdkafka build failed, see $cache/configure.log and $cache/make.log" >&2; exit 1; }
fi
# Link against the static library with the same system libraries it was configured for.
libs="$(sed -n 's/^MKL_DYNAMIC_LIBS=//p' "$lib/Makefile.config" 2>/dev/null || true)"
[ -n "$libs" ] || libs="$(grep -E '^LIBS[+]?=' "$lib/Makefile.config" | sed 's/^LIBS[+]\?=//' | tr '\n' ' ')"
cc -O2 -o "$cache/mock-broker" "$src" -I"$lib/src" "$lib/src/librdkafka.a" $libs -lpthread -lm
echo "$stamp" >"$cache/stamp"
echo "kafka-broker: built $cache/mock-broker" >&2
