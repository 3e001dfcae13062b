#!/usr/bin/env bash
# The Kubernetes manifests of live/deploy/k8s/: schema validation and the contract checks of
# k8s_check.py (in the test venv that `bootstrap.sh --test` makes, with kubernetes-validate),
# every orrery flag the containers pass known to the built binary, the autoscaler ConfigMap
# loaded by the real config loader, and the counter Job's exact command run against a local
# cluster made of the pods' own command lines (head, then worker; their probes once the build
# serves them): it must print the counter's five lines and exit 0 (the job SUCCEEDED); the same
# command with a failing entrypoint must exit 1; the pods' preStop then ends both with 0.
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
cleanup() {
  for r in "$tmp"/*-root "$tmp/asroot"; do [ -d "$r" ] && "$orrery" stop --temp-dir "$r" > /dev/null 2>&1; done
  rm -rf "$tmp"
}
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

# The pods' own command lines, run here as processes: the head's, then the worker's, each with
# its own session root (its own filesystem), rewritten only where a pod's surroundings differ:
# addresses (127.0.0.1 for the pod IP and the head Service), ports (both pods pin 10001, 8080,
# 10002: each gets a free one here), paths (session roots, the token and TLS Secrets, the
# example in the image). Contract flags this build lacks (noted above) are left out; once they
# exist they are used (TLS with `orrery tls init`, the probes over HTTP(S)).
python3 -c "import secrets; print(secrets.token_hex(32))" > "$tmp/token"
start_help=$("$orrery" start --help 2>&1)
has_flag() { grep -q -- "$1\b" <<< "$start_help"; }
tls_on=0
if has_flag --tls-dir; then
  "$orrery" tls init "$tmp/tls" > "$tmp/tls.log" 2>&1 || { cat "$tmp/tls.log"; fail "orrery tls init"; }
  tls_on=1
fi
declare -A ports
port_for() {  # ROLE PORT: a free local port standing for the pod's PORT (sets P)
  local key="$1:$2"
  [ -n "${ports[$key]:-}" ] || ports[$key]=$(free_port)
  P=${ports[$key]}
}
rewrite() {  # ROLE FILE: the pod's command words, rewritten, in the array `cmd`
  local role=$1 w
  cmd=()
  while IFS= read -r w; do
    case "$w" in
      --temp-dir=*) w="--temp-dir=$tmp/$role-root" ;;
      --bind=*) w="--bind=127.0.0.1" ;;
      --node-ip=*) has_flag --node-ip || continue ;;
      --tls-dir=*) [ "$tls_on" = 1 ] || continue; w="--tls-dir=$tmp/tls" ;;
      --token-file=*) w="--token-file=$tmp/token" ;;
      --address=orrery-head:*) port_for head "${w##*:}"; w="--address=127.0.0.1:$P" ;;
      --health-port=*) has_flag --health-port || continue; port_for "$role" "${w#*=}"; w="${w%%=*}=$P" ;;
      --port=*|--dashboard-port=*|--head-metrics-port=*|--node-port=*|--metrics-port=*)
        port_for "$role" "${w#*=}"; w="${w%%=*}=$P" ;;
      /opt/orrery/share/orrery/examples/counter) w="$counter" ;;
    esac
    cmd+=("$w")
  done < "$2"
  [ "${cmd[0]}" = orrery ] || fail "a pod command does not run orrery: ${cmd[*]}"
}
pids=()
for i in 0 1; do
  role=$([ $i = 0 ] && echo head || echo worker)
  rewrite "$role" "$tmp/command$i.txt"
  "$orrery" "${cmd[@]:1}" > "$tmp/$role.out" 2> "$tmp/$role.err" &
  pids+=($!)
  for _ in $(seq 200); do grep -q "Blocking until" "$tmp/$role.out" 2> /dev/null && break; sleep 0.1; done
  grep -q "Blocking until" "$tmp/$role.out" ||
    { cat "$tmp/$role.out" "$tmp/$role.err"; fail "the $role pod's command did not come up: ${cmd[*]}"; }
done
echo "ok: the head's and the worker's pod commands run (--block)"

# The probes, once the daemons serve them.
if has_flag --health-port; then
  for i in 0 1; do
    role=$([ $i = 0 ] && echo head || echo worker)
    while read -r path port scheme; do
      port_for "$role" "$port"
      url="$(tr 'A-Z' 'a-z' <<< "$scheme")://127.0.0.1:$P$path"
      code=$(python3 -c '
import ssl, sys, urllib.request, urllib.error
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5, context=ctx).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:
    print("error", e)' "$url")
      [ "$code" = 200 ] || fail "the $role probe $url answered $code, expected 200"
    done < "$tmp/probes$i.txt"
  done
  echo "ok: the pods' readiness and liveness probes answer 200"
else
  echo "  note: this build has no --health-port yet: the probes are not exercised"
fi

# The Job's command (the RayJob equivalent) against them.
rewrite job "$tmp/command2.txt"
export ORRERY_TOKEN; ORRERY_TOKEN=$(cat "$tmp/token")
[ "$tls_on" = 1 ] && export ORRERY_TLS_DIR="$tmp/tls"
timeout 60 "$orrery" "${cmd[@]:1}" > "$tmp/job.out" 2> "$tmp/job.err"
rc=$?
[ "$rc" = 0 ] || { cat "$tmp/job.out" "$tmp/job.err"; fail "the Job's command exited $rc, expected 0"; }
for i in 1 2 3 4 5; do
  grep -q "test_counter got $i" "$tmp/job.out" || { cat "$tmp/job.out"; fail "no 'test_counter got $i' (runtime env not applied?)"; }
done
grep -q "SUCCEEDED" "$tmp/job.err" || fail "the submitter did not report SUCCEEDED: $(cat "$tmp/job.err")"
echo "ok: the Job's command ran the counter with its runtime env: exit 0, SUCCEEDED"
# Same command, an entrypoint that fails: the Job's pod must fail.
n=${#cmd[@]}
timeout 60 "$orrery" "${cmd[@]:1:n-2}" "sh -c 'exit 3'" > "$tmp/bad.out" 2> "$tmp/bad.err"
rc=$?
[ "$rc" = 1 ] || fail "a failing job's submit exited $rc, expected 1: $(cat "$tmp/bad.err")"
grep -q "FAILED" "$tmp/bad.err" || fail "no FAILED in: $(cat "$tmp/bad.err")"
echo "ok: a failing job -> exit 1, FAILED"

# preStop, worker then head: each pod's blocked start ends with 0 (the container exits cleanly).
for i in 1 0; do
  role=$([ $i = 0 ] && echo head || echo worker)
  rewrite "$role" "$tmp/prestop$i.txt"
  "$orrery" "${cmd[@]:1}" > /dev/null 2>&1 || fail "the $role preStop command failed: ${cmd[*]}"
  for _ in $(seq 200); do kill -0 "${pids[$i]}" 2> /dev/null || break; sleep 0.1; done
  kill -0 "${pids[$i]}" 2> /dev/null && fail "the $role pod's command outlived its preStop"
  wait "${pids[$i]}"; rc=$?
  [ "$rc" = 0 ] || fail "the $role pod's command exited $rc after preStop, expected 0"
done
echo "ok: preStop (orrery stop) ends both pods' commands with 0"
