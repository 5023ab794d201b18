#!/usr/bin/env bash
# The main job: take a host out of service without failing a request, and bring it back.
#
# Builds Skopos, starts a two-host cluster in miniature (tools/drain-sandbox: podman
# containers on this host behind haproxy, their other replicas in a network namespace,
# etcd, skopos-tracker on eBPF, and the Mesos and Marathon simulators), runs a bounded
# load through haproxy, drains this host with `skopos drain` (live progress on screen),
# brings it back with `skopos undrain`, and prints a summary: requests served and failed,
# drain time, connections at fence time. Everything it started is removed on exit.
# Without root it can only show this machine's connections from /proc.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target skopos skopos-tracker tracker-cli skopos-test-server skopos-load

if [ "$(id -u)" -ne 0 ]; then
  printf '\nThe drain demo needs root (containers, eBPF, iptables, network namespaces): sudo tools/demo.sh\n'
  printf '\n== Meanwhile: connections per network namespace from /proc (skopos-tracker --once --source proc)\n\n'
  build/bin/skopos-tracker --once --source proc --docker-socket none --conntrack off --format table
  exit 0
fi

export SKOPOS_SANDBOX=/tmp/skopos-demo-sandbox
dir=$SKOPOS_SANDBOX
sandbox=tools/drain-sandbox
load_pids=()
cleanup() {
  for pid in "${load_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$sandbox" down
}
trap cleanup EXIT
"$sandbox" down  # what an interrupted demo left behind

step() { printf '\n== %s\n\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
# A value of the sandbox's description by its keys: `json apps web frontend`.
json() {
  python3 -c 'import functools, json, sys; print(functools.reduce(lambda d, k: d[k], sys.argv[2:], json.load(open(sys.argv[1]))))' \
    "$dir/sandbox.json" "$@"
}

step "Starting the sandbox: host A (this host: podman containers), host B (a namespace), haproxy, etcd, skopos-tracker, mesos-sim, marathon-sim"
"$sandbox" up --apps 2 >/dev/null
web=$(json apps web frontend)
api=$(json apps api frontend)
printf 'apps: /web behind haproxy at %s, /api at %s; one replica on each host\n' "$web" "$api"

step "What the tracker counts on host A"
show "tracker-cli snapshot"
build/bin/tracker-cli snapshot --socket "$dir/tracker.sock"

step "The plan, changing nothing"
show "skopos drain --dry-run"
"$sandbox" skopos drain --dry-run --log-level warning

step "Load: 2 x 8,000 requests through haproxy (keep-alive and fresh connections; every 50th takes 3 s)"
for target in "$web" "$api"; do
  build/bin/skopos-load --target "$target" --workers 8 --requests 8000 --duration 240 --slow-every 50 \
    --slow-ms 3000 >"$dir/load-$target.json" &
  load_pids+=($!)
done
sleep 3

step "Draining host A under load"
show "skopos drain"
started=$(date +%s.%N)
"$sandbox" skopos drain --events "$dir/drain.jsonl" --progress-interval 1s
drain_seconds=$(python3 -c "import time; print('%.1f' % (time.time() - $started))")

step "Host A is out of service"
show "skopos drain --status"
"$sandbox" skopos drain --status
show "skopos fence show"
build/bin/skopos fence show --chain SKOPOS-SB
show "skopos maintenance status"
build/bin/skopos maintenance status --mesos-master "$(json mesos)" --etcd-endpoints "$(json etcd)"

step "Bringing host A back"
show "skopos undrain"
"$sandbox" skopos undrain --events "$dir/undrain.jsonl"

for pid in "${load_pids[@]}"; do wait "$pid" || true; done
load_pids=()

step "Summary"
python3 - "$dir" "$drain_seconds" "$web" "$api" <<'PY'
import json, sys
d, drain_seconds, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
served = failed = 0
for t in targets:
    load = json.load(open("%s/load-%s.json" % (d, t)))
    served += load["served"]
    failed += load["failed"]
result = [json.loads(l) for l in open(d + "/drain.jsonl") if '"event":"result"' in l][-1]
print("requests served:               %d" % served)
print("requests failed:               %d" % failed)
print("drain time:                    %s s (wall, skopos drain: %.1f s)" % (drain_seconds, result["took_ms"] / 1000))
print("connections at fence time:     %s" % result.get("connections_at_fence", "?"))
print("connections reached zero:      %s (after %.1f s)" % ("yes" if result["connections_zero"] else "no, deadline",
                                                          result.get("waited_ms", 0) / 1000))
sys.exit(1 if failed else 0)
PY
