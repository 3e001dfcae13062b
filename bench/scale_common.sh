# Shared by the scale benchmarks (bench/driver_million.sh, bench/actors_thousand.sh,
# bench/soak.sh); sourced, not run. Expects $root (the repository) and $build (the build dir).
#
#   scale_start_cluster WORK CPUS [orrery start options...]   head + its node on 127.0.0.1
#       sets ORRERY_ADDRESS, ORRERY_TOKEN, SCALE_TEMP (the session root), HEAD_PID, NODE_PID
#   scale_stop_cluster                                          `orrery stop` (this session only)
#   scale_python                                                prints a python3 with matplotlib
#       (.venv-bench: created from PyPI on first use; plain python3, so no plots, if that fails
#       or SCALE_NO_PLOT=1)

scale_check_built() {
  for f in "$build/orrery" "$build/bench/scale_driver"; do
    [[ -x $f ]] || { echo "missing $f: build the orrery and scale_driver targets" >&2; exit 2; }
  done
}

scale_start_cluster() {
  local work=$1 cpus=$2
  shift 2
  unset ORRERY_TLS_DIR ORRERY_TLS_CERT ORRERY_TLS_KEY ORRERY_TLS_CA ORRERY_ADDRESS ORRERY_TOKEN
  SCALE_TEMP=$work/root
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$build/orrery" start --head --port "$port" --num-cpus "$cpus" --dashboard-port 0 \
    --temp-dir "$SCALE_TEMP" "$@" > "$work/start.log" 2>&1 || {
    cat "$work/start.log" >&2; return 1; }
  export ORRERY_ADDRESS=127.0.0.1:$port
  ORRERY_TOKEN=$(cat "$SCALE_TEMP"/session_latest/token)
  export ORRERY_TOKEN
  HEAD_PID=$(cat "$SCALE_TEMP"/session_latest/pids/head.pid)
  NODE_PID=$(basename "$(ls "$SCALE_TEMP"/session_latest/pids/node-*.pid | head -1)" .pid)
  NODE_PID=${NODE_PID#node-}
}

scale_stop_cluster() {
  [[ -n ${SCALE_TEMP:-} ]] && "$build/orrery" stop --temp-dir "$SCALE_TEMP" > /dev/null 2>&1
  SCALE_TEMP=
}

scale_python() {
  local venv=$root/.venv-bench
  [[ ${SCALE_NO_PLOT:-0} == 1 ]] && { echo python3; return; }
  if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import matplotlib' 2> /dev/null; then
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib; } > /dev/null 2>&1 ||
      { echo "note: no matplotlib (pip install into $venv failed): no plots" >&2; echo python3; return; }
  fi
  echo "$venv/bin/python"
}

scale_machine() {
  echo "$(nproc)-core $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/{print $2}') GiB RAM"
}
