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
work=$(mktemp -d /tmp/redis-proxy-floor.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "no PING on $1" >&2; exit 1; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
	--logfile "$work/redis.log" &
pids+=($!)
wait_ping "$redis_port"

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
if command -v haproxy >/dev/null; then
	port=$(free_port)
	cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen redis
    bind 127.0.0.1:$port
    server r1 127.0.0.1:$redis_port
EOF
	ports+=("$port")
	start haproxy haproxy -f "$work/haproxy.cfg" -db
else
	echo "(haproxy not installed: apt-get install haproxy to compare with it)" >&2
fi
for p in "${ports[@]}"; do wait_ping "$p"; done

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime+stime, ticks
results="$work/results.csv"                        # round,target,P,user_us,sys_us
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
    ratio = med((u + s) / sum(h[r]) for r, (u, s) in rounds.items()) if h else float("nan")
    print("%-12s -P %-2d %22.2f %7.2f %7.2f   %.2f" % (target, p,
          med(u for u, _ in rounds.values()), med(s for _, s in rounds.values()),
          med(u + s for u, s in rounds.values()), ratio))
EOF
