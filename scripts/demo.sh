#!/usr/bin/env bash
# The demo: a client namespace joined to this host by a veth pair, vigild attached to the host
# end in native XDP mode, a demo API on the host, traffic from an allowed and from a blocked
# client, and `vigilctl` showing the rules and the drops. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (XDP and namespaces need it)" >&2; exit 1; }
scripts/setup.sh
echo "== building vigild and vigilctl"
cargo build -q -p vigil-dataplane -p vigil-ctl
BIN=target/debug

NS=vigil-demo
HOST_IF=vigil-out
PEER_IF=vigil-in
HOST=198.18.0.1
GOOD=198.18.0.2
BAD=198.18.0.66
WORK=$(mktemp -d /tmp/vigil-demo.XXXXXX)
PINS=/sys/fs/bpf/vigil-demo
SOCK=$WORK/vigild.sock
VIGILD_PID= API_PID=

cleanup() {
  set +e
  [ -n "$VIGILD_PID" ] && kill "$VIGILD_PID" 2>/dev/null && wait "$VIGILD_PID" 2>/dev/null
  [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null
  "$BIN/vigilctl" --socket "$SOCK" --pin-root "$PINS" --iface "$HOST_IF" xdp detach >/dev/null 2>&1
  rm -rf "$PINS"
  ip link del "$HOST_IF" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
# Leftovers of an interrupted earlier run.
ip link del "$HOST_IF" 2>/dev/null || true
ip netns del "$NS" 2>/dev/null || true
rm -rf "$PINS"

echo "== network: namespace $NS ($GOOD, $BAD) --veth-- host $HOST_IF ($HOST)"
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$PEER_IF" netns "$NS"
ip addr add "$HOST/24" dev "$HOST_IF"
ip link set "$HOST_IF" up
ip -n "$NS" addr add "$GOOD/24" dev "$PEER_IF"
ip -n "$NS" addr add "$BAD/24" dev "$PEER_IF"
ip -n "$NS" link set "$PEER_IF" up
ip -n "$NS" link set lo up

echo "== demo API upstream on $HOST:8080"
python3 scripts/demo_api.py "$HOST" 8080 &
API_PID=$!

sed -e "s|^interface = .*|interface = \"$HOST_IF\"|" \
    -e "s|^pin_root = .*|pin_root = \"$PINS\"|" \
    -e "s|^socket = .*|socket = \"$SOCK\"|" \
    -e "s|^allow = .*|allow = [\"$HOST/32\"]|" config/vigild.toml > "$WORK/vigild.toml"
echo "== vigild --config $WORK/vigild.toml"
"$BIN/vigild" --config "$WORK/vigild.toml" 2>"$WORK/vigild.log" &
VIGILD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$WORK/vigild.log"; echo "demo: vigild did not start" >&2; exit 1; }

ctl() { echo "\$ vigilctl $*"; "$BIN/vigilctl" --socket "$SOCK" --pin-root "$PINS" "$@"; }
get() { # get SRC: an HTTP request from SRC inside the namespace, bounded to 2 s
  ip netns exec "$NS" curl -s -o /dev/null -w "%{http_code}" --max-time 2 --interface "$1" \
    "http://$HOST:8080/users/1" || true
}

ctl status
ctl block add "$BAD" --ttl 10m --reason "demo: abusive client"
ctl block list
echo "== traffic"
for src in "$GOOD" "$BAD"; do
  printf 'ping from %-12s ' "$src"
  if ip netns exec "$NS" ping -q -c 3 -i 0.2 -W 1 -I "$src" "$HOST" >/dev/null; then echo "replies"; else echo "no reply (dropped in XDP)"; fi
  printf 'HTTP from %-12s status %s\n' "$src" "$(get "$src" | sed 's/^000$/none: no TCP handshake/')"
done
ctl stats
echo "== kill -9 vigild: the pinned program keeps dropping"
kill -9 "$VIGILD_PID"; wait "$VIGILD_PID" 2>/dev/null || true; VIGILD_PID=
printf 'HTTP from %-12s status %s\n' "$BAD" "$(get "$BAD" | sed 's/^000$/none: still dropped/')"
ctl --iface "$HOST_IF" stats
echo "== demo done; cleaning up"
