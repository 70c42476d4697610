#!/usr/bin/env bash
# doc/bench.sh: an end-to-end benchmark anyone can run from the repository:
# redis-benchmark against Redis directly, through redis-proxy, and through
# HAProxy in `mode tcp` when haproxy is installed, all on 127.0.0.1,
# interleaved round by round; prints each target's median rps and p99 and
# its ratio to direct Redis. See doc/performance.md.
#
#   doc/bench.sh                      # 3 rounds, scenarios a b c
#   ROUNDS=5 N=200000 doc/bench.sh
#
# Needs redis-server and redis-benchmark (Debian: redis-server redis-tools);
# haproxy is optional. Every process it starts is killed at exit, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
N=${N:-100000}              # requests per redis-benchmark test (scenario c: N/10)
SCENARIOS=${SCENARIOS:-"a b c"}
. doc/benchlib.sh bench
start_redis

CGO_ENABLED=0 go build -o "$work/redis-proxy" .
proxy_port=$(free_port)
admin_port=$(free_port)
cat >"$work/proxy.json" <<EOF
{"uplink": {"addr": "127.0.0.1:$redis_port"}, "listen": {"addr": "127.0.0.1:$proxy_port"},
 "admin": {"addr": "127.0.0.1:$admin_port"}, "max_clients": 0}
EOF
"$work/redis-proxy" -f "$work/proxy.json" 2>"$work/proxy.log" &
pids+=($!)
wait_ping "$proxy_port"

targets=("direct:$redis_port" "redis-proxy:$proxy_port")
if start_haproxy; then
	targets+=("haproxy:$haproxy_port")
fi

scenario_args() {
	case $1 in
	a) echo "-c 50 -P 1 -d 64 -n $N" ;;
	b) echo "-c 50 -P 16 -d 64 -n $((N * 5))" ;;
	c) echo "-c 10 -P 1 -d 65536 -n $((N / 10))" ;;
	esac
}

results="$work/results.csv" # round,scenario,target,test,rps,p99
for round in $(seq "$ROUNDS"); do
	for sc in $SCENARIOS; do
		for t in "${targets[@]}"; do
			name=${t%%:*} port=${t##*:}
			# shellcheck disable=SC2046
			redis-benchmark -p "$port" $(scenario_args "$sc") -t set,get --csv 2>/dev/null |
				awk -F'","' -v r="$round" -v s="$sc" -v n="$name" \
					'NR > 1 { gsub(/"/, ""); print r "," s "," n "," $1 "," $2 "," $8 }' >>"$results"
		done
	done
	echo "round $round done" >&2
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '\n%-3s %-5s %-12s %12s %10s %9s\n' sc test target "rps(median)" "p99(ms)" "vs direct"
for sc in $SCENARIOS; do
	for test in SET GET; do
		base=$(awk -F, -v s="$sc" -v t="$test" '$2 == s && $3 == "direct" && $4 == t { print $5 }' "$results" | median)
		for t in "${targets[@]}"; do
			name=${t%%:*}
			rps=$(awk -F, -v s="$sc" -v n="$name" -v t="$test" '$2 == s && $3 == n && $4 == t { print $5 }' "$results" | median)
			p99=$(awk -F, -v s="$sc" -v n="$name" -v t="$test" '$2 == s && $3 == n && $4 == t { print $6 }' "$results" | median)
			printf '%-3s %-5s %-12s %12.0f %10.3f %9.2f\n' "$sc" "$test" "$name" "$rps" "$p99" "$(awk -v a="$rps" -v b="$base" 'BEGIN { print a / b }')"
		done
	done
done
