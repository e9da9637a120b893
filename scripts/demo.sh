#!/usr/bin/env bash
# Starts weftd on the embedded store, applies the quickstart routing, shows it back,
# and keeps weftd running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bins --locked
bin=target/release
data_dir=${WEFT_DATA_DIR:-$HOME/.weft}
api_addr=${WEFT_API_ADDR:-127.0.0.1:15014}
export WEFT_DATA_DIR=$data_dir WEFT_SERVER="http://$api_addr"

"$bin/weftd" --data-dir "$data_dir" --api-addr "$api_addr" &
weftd_pid=$!
trap 'kill $weftd_pid 2>/dev/null; wait $weftd_pid 2>/dev/null' EXIT INT TERM

printf 'waiting for weftd on %s ' "$api_addr"
for _ in $(seq 1 100); do
  # bash's /dev/tcp: no curl needed on a fresh machine.
  if (exec 3<>"/dev/tcp/${api_addr%:*}/${api_addr##*:}") 2>/dev/null; then break; fi
  printf '.'; sleep 0.1
done
echo

"$bin/weft" apply -f examples/quickstart/
echo; "$bin/weft" get virtualservices -o wide
echo; "$bin/weft" get destinationrules
echo; "$bin/weft" analyze || true
cat <<TXT

weftd is running: API http://$api_addr, data in $data_dir.
In another terminal, with this repository's target/release on your PATH:
  weft get vs -A                 # what is stored
  weft apply -f my-rules.yaml    # validated like Istio's webhook, then stored
  weft analyze                   # istioctl-style analysis of everything stored
Press Ctrl-C to stop.
TXT
wait $weftd_pid
