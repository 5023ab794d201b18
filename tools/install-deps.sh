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
  # A real ZooKeeper (with its Java runtime) for the health checks' tests; haproxy is
  # the balancer in front of the drained host in the drain tests.
  zookeeper haproxy
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
