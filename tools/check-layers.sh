#!/usr/bin/env bash
# The layers, checked: fails naming every include or link that crosses one.
#
#   tracker/base/  the base both programs share: includes nothing from tracker/ or driver/
#   tracker/       the tracker: includes nothing from driver/
#   driver/        the driver: sees the tracker only through the stream
#                  (tracker/stream_protocol.h, tracker/stream_client.h)
#
# and, given the built binaries, that each links only what it uses: `skopos` carries
# neither the /proc decoder (its kernels, its reader) nor conntrack, and neither
# `tracker-cli` nor `skopos-tracker` links TLS (only https needs it; they speak none).
#
# Usage: tools/check-layers.sh SOURCE_DIR [SKOPOS_BINARY TRACKER_CLI_BINARY SKOPOS_TRACKER_BINARY]
#        tools/check-layers.sh --self-test   (proves the check fails on a crossing)
set -uo pipefail

# The includes of one folder's C++ files that match a pattern, as "file:line: include".
includes_matching() {
  local dir=$1 pattern=$2
  grep -rnE --include='*.cpp' --include='*.h' "^[[:space:]]*#[[:space:]]*include[[:space:]]*\"($pattern)" "$dir" 2>/dev/null
}

check_sources() {
  local root=$1 failed=0 found
  found=$(includes_matching "$root/tracker/base" 'tracker/|driver/')
  if [ -n "$found" ]; then
    printf 'check-layers: the base includes tracker or driver headers:\n%s\n' "$found" >&2
    failed=1
  fi
  found=$(includes_matching "$root/tracker" 'driver/')
  if [ -n "$found" ]; then
    printf 'check-layers: the tracker includes driver headers:\n%s\n' "$found" >&2
    failed=1
  fi
  found=$(includes_matching "$root/driver" 'tracker/' | grep -vE '"tracker/(stream_protocol|stream_client)\.h"')
  if [ -n "$found" ]; then
    printf 'check-layers: the driver includes tracker internals (only the stream is its to see):\n%s\n' "$found" >&2
    failed=1
  fi
  return $failed
}

check_binaries() {
  local skopos=$1 tracker_cli=$2 tracker=$3 failed=0 found
  found=$(nm -C "$skopos" | grep -E 'count_lines_|record_lines_|TcpTableCounter|TcpTableDecoder|ProcNetReader|ConntrackSource|nfct_' | head -5)
  if [ -n "$found" ]; then
    printf 'check-layers: %s carries the decoder or conntrack:\n%s\n' "$skopos" "$found" >&2
    failed=1
  fi
  found=$(readelf -d "$skopos" | grep -E 'NEEDED.*(netfilter|mnl)')
  if [ -n "$found" ]; then
    printf 'check-layers: %s links conntrack:\n%s\n' "$skopos" "$found" >&2
    failed=1
  fi
  for binary in "$tracker_cli" "$tracker"; do
    found=$(readelf -d "$binary" | grep -E 'NEEDED.*(libssl|libcrypto)')
    if [ -n "$found" ]; then
      printf 'check-layers: %s links TLS, which only https needs:\n%s\n' "$binary" "$found" >&2
      failed=1
    fi
  done
  return $failed
}

self_test() {
  local scratch status=0
  scratch=$(mktemp -d) || return 1
  mkdir -p "$scratch/tracker/base/src" "$scratch/tracker/src" "$scratch/driver/src"
  printf '#include "skopos/result.h"\n' >"$scratch/tracker/base/src/ok.cpp"
  printf '#include "tracker/stream_client.h"\n' >"$scratch/driver/src/ok.cpp"
  if ! check_sources "$scratch" 2>/dev/null; then
    echo "check-layers self-test: a clean tree was refused" >&2
    status=1
  fi
  for crossing in 'tracker/base/src/bad.cpp:#include "tracker/tracker.h"' \
                  'tracker/src/bad.cpp:#include "driver/drain.h"' \
                  'driver/src/bad.cpp:#  include "tracker/proc_net_reader.h"'; do
    local file=${crossing%%:*} line=${crossing#*:}
    printf '%s\n' "$line" >"$scratch/$file"
    if check_sources "$scratch" 2>/dev/null; then
      echo "check-layers self-test: '$line' in $file was not caught" >&2
      status=1
    fi
    rm -f "$scratch/$file"
  done
  rm -rf "$scratch"
  [ $status -eq 0 ] && echo "check-layers self-test: every crossing caught, the clean tree passed"
  return $status
}

if [ "${1:-}" = "--self-test" ]; then
  self_test
  exit $?
fi
if [ $# -ne 1 ] && [ $# -ne 4 ]; then
  echo "usage: tools/check-layers.sh SOURCE_DIR [SKOPOS_BINARY TRACKER_CLI_BINARY SKOPOS_TRACKER_BINARY] | --self-test" >&2
  exit 2
fi
status=0
check_sources "$1" || status=1
if [ $# -eq 4 ]; then
  check_binaries "$2" "$3" "$4" || status=1
fi
[ $status -eq 0 ] && echo "check-layers: base, tracker and driver keep to their layers"
exit $status
