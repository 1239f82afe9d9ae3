# shellcheck shell=bash
# Sourced by the fault scenarios of e2e/local/faults/ after
# e2e/local/crictl/lib.sh: stopping and restarting a service that
# e2e/local/up started (recorded in DIR/pids/NAME.pid), with the very command
# line it ran, so e2e/local/down still stops the restarted one.
# shellcheck disable=SC2154  # dir and fail come from e2e/local/crictl/lib.sh

# service_pid NAME: the pid up (or service_start) recorded for NAME.
service_pid() { cat "$dir/pids/$1.pid"; }

# service_argv NAME: fills the array svc_argv with NAME's command line.
service_argv() {
  local pid
  pid=$(service_pid "$1")
  mapfile -d '' -t svc_argv <"/proc/$pid/cmdline" || fail "$1 (pid $pid) is not running"
  [[ ${#svc_argv[@]} -gt 0 ]] || fail "$1 (pid $pid) has no command line"
}

# service_kill NAME SIGNAL: sends SIGNAL and waits (10 s at most) for NAME to be gone.
service_kill() {
  local pid
  pid=$(service_pid "$1")
  kill "-$2" "$pid" || fail "kill -$2 $1 (pid $pid)"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  fail "$1 (pid $pid) still runs 10 s after SIGNAL $2"
}

# service_start NAME LOG: starts svc_argv again as NAME, detached like up
# does, its output appended to LOG; records its pid.
service_start() {
  setsid "${svc_argv[@]}" >>"$2" 2>&1 </dev/null &
  echo $! >"$dir/pids/$1.pid"
}
