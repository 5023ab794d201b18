#!/usr/bin/env bash
# Runs every test tier, as CI does: dependencies, configure, build, then
#   unit         no root, no network
#   integration  our binaries as operators run them
#   privileged   root: BPF, network namespaces (a skip is a failure when run as root)
#   bench        a seconds-long smoke run of the benchmarks, so they cannot rot
#   arm64        the decoder and tracker-cli cross-built for arm64, run under qemu-user
#   sanitize     a clang build with ASan+UBSan; unit and integration tests again there
#   fuzz         a bounded libFuzzer run of the decoder (SKOPOS_FUZZ_SECONDS, default 60)
#
# Usage: tools/test.sh [tier...]     e.g. tools/test.sh unit integration
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

all_tiers=(unit integration privileged bench arm64 sanitize fuzz)
tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=("${all_tiers[@]}")
for tier in "${tiers[@]}"; do
  case " ${all_tiers[*]} " in *" $tier "*) ;; *) echo "test.sh: unknown tier '$tier' (one of: ${all_tiers[*]})" >&2; exit 2 ;; esac
done
wants() { case " ${tiers[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

step() { printf '\n== %s\n' "$*"; }
started=$(date +%s)

step "dependencies"
tools/install-deps.sh

if wants unit || wants integration || wants privileged || wants bench; then
  step "configure and build (gcc, warnings as errors)"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKOPOS_WERROR=ON
  cmake --build build -j "$(nproc)"
fi

# When we can run privileged tests, a privileged test that skips is a failure.
if [ "$(id -u)" -eq 0 ]; then
  export SKOPOS_REQUIRE_PRIVILEGED=1
fi

# Container tests run a private podman under /tmp/skopos-podman-<pid>; one that crashed
# may have left it behind.
# The same for the etcd and ZooKeeper servers the driver tests start under
# /tmp/skopos-etcd-* and /tmp/skopos-zk-*, and the drain sandboxes (tools/drain-sandbox)
# under /tmp/skopos-sandbox-*.
test_dirs() { ls -d /tmp/skopos-podman-* /tmp/skopos-etcd-* /tmp/skopos-zk-* /tmp/skopos-sandbox-* 2>/dev/null || true; }
check_podman_leftovers() {
  local left
  left=$(test_dirs)
  if [ -n "$left" ]; then
    echo "test.sh: test directories left behind (podman, etcd, ZooKeeper or a drain sandbox): $left" >&2
    return 1
  fi
}

run_tier() {
  local dir=$1 label=$2
  step "tier: $label ($dir)"
  ctest --test-dir "$dir" -L "^${label}\$" --no-tests=error --output-on-failure -j "$(nproc)"
}

# What an earlier, interrupted run left behind is not this run's fault: remove it, say
# so, and from here on fail on anything this run leaves.
stale=$(test_dirs)
if [ -n "$stale" ]; then
  echo "test.sh: removing test directories an earlier run left behind: $stale" >&2
  for one in $stale; do
    # A sandbox also has processes, containers, a namespace and maybe a fence.
    case $one in /tmp/skopos-sandbox-*) SKOPOS_SANDBOX=$one tools/drain-sandbox down || true ;; esac
    rm -rf "$one"
  done
fi

wants unit && run_tier build unit
if wants integration; then
  run_tier build integration
  check_podman_leftovers
fi
if wants privileged; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the privileged tier needs root (sudo tools/test.sh privileged)" >&2
    exit 1
  fi
  # Serially: these tests move threads between network namespaces.
  step "tier: privileged (build)"
  status=0
  ctest --test-dir build -L '^privileged$' --no-tests=error --output-on-failure || status=$?
  # A test that crashed may have left its namespace behind; remove it and say so.
  leftover=$(ip netns list | awk '/^skopos-/ {print $1}')
  if [ -n "$leftover" ]; then
    echo "test.sh: removing namespaces left behind: $leftover" >&2
    for ns in $leftover; do ip netns delete "$ns" || true; done
    status=1
  fi
  check_podman_leftovers || status=1
  [ $status -eq 0 ] || exit $status
fi
wants bench && run_tier build bench

# The decoder where arm64 runs it: cross-built with Debian's compiler, its tests and
# tracker-cli run under qemu-user, and tracker-cli's counts and records of the captured
# tables must be the same bytes as this machine's build gives.
if wants arm64; then
  step "configure and build (arm64 cross: the decoder's tests and tracker-cli)"
  cmake -S . -B build/arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKOPOS_BPF=OFF -DSKOPOS_BENCH=OFF -DSKOPOS_WERROR=ON
  cmake --build build/arm64 -j "$(nproc)" --target skopos_decoder_tests tracker-cli
  # This machine's tracker-cli, from the same sources, for the comparison.
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKOPOS_WERROR=ON > /dev/null
  cmake --build build -j "$(nproc)" --target tracker-cli
  step "tier: arm64 (build/arm64, under qemu-user)"
  arm64_run() { qemu-aarch64 -L /usr/aarch64-linux-gnu "$@"; }
  # Not the tests of counting a saved table in parts, nor of counting several tables at
  # once: they start threads, and pthread_create hangs under this qemu-user (7.2 on kernel
  # 6.18; a ten-line std::jthread program hangs the same way). The unit and sanitize tiers
  # run them, the portable kernel included.
  arm64_run build/arm64/bin/skopos_decoder_tests --gtest_brief=1 --gtest_filter='-ProcNetReaderParts.*:CountTables.*'
  for capture in tests/unit/tracker/testdata/netns.tcp tests/unit/tracker/testdata/netns.tcp6; do
    for mode in --json "--json --records"; do
      # shellcheck disable=SC2086 # $mode is one or two flags
      arm64_run build/arm64/bin/tracker-cli decode $mode "$capture" > build/arm64/decode.json
      # shellcheck disable=SC2086
      build/bin/tracker-cli decode $mode "$capture" | cmp - build/arm64/decode.json
    done
    echo "arm64: tracker-cli decode --json [--records] $capture: the same bytes as on $(uname -m)"
  done
fi

if wants sanitize || wants fuzz; then
  step "configure and build (clang, ASan+UBSan, libFuzzer)"
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSKOPOS_FUZZ=ON -DSKOPOS_BPF=OFF -DSKOPOS_BENCH=OFF -DSKOPOS_WERROR=ON \
    -DSKOPOS_FUZZ_SECONDS="${SKOPOS_FUZZ_SECONDS:-60}"
  cmake --build build/fuzz -j "$(nproc)"
fi
if wants sanitize; then
  run_tier build/fuzz unit
  # The lock contention tests prove the 2,000-cycle goal in the gcc tier; under the
  # sanitizers (3x slower) a quarter of the cycles exercises the same code for memory
  # errors and keeps CI well under its hour.
  SKOPOS_CONTENTION_CYCLES=25 run_tier build/fuzz integration
  check_podman_leftovers
fi
wants fuzz && run_tier build/fuzz fuzz

step "all requested tiers passed (${tiers[*]}) in $(( $(date +%s) - started ))s"
