#!/usr/bin/env bash
# GPU end-to-end check of the live backend; needs a GPU, so it is not part of ctest.
#   tests/gpu/run.sh [BUILD_DIR]        (default: build; needs orrery and live/cuda/orrery-gpu-probe)
# Starts a one-node local cluster (temp dir, random port), runs two concurrent
# `orrery task run --num-gpus 1 -- orrery-gpu-probe` tasks and checks that each kernel ran and, on a
# node with two or more GPUs, that the tasks saw different CUDA_VISIBLE_DEVICES and PCI bus ids.
# Without a GPU it prints "no GPU: skipped" and exits 0. ORRERY_GPU_PROBE overrides the probe
# command (used to test this script on a machine without GPUs, with --num-gpus given in
# ORRERY_GPU_START_ARGS).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
orrery=$build/orrery
probe=${ORRERY_GPU_PROBE:-$build/live/cuda/orrery-gpu-probe}

shopt -s nullglob
devs=(/dev/nvidia[0-9]*)
if [[ -z ${ORRERY_GPU_PROBE:-} ]] && (( ${#devs[@]} == 0 )); then
  echo "no GPU: skipped"
  exit 0
fi
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -x $orrery ]] || fail "$orrery is not built"
[[ -x $probe ]] || fail "$probe is not built (configure where nvcc is found)"

# The probe alone sees every GPU this machine offers the node: one JSON line each.
ngpu=$("$probe" | grep -c '"kernel_ok": true') || fail "the probe failed outside the cluster"
echo "GPUs visible: $ngpu"

tmp=$(mktemp -d)
cleanup() { "$orrery" stop --temp-dir "$tmp/root" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
# shellcheck disable=SC2086  # ORRERY_GPU_START_ARGS is a list of words
"$orrery" start --head --port "$port" --temp-dir "$tmp/root" --dashboard-port 0 --node-name gpu-node \
  ${ORRERY_GPU_START_ARGS:-} || fail "orrery start"

pids=()
for i in 1 2; do
  if [[ -n ${ORRERY_GPU_PROBE:-} ]]; then
    run=(-- "$probe" --hold-ms 2000)
  else
    run=(--builtin gpu-probe -- --hold-ms 2000)  # the built-in CUDA task
  fi
  "$orrery" task run --temp-dir "$tmp/root" --num-gpus 1 "${run[@]}" \
    >"$tmp/task$i.out" 2>"$tmp/task$i.err" &
  pids+=($!)
done
for i in 1 2; do
  wait "${pids[$((i - 1))]}" || { cat "$tmp/task$i.err" >&2; fail "task $i exited non-zero"; }
done

field() { sed -n "s/.*\"$2\": \"\([^\"]*\)\".*/\1/p" "$tmp/task$1.out" | head -n1; }
for i in 1 2; do
  cat "$tmp/task$i.out"
  [[ $(grep -c . "$tmp/task$i.out") == 1 ]] || fail "task $i saw other than one device"
  grep -q '"kernel_ok": true' "$tmp/task$i.out" || fail "task $i: the kernel did not run"
  [[ -n $(field "$i" cuda_visible_devices) ]] || fail "task $i: no CUDA_VISIBLE_DEVICES"
done
if (( ngpu >= 2 )); then
  [[ $(field 1 cuda_visible_devices) != $(field 2 cuda_visible_devices) ]] ||
    fail "both tasks got CUDA_VISIBLE_DEVICES=$(field 1 cuda_visible_devices)"
  [[ $(field 1 pci_bus_id) != $(field 2 pci_bus_id) ]] ||
    fail "both tasks ran on PCI bus id $(field 1 pci_bus_id)"
  echo "OK: two concurrent GPU tasks ran on different devices"
else
  echo "OK: one GPU: both tasks ran their kernel on it (one after the other)"
fi
