#!/usr/bin/env bash
# Regenerates the checked-in bpf/vmlinux/<arch>/vmlinux.h from this host's kernel BTF.
#
# The build never does this by itself: CO-RE programs compile against the checked-in
# header and are relocated at load time to whatever kernel runs them, so the build does
# not depend on the build host's kernel. Run this only to pick up types that a newer
# kernel added and a program needs, and commit the result.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
btf=${1:-/sys/kernel/btf/vmlinux}
case "$(uname -m)" in
  x86_64) arch=x86 ;;
  aarch64) arch=arm64 ;;
  *) echo "gen-vmlinux-h: unsupported arch $(uname -m)" >&2; exit 1 ;;
esac
[ -r "$btf" ] || { echo "gen-vmlinux-h: $btf not readable (kernel built without CONFIG_DEBUG_INFO_BTF?)" >&2; exit 1; }
out=$top/bpf/vmlinux/$arch/vmlinux.h
mkdir -p "$(dirname "$out")"
bpftool btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "gen-vmlinux-h: wrote $out from $btf ($(uname -r))"
