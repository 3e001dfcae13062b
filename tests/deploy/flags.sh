# Sourced by the deploy tests: check_flags ORRERY CONTEXT SUBCOMMAND [SUBCOMMAND2] ARGS...
# Every --flag in ARGS must appear in `orrery SUBCOMMAND [SUBCOMMAND2] --help`, so a manifest or
# unit cannot carry a misspelled or removed flag. The issue-17 contract flags that other
# branches add (--tls-dir, --node-ip, --health-port) are only noted while this build lacks
# them; once merged they are checked like the rest.
check_flags() {
  local orrery="$1" ctx="$2"; shift 2
  local cmd=("$1"); shift
  if [ "${cmd[0]}" = job ] || [ "${cmd[0]}" = tls ]; then cmd+=("$1"); shift; fi
  local help bad=0 w name
  help=$("$orrery" "${cmd[@]}" --help 2>&1)
  for w in "$@"; do
    case "$w" in --) break ;; --*) ;; *) continue ;; esac
    name="${w%%=*}"
    if ! grep -q -- "$name\b" <<< "$help"; then
      case "$name" in
        --tls-dir|--node-ip|--health-port) echo "  note: $ctx: contract flag $name is not in this build's 'orrery ${cmd[*]}' yet" ;;
        *) echo "  $ctx: 'orrery ${cmd[*]}' has no flag $name"; bad=1 ;;
      esac
    fi
  done
  return $bad
}
