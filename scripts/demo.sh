#!/usr/bin/env bash
# The demo: a client namespace joined to this host by a veth pair; vigild attached to the host
# end in native XDP mode, terminating TLS 1.3 with a key sealed by a TPM (swtpm) in front of a
# demo API; HTTPS from an allowed client and from a blocked one; vigilctl showing the rules, the
# drops and the gateway. Everything it creates is removed when it ends, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (XDP and namespaces need it)" >&2; exit 1; }
scripts/setup.sh
echo "== building vigild and vigilctl"
cargo build -q -p vigil-dataplane -p vigil-ctl
BIN=$PWD/target/debug

NS=vigil-demo
HOST_IF=vigil-out
PEER_IF=vigil-in
HOST=198.18.0.1
GOOD=198.18.0.2
BAD=198.18.0.66
NAME=gateway.vigil.demo
WORK=$(mktemp -d /tmp/vigil-demo.XXXXXX)
PINS=/sys/fs/bpf/vigil-demo
SOCK=$WORK/vigild.sock
# Two free consecutive ports for swtpm's server and control sockets.
TPM_PORT=$(python3 - <<'PY'
import socket
for port in range(23200, 24000, 2):
    socks = []
    try:
        for p in (port, port + 1):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
        print(port)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
PY
)
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
export TSS2_LOG=all+NONE
VIGILD_PID= API_PID= SWTPM_PID=

cleanup() {
  set +e
  [ -n "$VIGILD_PID" ] && kill "$VIGILD_PID" 2>/dev/null && wait "$VIGILD_PID" 2>/dev/null
  [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null
  [ -n "$SWTPM_PID" ] && kill "$SWTPM_PID" 2>/dev/null
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

echo "== TPM: swtpm on 127.0.0.1:$TPM_PORT; a TLS key sealed by it"
mkdir -p "$WORK/tpm"
swtpm socket --tpm2 --server type=tcp,port="$TPM_PORT",bindaddr=127.0.0.1 \
  --ctrl type=tcp,port=$((TPM_PORT + 1)),bindaddr=127.0.0.1 --tpmstate dir="$WORK/tpm" \
  --flags not-need-init,startup-clear &
SWTPM_PID=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$TPM_PORT") 2>/dev/null && break; sleep 0.1; done
ctl() { echo "\$ vigilctl $*"; "$BIN/vigilctl" --socket "$SOCK" --pin-root "$PINS" "$@"; }
ctl keys init --mode sealed --dir "$WORK/keys" --tcti "$TCTI" --subject "$NAME"

echo "== demo API upstream on 127.0.0.1:8080"
python3 scripts/demo_api.py 127.0.0.1 8080 &
API_PID=$!
for _ in $(seq 50); do curl -sf -o /dev/null --max-time 1 http://127.0.0.1:8080/health && break; sleep 0.1; done

sed -e "s|^interface = .*|interface = \"$HOST_IF\"|" \
    -e "s|^pin_root = .*|pin_root = \"$PINS\"|" \
    -e "s|^socket = .*|socket = \"$SOCK\"|" \
    -e "s|^allow = .*|allow = [\"$HOST/32\"]|" \
    -e "s|^dir = .*|dir = \"$WORK/keys\"|" \
    -e "s|^tcti = .*|tcti = \"$TCTI\"|" \
    -e "s|^https = .*|https = \"$HOST:8443\"|" \
    -e "s|^cert = .*|cert = \"$WORK/keys/cert.pem\"|" \
    -e "s|^key = .*|key = \"$WORK/keys/key.pem\"|" \
    -e "s|^path = .*|path = \"$WORK/audit.log\"|" \
    -e "s|^listen = .*|listen = \"127.0.0.1:9190\"|" \
    -e "s|^file = .*|file = \"$PWD/config/openapi.yaml\"|" config/vigild.toml > "$WORK/vigild.toml"
# The demo also shows a WAF stage: injection payloads in request values are refused.
printf '\n[detection]\nmode = "block"\n' >> "$WORK/vigild.toml"
echo "== vigild --config $WORK/vigild.toml"
"$BIN/vigild" --config "$WORK/vigild.toml" 2>"$WORK/vigild.log" &
VIGILD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$WORK/vigild.log"; echo "demo: vigild did not start" >&2; exit 1; }

get() { # get SRC [curl args...] [PATH]: HTTPS from SRC inside the namespace, bounded to 3 s
  local src=$1; shift
  local path=/users/1
  case "${!#}" in /*) path=${!#}; set -- "${@:1:$#-1}" ;; esac
  ip netns exec "$NS" curl -s -o /dev/null -w "%{http_code} (HTTP/%{http_version})" --max-time 3 \
    --interface "$src" --resolve "$NAME:8443:$HOST" --cacert "$WORK/keys/cert.pem" "$@" \
    "https://$NAME:8443$path" || true
}

ctl status
ctl block add "$BAD" --ttl 10m --reason "demo: abusive client"
ctl block list
echo "== traffic"
printf 'HTTPS h1 from %-12s %s\n' "$GOOD" "$(get "$GOOD" --http1.1)"
printf 'HTTPS h2 from %-12s %s\n' "$GOOD" "$(get "$GOOD" --http2)"
printf 'TRACE    from %-12s %s\n' "$GOOD" "$(get "$GOOD" -X TRACE)"
printf 'shadow path /admin/export %s   (not in the OpenAPI description)\n' "$(get "$GOOD" /admin/export)"
printf 'bad param  /users/abc     %s   (id must be an integer)\n' "$(get "$GOOD" /users/abc)"
printf 'DELETE     /users/1       %s   (method not described)\n' "$(get "$GOOD" -X DELETE /users/1)"
printf 'injection  User-Agent     %s   (SQL injection in a header: [detection] refuses it)\n' \
  "$(get "$GOOD" -A "x' OR '1'='1' --")"
printf 'HTTPS    from %-12s %s\n' "$BAD" "$(get "$BAD" | sed 's/^000.*/none: no TCP handshake (dropped in XDP)/')"
ip netns exec "$NS" curl -s --max-time 3 --interface "$GOOD" --resolve "$NAME:8443:$HOST" \
  --cacert "$WORK/keys/cert.pem" "https://$NAME:8443/users/2"; echo
ctl stats
echo "== audit log (one JSON line per decision)"
tail -n 3 "$WORK/audit.log" || true
echo "== metrics (excerpt)"
curl -s --max-time 2 http://127.0.0.1:9190/metrics | grep -E '^vigil_(xdp_packets_total|inspection_level)' || true
echo "== kill -9 vigild: the pinned program keeps dropping"
kill -9 "$VIGILD_PID"; wait "$VIGILD_PID" 2>/dev/null || true; VIGILD_PID=
printf 'HTTPS    from %-12s %s\n' "$BAD" "$(get "$BAD" | sed 's/^000.*/none: still dropped/')"
ctl --iface "$HOST_IF" stats
echo "== demo done; cleaning up"
