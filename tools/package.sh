#!/usr/bin/env bash
# Builds the Debian package from a configured and built tree, checks it with lintian,
# and prints its sizes.
#
# Usage: tools/package.sh [BUILD_DIR [OUT_DIR]]   (default: build, BUILD_DIR/package)
# The package lands in OUT_DIR as skopos_<version>_<arch>.deb; its path is the last line
# of the output. Fails on a lintian error; warnings are printed.
set -euo pipefail
build=${1:-build}
out=${2:-$build/package}
if [ ! -f "$build/CPackConfig.cmake" ]; then
  echo "package.sh: $build/CPackConfig.cmake not found: configure and build first" \
       "(cmake -S . -B $build && cmake --build $build)" >&2
  exit 2
fi
mkdir -p "$out"
rm -f "$out"/skopos_*.deb
cpack --config "$build/CPackConfig.cmake" -B "$out" > "$out/cpack.log" 2>&1 || { cat "$out/cpack.log" >&2; exit 1; }
deb=$(ls "$out"/skopos_*.deb)
if command -v lintian > /dev/null; then
  # Root is what CI runs as; lintian only warns about it.
  report=$(lintian --pedantic "$deb" 2>&1 | grep -v 'running with root privileges' || true)
  [ -z "$report" ] || printf 'lintian:\n%s\n' "$report"
  if grep -q '^E:' <<< "$report"; then
    echo "package.sh: lintian found errors in $deb" >&2
    exit 1
  fi
else
  echo "package.sh: lintian is not installed (tools/install-deps.sh installs it): not checked" >&2
fi
printf 'package: %s bytes; installed size: %s KiB\n' "$(stat -c %s "$deb")" \
       "$(dpkg-deb -f "$deb" Installed-Size)"
echo "$deb"
