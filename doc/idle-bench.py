#!/usr/bin/env python3
"""idle-bench.py PORT PID ADMIN N [sub]: N idle clients on the proxy at
127.0.0.1:PORT (process PID), each after one PING (or, with "sub", one
SUBSCRIBE to its own channel); prints the proxy's RSS per client once the
sessions have settled, and how long a pause takes with them connected
(last_pause_ms from ADMIN's /info.json, worst of 5). Python 3 stdlib only."""
import json, socket, sys, time, urllib.request

port, pid, admin, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sub = len(sys.argv) > 5 and sys.argv[5] == "sub"

def rss_kb():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

def admin_cmd(cmd):
    req = urllib.request.Request("http://%s/cmd/" % admin, data=("cmd=" + cmd).encode())
    urllib.request.urlopen(req, timeout=10).read()

def last_pause_ms():
    info = json.loads(urllib.request.urlopen("http://%s/info.json" % admin, timeout=10).read())
    return info["counters"]["last_pause_ms"]

before = rss_kb()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    socks.append(s)
for i, s in enumerate(socks):
    if sub:
        ch = b"ch%d" % i
        s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(ch), ch))
    else:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
ok = 0
for s in socks:
    want = b":1\r\n" if sub else b"+PONG\r\n"
    buf = b""
    while not buf.endswith(want):
        d = s.recv(256)
        if not d:
            break
        buf += d
    ok += buf.endswith(want)
time.sleep(1.5)  # as the rig: a settle time, then RSS
after = rss_kb()
worst = 0.0
for _ in range(5):
    admin_cmd("pause")
    worst = max(worst, last_pause_ms())
    admin_cmd("unpause")
print(json.dumps({"clients": n, "subscribed": sub, "answered": ok, "rss_before_kb": before,
                  "rss_after_kb": after, "per_client_kb": round((after - before) / n, 2),
                  "pause_worst_ms": worst}))
for s in socks:
    s.close()
