#!/usr/bin/env bash
# doc/floor.sh: process CPU per request (utime+stime from /proc) of
# redis-proxy beside the least a Go program can do in its place (the bare
# relays of doc/floor: "pair", a goroutine per direction as the proxy has;
# "loop", one epoll loop as HAProxy has) and beside HAProxy itself when it
# is installed. redis-benchmark GET -c 50 at -P 1 and -P 16, the targets
# interleaved round by round; prints each target's medians and its median
# per-round ratio to HAProxy. See doc/performance.md.
#
#   doc/floor.sh                # 5 rounds of 200,000 requests
#   ROUNDS=7 N=400000 doc/floor.sh
#
# Needs redis-server and redis-benchmark; Linux (/proc). Every process it
# starts is killed at exit, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
N=${N:-200000}
. doc/benchlib.sh floor
start_redis

CGO_ENABLED=0 go build -o "$work/redis-proxy" .
CGO_ENABLED=0 go build -o "$work/floor" ./doc/floor

names=() ports=() tpids=()
start() { # name command...
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	names+=("$name") tpids+=($!)
}

port=$(free_port)
admin=$(free_port)
printf '{"uplink":{"addr":"127.0.0.1:%s"},"listen":{"addr":"127.0.0.1:%s"},"admin":{"addr":"127.0.0.1:%s"}}' \
	"$redis_port" "$port" "$admin" >"$work/proxy.json"
ports+=("$port")
start redis-proxy "$work/redis-proxy" -f "$work/proxy.json"
for mode in pair loop; do
	port=$(free_port)
	ports+=("$port")
	start "go-$mode" "$work/floor" "$mode" "127.0.0.1:$port" "127.0.0.1:$redis_port"
done
if start_haproxy; then
	names+=(haproxy) ports+=("$haproxy_port") tpids+=("${pids[-1]}")
fi
for p in "${ports[@]}"; do wait_ping "$p"; done

tck=$(getconf CLK_TCK)
results="$work/results.csv" # round,target,P,user_us,sys_us
for i in "${!names[@]}"; do redis-benchmark -p "${ports[$i]}" -n 20000 -c 50 -t get -q >/dev/null; done
for round in $(seq "$ROUNDS"); do
	echo "round $round/$ROUNDS" >&2
	for i in "${!names[@]}"; do
		for P in 1 16; do
			read -r u0 s0 < <(awk '{print $14, $15}' "/proc/${tpids[$i]}/stat")
			redis-benchmark -p "${ports[$i]}" -n "$N" -c 50 -P "$P" -t get -q >/dev/null
			read -r u1 s1 < <(awk '{print $14, $15}' "/proc/${tpids[$i]}/stat")
			echo "$round,${names[$i]},$P,$(((u1 - u0) * 1000000 / tck)),$(((s1 - s0) * 1000000 / tck))" >>"$results"
		done
	done
done

python3 - "$results" "$N" <<'EOF'
import collections, statistics, sys
n = int(sys.argv[2])
cpu = collections.defaultdict(dict)  # (target, P) -> round -> (user, sys) per request, µs
for line in open(sys.argv[1]):
    rnd, target, p, user, sys_ = line.strip().split(",")
    cpu[(target, int(p))][rnd] = (int(user) / n, int(sys_) / n)
med = statistics.median
print("per GET, µs (medians of %d rounds)      user     sys   total   ratio to HAProxy" % len(next(iter(cpu.values()))))
for (target, p), rounds in sorted(cpu.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    h = cpu.get(("haproxy", p))
    ratio = med((u + s) / (sum(h[r]) or float("nan")) for r, (u, s) in rounds.items()) if h else float("nan")
    print("%-12s -P %-2d %22.2f %7.2f %7.2f   %.2f" % (target, p,
          med(u for u, _ in rounds.values()), med(s for _, s in rounds.values()),
          med(u + s for u, s in rounds.values()), ratio))
EOF
