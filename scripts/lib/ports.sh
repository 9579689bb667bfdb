# Loopback ports for multi-process tests and demos (sourced, not run).
#
# Ports come from 20000-32767: below the kernel's ephemeral range (32768-60999), so an outgoing
# connection can never take one between the moment it is picked and the moment a server binds it
# (that happened with ports the kernel handed out and the script closed again). Each port is
#   - reserved: an flock on $BALSA_PORT_DIR/<port>, held by this shell (and inherited by the
#     processes it starts) until it exits, so concurrent tests on the machine never pick the same;
#   - probed: nothing listens on it and it binds right now.
# A clash with a process outside this scheme is still possible; start_with_retry (below) handles
# a server that then fails to bind.

BALSA_PORT_DIR=${BALSA_PORT_DIR:-/tmp/balsa-test-ports}
BALSA_PORT_MIN=${BALSA_PORT_MIN:-20000}
BALSA_PORT_MAX=${BALSA_PORT_MAX:-32767}

_port_bindable() {  # _port_bindable <port>: 0 if 127.0.0.1:<port> binds now
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# reserve_ports <n>: sets the array PORTS to n distinct reserved, free ports. Call it directly
# (not in $(...)): the reservations live in this shell.
reserve_ports() {
  local n=$1 p fd tries=0
  mkdir -p "$BALSA_PORT_DIR" 2>/dev/null
  PORTS=()
  while ((${#PORTS[@]} < n)); do
    if ((++tries > 2000)); then
      echo "reserve_ports: no free port in $BALSA_PORT_MIN-$BALSA_PORT_MAX after 2000 tries" >&2
      return 1
    fi
    p=$((BALSA_PORT_MIN + (RANDOM * 32768 + RANDOM) % (BALSA_PORT_MAX - BALSA_PORT_MIN + 1)))
    [[ " ${PORTS[*]} " == *" $p "* ]] && continue
    exec {fd}>>"$BALSA_PORT_DIR/$p" 2>/dev/null || continue
    if flock -n "$fd" && _port_bindable "$p"; then
      PORTS+=("$p")
    else
      exec {fd}>&-
    fi
  done
}

# free_ports <n>: prints n ports as reserve_ports picks them. In $(...) the reservation ends
# with the subshell; prefer reserve_ports.
free_ports() {
  reserve_ports "$1" && echo "${PORTS[*]}"
}

# bind_failed <log>: 0 if a server's log says it could not bind its address.
bind_failed() {
  grep -q -i -E "address already in use|cannot listen|Failed to add .*port|bind.*failed|cannot start the Raft node" "$1" 2>/dev/null
}
