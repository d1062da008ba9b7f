#!/usr/bin/env bash
# Where the CPU goes across one hop: the issue-4 S1 scenario on one Hawser
# broker, then across a network link (producers on A, consumers on B), with
# each process's CPU time (user + system, from /proc) over the run divided
# by the messages moved. Usage: bench/network_cpu.sh [path/to/hawser] [seconds]
# Everything listens on 127.0.0.1; every broker is stopped by its PID.
set -euo pipefail
H="${1:-target/release/hawser}"
SECS="${2:-8}"
dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
flags=(--producers 4 --consumers 4 --size 1024 --window 64 --prefetch 1000 --ack client
       --duration "$SECS" --threads 1 --persistent --scenario S1)
serve() { "$H" serve --data-dir "$dir/$1" --stomp "127.0.0.1:$2" --openwire "127.0.0.1:$3" "${@:4}" >"$dir/$1.log" 2>&1 & pids+=($!); }
wait_ready() { for _ in $(seq 100); do grep -q "Hawser ready" "$dir/$1.log" && return; sleep 0.1; done; echo "$1 did not start" >&2; exit 1; }
bench() { /usr/bin/time -f "%U %S" -o "$dir/time" "$H" bench "$@" "${flags[@]}" 2>/dev/null | tail -n 1; }
report() { # name, json, broker cpu ticks
    python3 - "$1" "$2" "$3" "$(cat "$dir/time")" "$hz" <<'PY'
import json, sys
name, line, broker_ticks, client, hz = sys.argv[1:]
r = json.loads(line); n = r["received"]
broker_s = int(broker_ticks) / int(hz)
client_s = sum(float(x) for x in client.split())
print(f"{name}: {r['msgs_per_sec']:,.0f} msg/s, brokers {broker_s / n * 1e6:.1f} us/msg, "
      f"load generator {client_s / n * 1e6:.1f} us/msg, lost {r['lost']}, duplicates {r['duplicates']}")
PY
}
serve one 47001 47101; one=${pids[-1]}; wait_ready one
t0=$(ticks "$one"); line=$(bench --broker 127.0.0.1:47001 --destination /queue/cpu.one); t1=$(ticks "$one")
report "one broker" "$line" $((t1 - t0))
serve b 47002 47102; b=${pids[-1]}; wait_ready b
serve a 47003 47103 --network-connector "static:(tcp://127.0.0.1:47002)"; a=${pids[-1]}; wait_ready a
sleep 1
a0=$(ticks "$a"); b0=$(ticks "$b")
line=$(bench --broker 127.0.0.1:47003 --consumer-broker 127.0.0.1:47002 --destination /queue/cpu.hop)
a1=$(ticks "$a"); b1=$(ticks "$b")
report "one hop (A $(( (a1 - a0) )) + B $(( (b1 - b0) )) ticks)" "$line" $((a1 - a0 + b1 - b0))
