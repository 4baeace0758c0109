#!/usr/bin/env bash
# Re-pack the apache-tvm wheel for a lent GPU machine (scripts/collect_cuda.sh), which can carry
# at most 64 MiB a call while the wheel is 100 MB: .devcarry/A holds libtvm_compiler.so
# (xz with the x86 filter: 259 MB -> 58 MB), .devcarry/B the rest of the wheel without its
# CUTLASS headers, the apache-tvm-ffi wheel for the device's Python (3.12), and the small
# wheels tensorcost needs beyond the device image (archspec, nvidia-ml-py, pydantic).
#   scripts/pack_tvm_for_device.sh          (then: device call 1 carries .devcarry/A and runs
#   `mkdir -p /root/tvm-cache && xz -T0 -dc .devcarry/A/libtvm_compiler.so.xz > /root/tvm-cache/libtvm_compiler.so`,
#   call 2 on the same warm machine carries .devcarry/B and runs scripts/collect_cuda.sh)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -qs '^/.devcarry/' "$repo/.git/info/exclude" || { mkdir -p "$repo/.git/info"; echo /.devcarry/ >> "$repo/.git/info/exclude"; }
mkdir -p "$repo/.devcarry/A" "$repo/.devcarry/B"
"$repo/.venv/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 -d "$work" \
  apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post1
(cd "$work" && unzip -q apache_tvm-*.whl)
xz -T0 -9e --x86 --lzma2=preset=9e,dict=256MiB -c "$work/tvm/lib/libtvm_compiler.so" > "$repo/.devcarry/A/libtvm_compiler.so.xz"
(cd "$work" && tar cf - --exclude=tvm/3rdparty --exclude=tvm/lib/libtvm_compiler.so tvm apache_tvm-*.dist-info | xz -T0 -9e) > "$repo/.devcarry/B/tvm-py.tar.xz"
cp "$work"/apache_tvm_ffi-*.whl "$repo/.devcarry/B/"
"$repo/.venv/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$repo/.devcarry/B" \
  archspec==0.2.7 nvidia-ml-py==13.615.71 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection typing-extensions
du -b "$repo"/.devcarry/*/*
