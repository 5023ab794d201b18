#!/usr/bin/env bash
# The Debian package, as an operator meets it (root; the privileged tier runs it):
# built and lintian-checked, installed with dpkg on this machine with the tracker asked
# for through debconf, each program run from where the package put it, the units
# verified, an operator's config change kept over a reinstall, then purged -- after
# which nothing of it may be left: no file, no enable link, no state, no debconf answer.
# It prints the package's size, its installed size and the time from `dpkg -i` to a
# running tracker.
#
# Usage: tests/package/package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "package_test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
command -v lintian > /dev/null || fail "lintian is not installed (tools/install-deps.sh installs it)"
package_state() { dpkg-query -W -f='${db:Status-Status}' skopos 2>/dev/null || true; }
case "$(package_state)" in
  installed|config-files|half-installed|half-configured|unpacked|triggers-*)
    fail "a skopos package is on this machine ($(package_state)); this test installs and purges its own and will not touch it" ;;
esac
# Files a package or `cmake --install` would own: not this test's to delete.
present=$(ls -d /etc/systemd/system/multi-user.target.wants/skopos-* /etc/systemd/system/skopos-* \
            /etc/systemd/system/timers.target.wants/skopos-* /var/lib/systemd/deb-systemd-helper-enabled/skopos-* \
            /usr/lib/systemd/system/skopos-* /etc/skopos /usr/sbin/skopos /usr/sbin/skopos-tracker \
            /var/lib/skopos 2>/dev/null || true)
[ -z "$present" ] || fail "skopos files are already installed here (remove them first): $present"
work=$(mktemp -d /tmp/skopos-package-XXXXXX)
tracker_pid=""
policy_made=no
textfile_dir_made=no
policy_marker="# skopos package_test: keeps services from starting while it runs"
cleanup() {
  [ -z "$tracker_pid" ] || kill "$tracker_pid" 2>/dev/null || true
  case "$(package_state)" in
    ""|not-installed) ;;
    *) SKOPOS_REMOVE_DURING_DRAIN=yes DEBIAN_FRONTEND=noninteractive dpkg --purge skopos > "$work/cleanup.log" 2>&1 ||
         { echo "package_test: the cleanup's purge failed:" >&2; cat "$work/cleanup.log" >&2; } ;;
  esac
  # The preseeded answer, gone as a purge leaves it.
  echo PURGE | debconf-communicate skopos > /dev/null 2>&1 || true
  [ "$policy_made" = no ] || rm -f /usr/sbin/policy-rc.d
  [ "$textfile_dir_made" = no ] || rmdir -p /var/lib/prometheus/node-exporter 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Where systemd runs, the install would start the real services: policy-rc.d forbids it
# for the test (deb-systemd-invoke asks it). One this test left after a SIGKILL carries
# its marker and is replaced; anyone else's is not touched.
if [ -d /run/systemd/system ]; then
  if [ -e /usr/sbin/policy-rc.d ] && ! grep -qF "$policy_marker" /usr/sbin/policy-rc.d; then
    fail "systemd runs here and /usr/sbin/policy-rc.d exists: the test cannot keep the services from starting"
  fi
  policy_made=yes
  printf '#!/bin/sh\n%s\nexit 101\n' "$policy_marker" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
fi

"$source_dir/tools/package.sh" "$build" "$work/out" > "$work/package.log" 2>&1 || { cat "$work/package.log"; fail "tools/package.sh"; }
deb=$(tail -1 "$work/package.log")
[ -f "$deb" ] || { cat "$work/package.log"; fail "tools/package.sh made no package"; }
# lintian --pedantic finds nothing today; a new warning is fixed or explained here.
if grep -q '^[EW]:' "$work/package.log"; then cat "$work/package.log"; fail "lintian reports errors or warnings"; fi
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\.##' | grep -v '/$' > "$work/files"
for want in /usr/sbin/skopos /usr/sbin/skopos-tracker /usr/bin/tracker-cli /etc/skopos/skopos.conf \
            /etc/skopos/tracker.conf /usr/lib/systemd/system/skopos-tracker.service \
            /usr/lib/systemd/system/skopos-agent.service /usr/share/skopos/prometheus/skopos-alerts.yml \
            /usr/share/skopos/grafana/skopos-dashboard.json \
            /usr/share/doc/skopos/copyright /usr/share/man/man8/skopos.8.gz /usr/share/man/man5/skopos.conf.5.gz \
            /usr/share/bash-completion/completions/skopos-tracker /usr/share/zsh/vendor-completions/_tracker-cli \
            /usr/lib/systemd/system/skopos-lock-metrics.service /usr/lib/systemd/system/skopos-lock-metrics.timer; do
  grep -qx "$want" "$work/files" || fail "the package lacks $want"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = $'/etc/skopos/skopos.conf\n/etc/skopos/tracker.conf' ] ||
  fail "the conffiles are not the two configs"

# The tracker asked for, the agent not.
echo 'skopos skopos/enable-units multiselect skopos-tracker' | debconf-set-selections
started=$(date +%s%N)
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
installed=$(date +%s%N)
wants=/etc/systemd/system/multi-user.target.wants
[ -L "$wants/skopos-tracker.service" ] || fail "skopos-tracker was asked for but not enabled"
[ ! -e "$wants/skopos-agent.service" ] || fail "skopos-agent was enabled without being asked for"
[ ! -e /etc/systemd/system/timers.target.wants/skopos-lock-metrics.timer ] ||
  fail "skopos-lock-metrics.timer was enabled without being asked for"

# The programs, from where the package put them.
for program in /usr/sbin/skopos /usr/sbin/skopos-tracker /usr/bin/tracker-cli; do
  "$program" --version | head -1 | grep -qx "$(basename "$program") $(dpkg-deb -f "$deb" Version)" ||
    fail "$program --version does not name the package's version"
done
/usr/bin/tracker-cli decode /proc/net/tcp > "$work/decode.out" || fail "tracker-cli decode /proc/net/tcp"
/usr/sbin/skopos agent --example-config | cmp -s - /etc/skopos/skopos.conf || fail "/etc/skopos/skopos.conf is not the agent's example"

# The man pages where man finds them, rendering without a warning; the completions
# where bash-completion loads them.
for page in skopos:8 skopos-tracker:8 tracker-cli:1 skopos.conf:5; do
  found=$(man -w "${page#*:}" "${page%%:*}" 2>&1) || fail "man cannot find ${page%%:*}(${page#*:}): $found"
  [ "$found" = "/usr/share/man/man${page#*:}/${page%%:*}.${page#*:}.gz" ] || fail "man finds ${page%%:*} at $found"
  warnings=$(MANWIDTH=100 man --warnings -l "$found" 2>&1 > /dev/null)
  [ -z "$warnings" ] || fail "man -l $found: $warnings"
done
completed=$(bash --norc -c 'source /usr/share/bash-completion/completions/skopos
  COMP_WORDS=(skopos lock st); COMP_CWORD=2; _skopos; echo "${COMPREPLY[*]}"')
[ "$completed" = status ] || fail "the installed bash completion offers '$completed' for 'skopos lock st'"
[ -f /usr/share/zsh/vendor-completions/_skopos ] || fail "no zsh completion"

# The tracker with the installed config (systemd is not PID 1 here, so started as its
# unit would, without the pin directory): up means its stream socket answers.
sock=$work/tracker.sock
/usr/sbin/skopos-tracker --config /etc/skopos/tracker.conf --source proc --docker-socket none --conntrack off \
  --stream-socket "$sock" > "$work/tracker.log" 2>&1 &
tracker_pid=$!
for _ in $(seq 1 100); do
  [ -S "$sock" ] && break
  sleep 0.05
done
[ -S "$sock" ] || { cat "$work/tracker.log"; fail "the installed tracker did not serve its socket within 5 s"; }
running=$(date +%s%N)
/usr/sbin/skopos-tracker --config /etc/skopos/tracker.conf --source proc --docker-socket none --conntrack off \
  --stream-socket "$work/once.sock" --once > "$work/once.out" 2>&1 || { cat "$work/once.out"; fail "skopos-tracker --once"; }
grep -q '"containers"' "$work/once.out" || { cat "$work/once.out"; fail "skopos-tracker --once printed no snapshot"; }
kill "$tracker_pid" && wait "$tracker_pid" 2>/dev/null || true
tracker_pid=""

# The installed units, with the installed programs.
systemd-analyze verify /usr/lib/systemd/system/skopos-tracker.service /usr/lib/systemd/system/skopos-agent.service \
  /usr/lib/systemd/system/skopos-lock-metrics.service /usr/lib/systemd/system/skopos-lock-metrics.timer \
  > "$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify of the installed units"; }

# Asked for later: dpkg-reconfigure enables the agent and the lock metrics timer too.
echo 'skopos skopos/enable-units multiselect skopos-tracker, skopos-agent, skopos-lock-metrics' | debconf-set-selections
DEBIAN_FRONTEND=noninteractive dpkg-reconfigure skopos > "$work/reconfigure.log" 2>&1 ||
  { cat "$work/reconfigure.log"; fail "dpkg-reconfigure"; }
[ -L "$wants/skopos-agent.service" ] || { cat "$work/reconfigure.log"; fail "dpkg-reconfigure did not enable the agent"; }
[ -L /etc/systemd/system/timers.target.wants/skopos-lock-metrics.timer ] ||
  { cat "$work/reconfigure.log"; fail "dpkg-reconfigure did not enable the lock metrics timer"; }

# A reconfigure sets exactly what is selected: the others are disabled.
echo 'skopos skopos/enable-units multiselect skopos-agent' | debconf-set-selections
DEBIAN_FRONTEND=noninteractive dpkg-reconfigure skopos > "$work/reconfigure2.log" 2>&1 ||
  { cat "$work/reconfigure2.log"; fail "dpkg-reconfigure"; }
[ -L "$wants/skopos-agent.service" ] || fail "a reconfigure that kept the agent selected disabled it"
[ ! -e "$wants/skopos-tracker.service" ] || fail "a reconfigure that unselected the tracker left it enabled"
[ ! -e /etc/systemd/system/timers.target.wants/skopos-lock-metrics.timer ] ||
  fail "a reconfigure that unselected the timer left it enabled"
systemctl enable skopos-tracker.service > /dev/null 2>&1

# An operator's changes survive a reinstall: a config edit (a conffile: dpkg keeps
# it) and a service disabled by hand -- even with a debconf answer that says otherwise
# (an upgrade never enables or disables anything).
echo 'log-level = debug' >> /etc/skopos/tracker.conf
systemctl disable skopos-tracker.service > /dev/null 2>&1
[ ! -e "$wants/skopos-tracker.service" ] || fail "systemctl disable left the tracker enabled"
echo 'skopos skopos/enable-units multiselect skopos-tracker, skopos-lock-metrics' | debconf-set-selections
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb" > "$work/dpkg2.log" 2>&1 || { cat "$work/dpkg2.log"; fail "reinstall"; }
grep -qx 'log-level = debug' /etc/skopos/tracker.conf || fail "a reinstall lost the operator's change to tracker.conf"
[ ! -e "$wants/skopos-tracker.service" ] || fail "a reinstall enabled the tracker the operator had disabled"
[ ! -e /etc/systemd/system/timers.target.wants/skopos-lock-metrics.timer ] || fail "a reinstall enabled the timer"
[ -L "$wants/skopos-agent.service" ] || fail "a reinstall disabled the agent"

# State the services would have made, for the purge to remove; the lock metrics file
# the timer writes (it must not outlive the package: nothing would keep it current).
mkdir -p /var/lib/skopos && echo '{}' > /var/lib/skopos/journal.test
[ -d /var/lib/prometheus/node-exporter ] || { textfile_dir_made=yes; mkdir -p /var/lib/prometheus/node-exporter; }
echo 'skopos_lock_status_up 1' > /var/lib/prometheus/node-exporter/skopos-locks.prom
# A drain in progress refuses the removal: nothing would be left to bring the host
# back. With no drain, a plain remove goes through (and keeps the config).
journal_line='{"drain_id":"d-1","phase":"fence","fencing_token":7,"boot_id":"b","at":1,'
journal_line=$journal_line'"facts":{"kind":"DRAIN","tier":"worker","lock":"drain","host_lock_revision":"1","mesos_mode":"none"}}'
printf '%s\n' "$journal_line" > /var/lib/skopos/journal
if DEBIAN_FRONTEND=noninteractive dpkg --remove skopos > "$work/refused.log" 2>&1; then
  cat "$work/refused.log"; fail "the package was removed during a drain"
fi
grep -q '"in_progress":true' "$work/refused.log" || { cat "$work/refused.log"; fail "the refusal does not show the drain"; }
grep -q "SKOPOS_REMOVE_DURING_DRAIN=yes apt remove skopos" "$work/refused.log" || { cat "$work/refused.log"; fail "the refusal does not say what to do"; }
[ "$(package_state)" = installed ] || fail "a refused removal left the package $(package_state)"
rm /var/lib/skopos/journal
DEBIAN_FRONTEND=noninteractive dpkg --remove skopos > "$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "a remove with no drain"; }
[ "$(package_state)" = config-files ] || fail "after a remove the package is $(package_state)"
[ -f /etc/skopos/skopos.conf ] || fail "a remove took the config"
printf '%s\n' "$journal_line" > /var/lib/skopos/journal
DEBIAN_FRONTEND=noninteractive dpkg --purge skopos > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
left=""
while read -r file; do [ ! -e "$file" ] || left+=" $file"; done < "$work/files"
[ -z "$left" ] || fail "the purge left:$left"
[ ! -e /var/lib/prometheus/node-exporter/skopos-locks.prom ] || fail "the lock metrics file outlived the package"
for path in /etc/skopos /var/lib/skopos /etc/systemd/system/timers.target.wants/skopos-lock-metrics.timer /var/lib/systemd/deb-systemd-helper-enabled/skopos-tracker.service.dsh-also \
            /var/lib/systemd/deb-systemd-helper-enabled/skopos-agent.service.dsh-also "$wants/skopos-tracker.service" \
            "$wants/skopos-agent.service" /etc/systemd/system/skopos-tracker.service /etc/systemd/system/skopos-agent.service; do
  [ ! -e "$path" ] && [ ! -L "$path" ] || fail "the purge left $path"
done
if debconf-show skopos 2>/dev/null | grep -q .; then fail "the purge left debconf answers: $(debconf-show skopos)"; fi

printf 'package_test: passed. package %s bytes, installed %s KiB; dpkg -i %d ms, dpkg -i to a running tracker %d ms\n' \
  "$(stat -c %s "$deb")" "$(dpkg-deb -f "$deb" Installed-Size)" $(( (installed - started) / 1000000 )) \
  $(( (running - started) / 1000000 ))
