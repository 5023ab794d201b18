#!/usr/bin/env bash
# Installs everything Skopos needs to build and test, from Debian 12 packages only.
# Idempotent: packages already present are left alone, and apt is not touched at all
# when nothing is missing.
set -euo pipefail

packages=(
  # Toolchain and build.
  build-essential cmake ninja-build pkg-config git
  # BPF: clang compiles *.bpf.c, bpftool generates skeletons, libbpf loads them.
  clang llvm libclang-rt-14-dev libbpf-dev bpftool libelf-dev zlib1g-dev
  # JSON (simdjson parses what clients and servers send us; tests parse our output).
  libsimdjson-dev
  # Tests and benchmarks.
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  # Tracker: conntrack source and the Docker Engine API client (Asio over a Unix socket).
  libnetfilter-conntrack-dev libmnl-dev libboost-dev
  # Privileged tests: network namespaces, `ss` to cross-check the decoder, conntrack
  # and iptables for the DNAT path.
  iproute2 conntrack iptables
  # Container integration tests: podman serves the Docker Engine API, runc runs the
  # containers, busybox-static is the root filesystem of the test image.
  podman runc busybox-static
  # The systemd unit is checked with systemd-analyze; tracker-cli top is driven in tmux.
  systemd tmux
  # Driver: TLS for the HTTP client (openssl makes the test certificates); a real etcd
  # for the lock tests; python3 runs the Mesos and Marathon simulators in tools/.
  libssl-dev openssl etcd-server etcd-client python3
  # Maintenance windows in IANA time zones: Howard Hinnant's date library (the
  # <chrono> time zones that GCC 12's libstdc++ lacks) over the system's tzdata.
  libhowardhinnant-date-dev libdate-tz3 tzdata
  # Health gates: alert selectors' regexes in RE2 (Alertmanager's dialect, linear time);
  # tested against a real Prometheus and Alertmanager.
  libre2-dev prometheus prometheus-alertmanager
  # A real ZooKeeper (with its Java runtime) for the health checks' tests; haproxy is
  # the balancer in front of the drained host in the drain tests.
  zookeeper haproxy
  # The Debian package (tools/package.sh, tests/package): CPack builds it, dpkg-shlibdeps
  # (dpkg-dev) computes its dependencies, lintian checks it as Debian would, and the
  # install test drives debconf and deb-systemd-helper (init-system-helpers).
  dpkg-dev lintian debconf init-system-helpers
  # The man pages are rendered (man-db, groff) and the completions run (bash-completion,
  # zsh) by the tests.
  man-db groff-base bash-completion zsh
  # The arm64 tier (tools/test.sh arm64): Debian's cross compiler, qemu-user to run what
  # it builds, and the arm64 libraries the decoder and tracker-cli link, through
  # multiarch (added below). libsimdjson-dev cannot be installed for two architectures
  # at once; its arm64 files are unpacked under $cross_root instead (see the end).
  g++-aarch64-linux-gnu qemu-user libboost-dev:arm64 libnetfilter-conntrack-dev:arm64
  libgtest-dev:arm64 libssl-dev:arm64 libsimdjson14:arm64
)
# Where the arm64 simdjson development files are unpacked (cmake/toolchains/ points here).
cross_root=/opt/skopos-cross/aarch64

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# The arm64 simdjson headers, CMake files and library link, from the Debian package's
# files unpacked rather than installed; its shared library is libsimdjson14:arm64's.
unpack_cross_simdjson() {
  local marker=$cross_root/usr/lib/aarch64-linux-gnu/cmake/simdjson/simdjson-config.cmake
  [ -f "$marker" ] && return 0
  local scratch
  scratch=$(mktemp -d) || return 1
  if ! (cd "$scratch" && apt-get download -q libsimdjson-dev:arm64 >/dev/null 2>&1); then
    echo "install-deps: cannot download libsimdjson-dev:arm64" >&2
    rm -rf "$scratch"
    return 1
  fi
  # Unpacked beside, then moved into place: an interrupted run leaves no half tree
  # that the marker check above would take for a whole one.
  rm -rf "$cross_root.new" && mkdir -p "$cross_root.new" &&
    dpkg-deb -x "$scratch"/libsimdjson-dev_*_arm64.deb "$cross_root.new" || {
    echo "install-deps: cannot unpack libsimdjson-dev:arm64 into $cross_root.new" >&2
    rm -rf "$scratch" "$cross_root.new"
    return 1
  }
  rm -rf "$scratch"
  local lib
  for lib in /usr/lib/aarch64-linux-gnu/libsimdjson.so.*; do
    ln -sf "$lib" "$cross_root.new/usr/lib/aarch64-linux-gnu/$(basename "$lib")" || return 1
  done
  rm -rf "$cross_root" && mv "$cross_root.new" "$cross_root" || return 1
  echo "install-deps: unpacked libsimdjson-dev:arm64 under $cross_root"
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  if [ "$(id -u)" -eq 0 ]; then
    unpack_cross_simdjson || exit 1
  fi
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
case " $(dpkg --print-foreign-architectures | tr '\n' ' ') " in
  *" arm64 "*) ;;
  *) dpkg --add-architecture arm64 ;;
esac
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
unpack_cross_simdjson || exit 1
