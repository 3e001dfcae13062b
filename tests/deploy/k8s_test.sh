#!/usr/bin/env bash
# The Kubernetes manifests of live/deploy/k8s/: schema validation and the contract checks of
# k8s_check.py (in the test venv that `bootstrap.sh --test` makes, with kubernetes-validate),
# every orrery flag the containers pass known to the built binary, the autoscaler ConfigMap
# loaded by the real config loader, and the counter Job's exact command run against a local
# cluster shaped like the pods (a head with no CPUs, a worker node of the ConfigMap's type):
# it must print the counter's five lines and exit 0 (the job SUCCEEDED); the same command with
# a failing entrypoint must exit 1.
# Usage: k8s_test.sh ORRERY_BINARY COUNTER_BINARY SOURCE_DIR
#   venv: $ORRERY_TEST_VENV, else SOURCE_DIR/.venv-test; exit 77 (skipped) without it outside CI.
set -u
orrery=$(readlink -f "$1"); counter=$(readlink -f "$2"); src="$3"
venv="${ORRERY_TEST_VENV:-$src/.venv-test}"
if ! "$venv/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' 2> /dev/null; then
  msg="no test venv with kubernetes-validate at $venv (./bootstrap.sh --test creates it)"
  [ "${CI:-}" = true ] && { echo "FAIL: $msg"; exit 1; }
  echo "SKIP: $msg"; exit 77
fi
tmp=$(mktemp -d)
root="$tmp/root"
cleanup() { "$orrery" stop --temp-dir "$root" > /dev/null 2>&1; "$orrery" stop --temp-dir "$tmp/asroot" > /dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
source "$src/tests/deploy/flags.sh"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$venv/bin/python" "$src/tests/deploy/k8s_check.py" "$src" "$tmp" || fail "k8s_check.py"

# Every flag of the containers' command lines exists.
bad=0
for f in "$tmp"/command0.txt "$tmp"/command1.txt "$tmp"/command2.txt; do
  [ -f "$f" ] || fail "k8s_check.py wrote no $f"
  mapfile -t words < "$f"
  [ "${words[0]}" = orrery ] || fail "a container command does not start with orrery: ${words[*]}"
  check_flags "$orrery" "k8s: orrery ${words[1]}" "${words[@]:1}" || bad=1
done
[ "$bad" = 0 ] || fail "a manifest passes a flag orrery does not know"
echo "ok: every flag in the containers' commands is an orrery flag"

# The ConfigMap's autoscaler.yaml through the real loader (a head that runs it, then stops).
out=$("$orrery" start --head --port 0 --dashboard-port 0 --num-cpus 1 --temp-dir "$tmp/asroot" \
      --autoscaler-config "$tmp/autoscaler.yaml" 2>&1) || fail "the head refused the ConfigMap's autoscaler.yaml: $out"
"$orrery" stop --temp-dir "$tmp/asroot" > /dev/null
echo "ok: the autoscaler ConfigMap loads"

# The Job against a cluster shaped like the pods.
python3 -c "import secrets; print(secrets.token_hex(32))" > "$tmp/token"
port=$(free_port)
"$orrery" start --head --port "$port" --dashboard-port 0 --num-cpus 0 --temp-dir "$root" \
  --token-file "$tmp/token" > "$tmp/head.log" 2>&1 || { cat "$tmp/head.log"; fail "start the head"; }
"$orrery" start --address "127.0.0.1:$port" --num-cpus 2 --labels '{"node_type": "cpu-worker"}' \
  --node-name worker-0 --temp-dir "$root" --token-file "$tmp/token" > "$tmp/node.log" 2>&1 ||
  { cat "$tmp/node.log"; fail "start the worker node"; }
mapfile -t words < "$tmp/command2.txt"
words=("${words[@]/#--address=orrery-head:6379/--address=127.0.0.1:$port}")
words=("${words[@]/#\/opt\/orrery\/share\/orrery\/examples\/counter/$counter}")
[ "${words[0]}" = orrery ] || fail "the Job does not run orrery"
ORRERY_TOKEN=$(cat "$tmp/token") timeout 60 "$orrery" "${words[@]:1}" > "$tmp/job.out" 2> "$tmp/job.err"
rc=$?
[ "$rc" = 0 ] || { cat "$tmp/job.out" "$tmp/job.err"; fail "the Job's command exited $rc, expected 0"; }
for i in 1 2 3 4 5; do
  grep -q "test_counter got $i" "$tmp/job.out" || { cat "$tmp/job.out"; fail "no 'test_counter got $i' (runtime env not applied?)"; }
done
grep -q "SUCCEEDED" "$tmp/job.err" || fail "the submitter did not report SUCCEEDED: $(cat "$tmp/job.err")"
echo "ok: the Job's command ran the counter with its runtime env: exit 0, SUCCEEDED"
# Same command, an entrypoint that fails: the Job's pod must fail.
n=${#words[@]}
ORRERY_TOKEN=$(cat "$tmp/token") timeout 60 "$orrery" "${words[@]:1:n-2}" "sh -c 'exit 3'" > "$tmp/bad.out" 2> "$tmp/bad.err"
rc=$?
[ "$rc" = 1 ] || fail "a failing job's submit exited $rc, expected 1: $(cat "$tmp/bad.err")"
grep -q "FAILED" "$tmp/bad.err" || fail "no FAILED in: $(cat "$tmp/bad.err")"
echo "ok: a failing job -> exit 1, FAILED"
