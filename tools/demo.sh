#!/usr/bin/env bash
# The main job, as far as it exists today: builds Skopos, then shows this machine's
# live TCP connection counts per network namespace, decoded from /proc by the same
# decoder the tracker uses. (The drain issue turns this into the full drain demo.)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target tracker-cli

cli=build/bin/tracker-cli
printf '\n== Connections per network namespace (%s netns)\n\n' "$cli"
"$cli" netns
printf '\n== This namespace, per local port and TCP state (%s decode /proc/net/tcp /proc/net/tcp6)\n\n' "$cli"
tables=(/proc/net/tcp)
[ -e /proc/net/tcp6 ] && tables+=(/proc/net/tcp6)
"$cli" decode "${tables[@]}"
printf '\nMore: %s decode --records --json FILE..., %s netns --json\n' "$cli" "$cli"
