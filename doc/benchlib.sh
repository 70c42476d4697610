# doc/benchlib.sh: what doc/bench.sh and doc/floor.sh share. Sourced, not
# run: `. doc/benchlib.sh NAME` makes a work directory /tmp/redis-proxy-NAME.*
# ($work), kills every process in $pids at exit, by PID, and removes $work.

work=$(mktemp -d "/tmp/redis-proxy-$1.XXXXXX")
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "no PING on $1" >&2; exit 1; }

# start_redis starts a redis-server on a free loopback port: $redis_port.
start_redis() {
	redis_port=$(free_port)
	redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
		--logfile "$work/redis.log" --maxclients 20000 &
	pids+=($!)
	wait_ping "$redis_port"
}

# start_haproxy starts HAProxy in mode tcp in front of $redis_port, on a
# free port: $haproxy_port. It returns 1 (and says so) when haproxy is not
# installed.
start_haproxy() {
	if ! command -v haproxy >/dev/null; then
		echo "(haproxy not installed: apt-get install haproxy to compare with it)" >&2
		return 1
	fi
	haproxy_port=$(free_port)
	cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen redis
    bind 127.0.0.1:$haproxy_port
    server r1 127.0.0.1:$redis_port
EOF
	haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
	pids+=($!)
	wait_ping "$haproxy_port"
}
