package proxy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

func TestParseReplication(t *testing.T) {
	master := "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n" +
		"slave0:ip=10.0.0.2,port=6380,state=online,offset=1234,lag=0\r\n" +
		"slave1:ip=10.0.0.3,port=6381,state=wait_bgsave,offset=0,lag=1\r\n" +
		"master_failover_state:no-failover\r\nmaster_replid:abc\r\nmaster_repl_offset:1234\r\nsecond_repl_offset:-1\r\n"
	replica := "# Replication\nrole:slave\nmaster_host:10.0.0.1\nmaster_port:6379\nmaster_link_status:up\n" +
		"master_last_io_seconds_ago:1\nmaster_sync_in_progress:0\nslave_read_repl_offset:990\nslave_repl_offset:987\nslave_priority:100\n" +
		"connected_slaves:0\nmaster_repl_offset:987\n"
	cases := []struct {
		name, info string
		want       replInfo
	}{
		{"empty", "", replInfo{}},
		{"master with replicas", master, replInfo{role: "master", masterReplOffset: 1234, slaves: []replSlave{
			{ip: "10.0.0.2", port: 6380, state: "online", offset: 1234},
			{ip: "10.0.0.3", port: 6381, state: "wait_bgsave", lag: 1},
		}}},
		{"replica", replica, replInfo{role: "slave", masterHost: "10.0.0.1", masterPort: 6379, masterLinkStatus: "up",
			masterSyncInProgress: "0", slaveReplOffset: 987, masterReplOffset: 987}},
		{"link down, no trailing newline", "role:slave\r\nmaster_link_status:down", replInfo{role: "slave", masterLinkStatus: "down"}},
		{"garbage and bad numbers", "nonsense\r\n#role:slave\r\nmaster_repl_offset:x\r\nslavex:ip=1\r\nslave_read_only:1\r\nrole:master\r\n",
			replInfo{role: "master"}},
		{"IPv6 replica", "slave0:ip=::1,port=7000,state=online,offset=5,lag=2\n",
			replInfo{slaves: []replSlave{{ip: "::1", port: 7000, state: "online", offset: 5, lag: 2}}}},
	}
	for _, tc := range cases {
		if have := parseReplication(tc.info); !reflect.DeepEqual(have, tc.want) {
			t.Errorf("%s:\nhave %+v\nwant %+v", tc.name, have, tc.want)
		}
	}
}

// healthConfig is testConfig with health checks every interval.
func healthConfig(addr string, interval time.Duration) *config.Config {
	cfg := testConfig(addr)
	cfg.Uplink.CheckIntervalMS = int(interval / time.Millisecond)
	return cfg
}

func waitHealth(t *testing.T, p *Proxy, what string, cond func(Health) bool) Health {
	t.Helper()
	var h Health
	waitFor(t, what, func() bool { h = p.Health(); return cond(h) })
	return h
}

// TestHealthCheck: the check reports the role and offset of a master, on a
// connection of its own with the uplink's credentials, fails while the
// uplink is down and passes again when it is back.
func TestHealthCheck(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "up-secret")
	cfg := healthConfig(srv.Addr, 50*time.Millisecond)
	cfg.Uplink.Pass = "up-secret"
	p := startProxy(t, cfg)

	h := waitHealth(t, p, "a passing check", func(h Health) bool { return h.OK })
	if h.Role != "master" || h.Error != "" || h.MasterReplOffset < 0 {
		t.Fatalf("health: %+v", h)
	}
	if _, err := time.Parse(time.RFC3339, h.LastCheck); err != nil {
		t.Errorf("last_check %q: %v", h.LastCheck, err)
	}
	if st := p.Status().Uplink.Health; !st.OK || st.Role != "master" {
		t.Errorf("Status().Uplink.Health: %+v", st)
	}
	if ri := p.lastReplication(); ri.role != "master" {
		t.Errorf("lastReplication: %+v", ri)
	}
	// One connection of its own, kept between checks (CLIENT LIST shows
	// the proxy's client and the checker, not one connection per check).
	direct := srv.Client(t)
	expect(t, direct, "OK", "AUTH", "up-secret")
	time.Sleep(200 * time.Millisecond)
	list := do(t, direct, "CLIENT", "LIST")
	if n := strings.Count(list, "cmd=info"); n != 1 {
		t.Errorf("connections whose last command was INFO: have %d, want 1\n%s", n, list)
	}
	direct.Close()

	srv.Kill()
	h = waitHealth(t, p, "a failing check", func(h Health) bool { return !h.OK })
	if h.Error == "" || h.Role != "" {
		t.Errorf("after Kill: %+v", h)
	}
	failures := h.Failures
	waitHealth(t, p, "more failed checks", func(h Health) bool { return h.Failures > failures })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	h = waitHealth(t, p, "a passing check after the restart", func(h Health) bool { return h.OK })
	if h.Role != "master" || h.Error != "" || h.LatencyMS <= 0 {
		t.Errorf("after Restart: %+v", h)
	}
}

// TestHealthCheckWrongPassword: a refused AUTH is a failed check.
func TestHealthCheckWrongPassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "up-secret")
	cfg := healthConfig(srv.Addr, 50*time.Millisecond)
	cfg.Uplink.Pass = "wrong"
	p := startProxy(t, cfg)
	h := waitHealth(t, p, "a check", func(h Health) bool { return h.LastCheck != "" })
	if h.OK || !strings.Contains(h.Error, "WRONGPASS") {
		t.Errorf("health: %+v", h)
	}
}

// TestHealthCheckReplica: a replica reports role slave, and the parse
// keeps its link and offsets; its primary lists it.
func TestHealthCheckReplica(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.Start(t)
	host, port, _ := strings.Cut(primary.Addr, ":")
	expect(t, replica.Client(t), "OK", "REPLICAOF", host, port)

	p := startProxy(t, healthConfig(replica.Addr, 50*time.Millisecond))
	waitFor(t, "the replica's link up", func() bool { return p.lastReplication().masterLinkStatus == "up" })
	h := p.Health()
	ri := p.lastReplication()
	if !h.OK || h.Role != "slave" || ri.role != "slave" || ri.masterHost != host || fmt.Sprint(ri.masterPort) != port {
		t.Errorf("replica: health %+v, replication %+v", h, ri)
	}

	q := startProxy(t, healthConfig(primary.Addr, 50*time.Millisecond))
	waitFor(t, "the primary to list its replica", func() bool { return len(q.lastReplication().slaves) == 1 })
	if s := q.lastReplication().slaves[0]; s.ip == "" || s.port == 0 || s.state == "" {
		t.Errorf("replica as listed: %+v", s)
	}
	// A write moves the primary's offset, and the next checks see it.
	expect(t, dial(t, q), "OK", "SET", "k", strings.Repeat("v", 1000))
	waitFor(t, "the offset to move", func() bool { return q.Health().MasterReplOffset > 1000 })
	waitFor(t, "the replica to apply it", func() bool {
		return p.lastReplication().slaveReplOffset == q.Health().MasterReplOffset
	})
}

// TestHealthCheckReload: a reload that moves the uplink moves the checks;
// one that turns them off clears the result; one that turns them on
// checks at once.
func TestHealthCheckReload(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	host, port, _ := strings.Cut(a.Addr, ":")
	expect(t, b.Client(t), "OK", "REPLICAOF", host, port)

	var mu sync.Mutex
	next := healthConfig(a.Addr, 50*time.Millisecond)
	p := startProxy(t, healthConfig(a.Addr, 50*time.Millisecond), func(o *Options) {
		o.LoadConfig = func() (*config.Config, error) { mu.Lock(); defer mu.Unlock(); return next, nil }
	})
	reload := func(cfg *config.Config) {
		t.Helper()
		mu.Lock()
		next = cfg
		mu.Unlock()
		if err := p.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitHealth(t, p, "role master", func(h Health) bool { return h.OK && h.Role == "master" })
	reload(healthConfig(b.Addr, 50*time.Millisecond))
	waitHealth(t, p, "role slave after the reload", func(h Health) bool { return h.OK && h.Role == "slave" })

	reload(healthConfig(b.Addr, 0))
	waitHealth(t, p, "no result with checks off", func(h Health) bool { return h.LastCheck == "" })
	time.Sleep(150 * time.Millisecond)
	if h := p.Health(); h.LastCheck != "" {
		t.Errorf("checks off, yet: %+v", h)
	}

	// An hour's interval: only the reload's own check can pass in time.
	reload(healthConfig(a.Addr, time.Hour))
	waitHealth(t, p, "a check right after the reload", func(h Health) bool { return h.OK && h.Role == "master" })
}

// TestHealthCheckOff: with check_interval_ms 0 nothing is checked.
func TestHealthCheckOff(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	time.Sleep(100 * time.Millisecond)
	if h := p.Health(); h != (Health{}) {
		t.Errorf("checks off: %+v", h)
	}
	list := do(t, srv.Client(t), "CLIENT", "LIST")
	if n := strings.Count(list, "id="); n != 1 {
		t.Errorf("connections to Redis: want only this one\n%s", list)
	}
}

// TestHealthCheckClientsUnaffected runs pipelined client commands and a
// transaction while checks run every millisecond: no client sees a reply
// that is not its own (a check on a client's connection would put PONG or
// INFO's text among them, or a command inside its MULTI).
func TestHealthCheckClientsUnaffected(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, healthConfig(srv.Addr, time.Millisecond))
	waitHealth(t, p, "a passing check", func(h Health) bool { return h.OK })
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, p)
			for round := range 50 {
				cmds := make([][]any, 0, 20)
				for j := range 20 {
					cmds = append(cmds, []any{"ECHO", fmt.Sprintf("%d-%d-%d", i, round, j)})
				}
				vals, err := c.Pipeline(cmds...)
				if err != nil {
					t.Error(err)
					return
				}
				for j, v := range vals {
					if want := fmt.Sprintf("%q", fmt.Sprintf("%d-%d-%d", i, round, j)); v.String() != want {
						t.Errorf("client %d: have %s, want %s", i, v, want)
						return
					}
				}
				vals, err = c.Pipeline([]any{"MULTI"}, []any{"INCR", "n"}, []any{"EXEC"})
				if err != nil || len(vals) != 3 || vals[0].String() != "OK" || vals[1].String() != "QUEUED" ||
					!strings.HasPrefix(vals[2].String(), "1) (integer)") {
					t.Errorf("client %d: MULTI: %v %v", i, vals, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if h := p.Health(); h.Failures != 0 {
		t.Errorf("failed checks: %+v", h)
	}
}

// TestHealthCheckShutdown: the check loop and its connection end with the
// proxy, at once even while a check waits for an uplink that does not
// answer (SIGSTOP).
func TestHealthCheckShutdown(t *testing.T) {
	srv := redistest.Start(t)
	before := relCount()
	p, err := New(healthConfig(srv.Addr, 3*time.Second), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, p, "a passing check", func(h Health) bool { return h.OK })
	if err := srv.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Signal(syscall.SIGCONT) })
	p.health.reconfigured() // a check now, which hangs
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	relShutdown(t, p)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v with a check hanging", d)
	}
	checkNoLeaks(t, before)
}
