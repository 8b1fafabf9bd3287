#!/usr/bin/env bash
# Two hosts on one machine: a helo server and a helo client in two network
# namespaces joined by a virtual Ethernet cable (a veth pair), so the client
# reaches the server over a network — its own interface, its own address,
# another host's address — instead of over loopback. Chapter 12 of the tour
# (docs/TOUR.md, "Middleware: a layer between clients and servers") walks
# through it.
#
#   sudo npm run demo:two-hosts              # one session across the cable, then clean up
#   sudo npm run demo:two-hosts -- --keep    # leave both hosts up until Ctrl-C
#   sudo npm run demo:two-hosts -- --delay 20ms   # a slower cable (needs tc's netem)
#
# Needs root (creating namespaces and links is privileged) and iproute2's
# `ip`. Nothing touches the machine's own network: both ends of the cable live
# inside the two namespaces, and deleting a namespace deletes its end.
set -euo pipefail

keep=no
delay=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=yes ;;
    --delay) delay="${2:?--delay needs a value such as 20ms}"; shift ;;
    -h | --help)
      sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "two-hosts: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" -ne 0 ]; then
  echo "two-hosts: needs root to create network namespaces: run it with sudo" >&2
  exit 1
fi
if ! command -v ip >/dev/null; then
  echo "two-hosts: needs the ip command (Debian package iproute2)" >&2
  exit 1
fi

here="$(cd "$(dirname "$0")/.." && pwd)"
helo=("$(command -v node)" "$here/bin/helo")
# Names carry this script's pid, so two runs at once never collide.
server_ns="helo-server-$$"
client_ns="helo-client-$$"
server_if="hs$$"
client_if="hc$$"
server_ip=10.77.0.1
client_ip=10.77.0.2
port=7777
work="$(mktemp -d)"
server_pid=""

cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  ip netns del "$server_ns" 2>/dev/null || true
  ip netns del "$client_ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

step() { printf '$ %s\n' "$*"; "$@"; }

echo "# 1. Two hosts: each namespace has its own interfaces, addresses and ports."
step ip netns add "$server_ns"
step ip netns add "$client_ns"
echo
echo "# 2. A cable between them: a veth pair, one end in each host."
step ip link add "$server_if" type veth peer name "$client_if"
step ip link set "$server_if" netns "$server_ns"
step ip link set "$client_if" netns "$client_ns"
step ip -n "$server_ns" addr add "$server_ip/24" dev "$server_if"
step ip -n "$client_ns" addr add "$client_ip/24" dev "$client_if"
for ns in "$server_ns" "$client_ns"; do
  ip -n "$ns" link set lo up
done
ip -n "$server_ns" link set "$server_if" up
ip -n "$client_ns" link set "$client_if" up
if [ -n "$delay" ]; then
  # netem delays every packet leaving the client's end: each round trip gets
  # one delay longer (the other direction is not delayed).
  if ! step ip netns exec "$client_ns" tc qdisc add dev "$client_if" root netem delay "$delay" 2>/dev/null; then
    echo "two-hosts: could not add a delay (tc's netem is missing in this kernel); going on without it" >&2
  fi
fi
step ip -n "$client_ns" -brief addr show dev "$client_if"

echo
echo "# 3. The server listens on the server host's address (not 127.0.0.1)."
echo "\$ ip netns exec $server_ns helo server --host $server_ip --port $port --store memory:"
ip netns exec "$server_ns" "${helo[@]}" server --host "$server_ip" --port "$port" --store memory: \
  >"$work/server.out" 2>"$work/server.log" &
server_pid=$!

echo
echo "# 4. The client, on the other host, connects across the cable."
session=$'HELO\nDATA hola desde otro host\nQUIT'
echo "\$ printf 'HELO\\nDATA hola desde otro host\\nQUIT\\n' | ip netns exec $client_ns helo client $server_ip:$port --wait 5"
printf '%s\n' "$session" | ip netns exec "$client_ns" "${helo[@]}" client "$server_ip:$port" --wait 5

echo
echo "# 5. The server saw the client's own address, $client_ip, as its peer:"
# The summary line is written when the session ends; give the server a moment.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  grep -q '"peer"' "$work/server.log" && break
  sleep 0.1
done
grep '"peer"' "$work/server.log" | head -n 3 || true

echo
echo "# 6. The client host knows one network only: the cable. Its loopback is its own."
step ip -n "$client_ns" route
echo "\$ ip netns exec $client_ns helo client 127.0.0.1:$port   # the client host's own loopback: no server there"
ip netns exec "$client_ns" "${helo[@]}" client "127.0.0.1:$port" </dev/null 2>&1 || true

if [ "$keep" = yes ]; then
  cat <<EOF

Both hosts stay up until you press Ctrl-C. In another terminal, try:
  sudo ip netns exec $client_ns bash           # a shell on the client host
  helo client $server_ip:$port                  # ...from that shell
  sudo ip netns exec $server_ns ss -tn          # the server host's connections
  sudo ip netns exec $client_ns python3 test/fixtures/lab_client.py $server_ip $port
EOF
  while kill -0 "$server_pid" 2>/dev/null; do sleep 1; done
fi
