#!/usr/bin/env bash
# The main job, as far as it exists today: builds Skopos, starts two real containers (a
# bridge-mode one behind a published port and a host-mode one) under a private podman
# that serves the Docker Engine API, opens connections to them, and shows what
# skopos-tracker counts -- per container and per network namespace, inbound and
# outbound, from eBPF. Everything it starts is removed on exit.
# Without root it shows this machine's namespaces from /proc instead.
# Then the cluster locks: a private etcd on loopback and `skopos lock` taking, waiting
# for and giving back a tier's reboot slot, and this host's lock; and Mesos maintenance
# with `skopos maintenance` against tools/mesos-sim.
# (The drain issue turns this into the full drain demo.)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target skopos-tracker tracker-cli skopos
cli=build/bin/tracker-cli

# The cluster locks with a private single-member etcd on loopback ports, then Mesos
# maintenance against tools/mesos-sim (Mesos has no Debian package).
etcd_pid=
sim_pid=
edir=
lock_cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null || true
  [ -n "$edir" ] && rm -rf "$edir"
  etcd_pid=
  sim_pid=
  edir=
}
lock_demo() {
  local port skopos=build/bin/skopos
  edir=$(mktemp -d /tmp/skopos-demo-etcd.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  etcd --data-dir "$edir/data" --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((port + 1))" --logger zap --log-outputs "$edir/etcd.log" \
    >/dev/null 2>&1 &
  etcd_pid=$!
  # skopos lock COMMAND ARGS... against the private etcd.
  lock() { "$skopos" lock "$1" --etcd-endpoints "http://127.0.0.1:$port" --log-level warning "${@:2}"; }
  for _ in $(seq 100); do lock status >/dev/null 2>&1 && break; sleep 0.1; done

  printf '\n== Cluster locks on etcd (a private etcd on 127.0.0.1:%s)\n' "$port"
  printf '\n$ skopos lock set-max reboot worker 1\n'; lock set-max reboot worker 1
  printf '\n$ skopos lock acquire reboot worker --token REBOOT   (this machine)\n'
  lock acquire reboot worker --token REBOOT
  printf '\n$ skopos lock acquire reboot worker --machine-id other-host --timeout 1s\n'
  lock acquire reboot worker --machine-id other-host --timeout 1s || printf '(exit %d: timed out waiting)\n' $?
  printf '\n$ skopos lock host-lock REBOOT\n'; lock host-lock REBOOT
  printf '\n$ skopos lock status   (no driver keeps a heartbeat here, so the holder shows stale)\n'
  lock status
  printf '\n$ skopos lock release reboot worker; skopos lock host-unlock REBOOT\n'
  lock release reboot worker
  lock host-unlock REBOOT

  # Two Mesos masters (the CLI is given the follower) and three agents, simulated.
  cat >"$edir/cluster.json" <<'JSON'
{"masters": 2, "agents": [
  {"id": "S0", "hostname": "worker-1", "ip": "127.0.0.2"},
  {"id": "S1", "hostname": "worker-2", "ip": "127.0.0.3"},
  {"id": "S2", "hostname": "proxy-1", "ip": "127.0.0.4"}]}
JSON
  tools/mesos-sim "$edir/cluster.json" >"$edir/sim.json" &
  sim_pid=$!
  for _ in $(seq 100); do [ -s "$edir/sim.json" ] && break; sleep 0.1; done
  local follower
  follower=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["masters"][1])' "$edir/sim.json")
  maintenance() {
    "$skopos" maintenance "$1" --mesos-master "$follower" --etcd-endpoints "http://127.0.0.1:$port" \
      --log-level warning "${@:2}"
  }
  printf '\n== Mesos maintenance (tools/mesos-sim; the CLI is given a follower and finds the leader)\n'
  printf '\n$ skopos maintenance schedule "worker-*" --duration 2h\n'; maintenance schedule 'worker-*' --duration 2h
  printf '\n$ skopos maintenance down worker-1\n'; maintenance down worker-1
  printf '\n$ skopos maintenance down worker-1   (again: Mesos refuses, in its words)\n'
  maintenance down worker-1 || printf '(exit %d: refused)\n' $?
  printf '\n$ skopos maintenance status\n'; maintenance status
  printf '\n$ skopos maintenance up worker-1; skopos maintenance cancel worker-2\n'
  maintenance up worker-1
  maintenance cancel worker-2
  lock_cleanup
}

tracker=build/bin/skopos-tracker
if [ "$(id -u)" -ne 0 ]; then
  printf '\n== Not root: connections per network namespace from /proc (%s --once --source proc)\n\n' "$tracker"
  "$tracker" --once --source proc --docker-socket none --conntrack off --format table
  trap lock_cleanup EXIT
  lock_demo
  exit 0
fi

dir=$(mktemp -d /tmp/skopos-demo.XXXXXX)
export CONTAINERS_CONF=$dir/containers.conf
podman=(podman --root "$dir/root" --runroot "$dir/run" --storage-driver vfs --runtime runc
        --cgroup-manager cgroupfs --events-backend file)
service_pid=
tracker_pid=
cleanup() {
  lock_cleanup
  [ -n "$tracker_pid" ] && kill "$tracker_pid" 2>/dev/null && wait "$tracker_pid" 2>/dev/null || true
  exec 3>&- 4>&- 5>&- 6>&- 7>&- 2>/dev/null || true
  "${podman[@]}" rm --force --all --time 0 >/dev/null 2>&1 || true
  [ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null || true
  "${podman[@]}" rmi --force --all >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

# crun fails on this kernel's hybrid cgroup layout (runc works), containers cannot
# raise RLIMIT_NOFILE here, and no registry is reachable: a private config and a
# busybox image built from the busybox-static package.
cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mkdir -p "$dir/image/bin"
cp /bin/busybox "$dir/image/bin/"
for applet in sh httpd sleep; do ln -s busybox "$dir/image/bin/$applet"; done
tar -C "$dir/image" -cf "$dir/image.tar" .
"${podman[@]}" import "$dir/image.tar" localhost/skopos-demo:latest >/dev/null

socket=$dir/docker.sock
"${podman[@]}" system service --time=0 "unix://$socket" 2>/dev/null &
service_pid=$!
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done

published=18480
host_port=18481
printf '\n== Two containers: web (bridge, 127.0.0.1:%s -> 8080) and edge (host network, port %s)\n' "$published" "$host_port"
"${podman[@]}" run -d --name web -p "127.0.0.1:$published:8080" -e MARATHON_APP_ID=/demo/web \
  localhost/skopos-demo:latest /bin/httpd -f -p 8080 >/dev/null
"${podman[@]}" run -d --name edge --network host -e MARATHON_APP_ID=/demo/edge \
  localhost/skopos-demo:latest /bin/httpd -f -p "127.0.0.1:$host_port" >/dev/null
sleep 0.5

printf '== Opening 3 connections to web and 2 to edge (held open by this script)\n'
exec 3<>"/dev/tcp/127.0.0.1/$published" 4<>"/dev/tcp/127.0.0.1/$published" 5<>"/dev/tcp/127.0.0.1/$published"
exec 6<>"/dev/tcp/127.0.0.1/$host_port" 7<>"/dev/tcp/127.0.0.1/$host_port"

printf '\n== What the tracker sees (%s --once --docker-socket %s --format table)\n\n' "$tracker" "$socket"
"$tracker" --once --docker-socket "$socket" --format table 2>&1

printf '\n== The same as JSON for scripts, web only (--format json)\n\n'
"$tracker" --once --docker-socket "$socket" --log-level warning |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps([c for c in d["containers"] if c["name"]=="web"], indent=1))'

printf '\n== The tracker as a daemon, publishing on %s (tracker-cli snapshot)\n\n' "$dir/tracker.sock"
# (Not inheriting this script's connections: the tracker must not hold them open.)
"$tracker" --docker-socket "$socket" --stream-socket "$dir/tracker.sock" --log-level warning \
  3>&- 4>&- 5>&- 6>&- 7>&- &
tracker_pid=$!
for _ in $(seq 100); do "$cli" snapshot --socket "$dir/tracker.sock" >/dev/null 2>&1 && break; sleep 0.1; done
"$cli" snapshot --socket "$dir/tracker.sock"

printf '\n== Waiting for web to drain (tracker-cli watch web --until-zero); its connections close in 2 s\n\n'
"$cli" watch web --until-zero --timeout 30s --socket "$dir/tracker.sock" 3>&- 4>&- 5>&- 6>&- 7>&- &
watch_pid=$!
sleep 2
exec 3>&- 4>&- 5>&-
wait "$watch_pid"
printf '\n(live view of the same: %s top --socket SOCKET)\n' "$cli"

lock_demo
