#!/usr/bin/env bash
# Runs the FFN side (afd-ffn-server) and the attention side (afd-run --ffn-remote) in two network namespaces joined
# by a veth pair: 10.77.0.1/24 (FFN server) <-> 10.77.0.2/24 (afd-run). afd-run's stdout is this script's stdout;
# the server's log goes to stderr after the run.
#
#   tools/netns-two-process.sh AFD_FFN_SERVER AFD_RUN MODEL_DIR -- [afd-run arguments...]
#
# Needs iproute2 and util-linux's unshare, and either root or unprivileged user namespaces (`unshare --net
# --map-root-user`). Exits 77 with a line "SKIP: why" on stderr where the machine allows neither. The namespaces are
# anonymous: they vanish with their processes, and the server is killed on every exit path (EXIT/TERM/INT traps;
# where setpriv has --pdeathsig, also when this script is killed outright).
set -euo pipefail

skip() { echo "SKIP: $*" >&2; exit 77; }

if [[ "${1:-}" != --inner ]]; then
  [[ $# -ge 3 ]] || { echo "usage: $0 AFD_FFN_SERVER AFD_RUN MODEL_DIR -- [afd-run arguments...]" >&2; exit 2; }
  command -v ip >/dev/null || skip "no 'ip' command (iproute2 is not installed)"
  command -v unshare >/dev/null || skip "no 'unshare' command (util-linux)"
  flags=()
  if unshare --net true 2>/dev/null; then flags=(--net)
  elif unshare --net --map-root-user true 2>/dev/null; then flags=(--net --map-root-user)
  else skip "cannot create a network namespace (not root, and unprivileged user namespaces are disabled)"; fi
  unshare "${flags[@]}" ip link add afd-probe0 type veth peer name afd-probe1 2>/dev/null ||
    skip "cannot create a veth pair inside a network namespace (no veth support or no CAP_NET_ADMIN there)"
  exec unshare "${flags[@]}" bash "$0" --inner "$@"
fi

# Inside namespace A (the attention side's).
shift
server_bin=$1 run_bin=$2 model=$3
shift 3
[[ "${1:-}" == -- ]] && shift
port=9077  # a fresh namespace: nothing else listens here
tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [[ -f "$tmp/server.log" ]] && sed 's/^/[ffn-server] /' "$tmp/server.log" >&2
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

deathsig=()
setpriv --help 2>/dev/null | grep -q -- --pdeathsig && deathsig=(setpriv --pdeathsig KILL)
ip link set lo up
# Namespace B (nested, the FFN server's): waits for its end of the veth, configures it, becomes the server.
unshare --net "${deathsig[@]}" bash -c '
  for _ in $(seq 200); do ip link show afd-ffn >/dev/null 2>&1 && break; sleep 0.05; done
  ip link set lo up && ip addr add 10.77.0.1/24 dev afd-ffn && ip link set afd-ffn up || exit 1
  exec "$0" --model "$1" --host 10.77.0.1 --port "$2" --ffn-device cpu' \
  "$server_bin" "$model" "$port" 2>"$tmp/server.log" &
server_pid=$!
mine=$(readlink /proc/self/ns/net)
for _ in $(seq 250); do
  [[ "$(readlink "/proc/$server_pid/ns/net" 2>/dev/null || echo "$mine")" != "$mine" ]] && break
  sleep 0.02
done
ip link add afd-attn type veth peer name afd-ffn netns "$server_pid"
ip addr add 10.77.0.2/24 dev afd-attn
ip link set afd-attn up
for _ in $(seq 600); do
  grep -q "listening on" "$tmp/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { echo "afd-ffn-server exited before listening" >&2; exit 1; }
  sleep 0.05
done
grep -q "listening on 10.77.0.1:$port" "$tmp/server.log" || { echo "afd-ffn-server did not listen" >&2; exit 1; }
"$run_bin" --model "$model" --ffn-remote "10.77.0.1:$port" "$@"
