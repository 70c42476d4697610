package proxy

import (
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

// replicaSet starts a primary and n replicas of it, each with its link up.
func replicaSet(t *testing.T, n int) (*redistest.Server, []*redistest.Server) {
	t.Helper()
	primary := redistest.Start(t, replArgs...) // no 5 s wait before the sync
	host, port, _ := strings.Cut(primary.Addr, ":")
	var reps []*redistest.Server
	for range n {
		r := redistest.Start(t)
		expect(t, r.Client(t), "OK", "REPLICAOF", host, port)
		reps = append(reps, r)
	}
	for _, r := range reps {
		c := r.Client(t)
		waitFor(t, "link up on "+r.Addr, func() bool {
			return strings.Contains(do(t, c, "INFO", "replication"), "master_link_status:up")
		})
		c.Close()
	}
	return primary, reps
}

// roConfig is a proxy in front of primary with listen_ro reading from the
// replicas it discovers.
func roConfig(primary string, fallback bool) *config.Config {
	cfg := testConfig(primary)
	cfg.Uplink.CheckIntervalMS = 100
	cfg.ListenRO = config.ListenRO{Addr: "127.0.0.1:0"}
	cfg.Replicas = config.Replicas{Discover: true, MaxLagBytes: 1 << 20, FallbackPrimary: fallback}
	return cfg
}

// replicaByAddr is the status of the replica at addr.
func replicaByAddr(p *Proxy, addr string) (ReplicaInfo, bool) {
	for _, r := range p.Status().Replicas {
		if r.Addr == addr {
			return r, true
		}
	}
	return ReplicaInfo{}, false
}

func healthyReplicas(p *Proxy) int {
	n := 0
	for _, r := range p.Status().Replicas {
		if r.Healthy {
			n++
		}
	}
	return n
}

// serverPort is the port of the server answering c.
func serverPort(t *testing.T, c *redistest.Client) string {
	t.Helper()
	v, err := c.Do("CONFIG", "GET", "port")
	if err != nil || v.Err() != nil || len(v.Elems) != 2 {
		t.Fatalf("CONFIG GET port: %v %v", v, err)
	}
	return "127.0.0.1:" + v.Elems[1].Str
}

// TestReplicaReads: 30 readers on listen_ro spread evenly over three
// replicas, each read answered by a replica; a replica killed: its readers
// go on on the others, none disconnected and no read failed; a replica
// stopped (SIGSTOP) stops getting readers and its readers move; continued,
// it is used again for new clients; all stopped: reads go to the primary,
// and back to a replica once one is healthy.
func TestReplicaReads(t *testing.T) {
	primary, reps := replicaSet(t, 3)
	p := startProxy(t, roConfig(primary.Addr, true))
	waitFor(t, "three healthy replicas", func() bool { return healthyReplicas(p) == 3 })

	ro := p.ROAddr().String()
	var readers []*redistest.Client
	for range 30 {
		c := redistest.MustDial(t, ro)
		if have := do(t, c, "ROLE"); !strings.Contains(have, `"slave"`) {
			t.Fatalf("ROLE through listen_ro: %q", have)
		}
		readers = append(readers, c)
	}
	count := func() map[string]int {
		m := make(map[string]int)
		for _, c := range readers {
			m[serverPort(t, c)]++
		}
		return m
	}
	spread := count()
	for _, r := range reps {
		if n := spread[r.Addr]; n < 8 || n > 12 {
			t.Errorf("spread %v: %s has %d readers, want 10±2", spread, r.Addr, n)
		}
		if st, _ := replicaByAddr(p, r.Addr); st.Clients != spread[r.Addr] {
			t.Errorf("status %+v, readers on it %d", st, spread[r.Addr])
		}
	}
	// A write on listen goes to the primary; a write on listen_ro gets
	// the replica's own answer.
	expect(t, dial(t, p), "OK", "SET", "k", "v")
	if have := do(t, readers[0], "SET", "k", "v"); !strings.HasPrefix(have, "(error) READONLY") {
		t.Errorf("SET on listen_ro: %q", have)
	}

	// Killed: its readers are on the other two, none disconnected.
	dead := reps[0]
	dead.Kill()
	time.Sleep(150 * time.Millisecond) // one check interval and a little
	after := count()
	if after[dead.Addr] != 0 || after[reps[1].Addr]+after[reps[2].Addr] != 30 {
		t.Errorf("after the kill: %v", after)
	}
	waitFor(t, "the killed replica unhealthy", func() bool { st, _ := replicaByAddr(p, dead.Addr); return !st.Healthy })

	// Stopped: fails its checks, its readers move (a check times out in
	// at most 250 ms).
	stopped := reps[1]
	stopped.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { stopped.Signal(syscall.SIGCONT) })
	waitFor(t, "the stopped replica unhealthy", func() bool { st, _ := replicaByAddr(p, stopped.Addr); return !st.Healthy })
	if after := count(); after[reps[2].Addr] != 30 {
		t.Errorf("after the stop: %v", after)
	}
	// Continued: healthy again, and the new clients go to it.
	stopped.Signal(syscall.SIGCONT)
	waitFor(t, "the continued replica healthy", func() bool { st, _ := replicaByAddr(p, stopped.Addr); return st.Healthy })
	c := redistest.MustDial(t, ro)
	if port := serverPort(t, c); port != stopped.Addr {
		t.Errorf("a new client after the catch-up on %s, want %s (fewest clients)", port, stopped.Addr)
	}
	c.Close()

	// None healthy: the primary answers (fallback_primary), counted.
	reps[2].Signal(syscall.SIGSTOP)
	stopped.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { reps[2].Signal(syscall.SIGCONT) })
	waitFor(t, "no healthy replica", func() bool { return healthyReplicas(p) == 0 })
	for _, c := range readers[:5] {
		if have := do(t, c, "ROLE"); !strings.Contains(have, `"master"`) {
			t.Errorf("ROLE in fallback: %q", have)
		}
	}
	if n := p.Status().Counters.ReadFallbacks; n < 5 {
		t.Errorf("read_fallbacks %d, want 5 or more", n)
	}
	// One back: the readers in fallback return to it at their next command.
	reps[2].Signal(syscall.SIGCONT)
	waitFor(t, "a healthy replica again", func() bool { return healthyReplicas(p) == 1 })
	for _, c := range readers[:5] {
		if port := serverPort(t, c); port != reps[2].Addr {
			t.Errorf("after the fallback on %s, want %s", port, reps[2].Addr)
		}
	}
	stopped.Signal(syscall.SIGCONT)
	for _, c := range readers {
		c.Close()
	}
}

// TestReplicaNoneNoFallback: no healthy replica and fallback_primary off:
// the uplink-unavailable error, and the client stays connected.
func TestReplicaNoneNoFallback(t *testing.T) {
	primary := redistest.Start(t)
	cfg := roConfig(primary.Addr, false)
	addr, _ := redistest.FreeAddr()
	cfg.Replicas.Addrs, cfg.Replicas.Discover = []string{addr}, false
	p := startProxy(t, cfg)
	waitFor(t, "the replica checked", func() bool { st, _ := replicaByAddr(p, addr); return st.Error != "" })
	c := redistest.MustDial(t, p.ROAddr().String())
	expect(t, c, "(error) ERR proxy: uplink unavailable: no healthy replica", "GET", "k")
	expect(t, c, "(error) ERR proxy: uplink unavailable: no healthy replica", "GET", "k")
	if st, _ := replicaByAddr(p, addr); st.Healthy || st.Clients != 0 {
		t.Errorf("status: %+v", st)
	}
}

// TestReplicaListenerPass: listen_ro asks for its own password; listen's
// is not it, and a reader with it reads from the replica.
func TestReplicaListenerPass(t *testing.T) {
	primary, reps := replicaSet(t, 1)
	cfg := roConfig(primary.Addr, false)
	cfg.Listen.Pass, cfg.ListenRO.Pass = "rw-secret", "ro-secret"
	p := startProxy(t, cfg)
	waitFor(t, "a healthy replica", func() bool { return healthyReplicas(p) == 1 })
	c := redistest.MustDial(t, p.ROAddr().String())
	expectPrefix(t, c, "(error) NOAUTH", "GET", "k")
	expectPrefix(t, c, "(error) WRONGPASS", "AUTH", "rw-secret")
	expect(t, c, "OK", "AUTH", "ro-secret")
	if port := serverPort(t, c); port != reps[0].Addr {
		t.Errorf("read on %s, want the replica %s", port, reps[0].Addr)
	}
	if cl := p.Clients(); len(cl) != 1 || cl[0].Listener != "listen_ro" || cl[0].Server != reps[0].Addr {
		t.Errorf("clients: %+v", cl)
	}
}

// TestReplicaSetFollowsASwitch: cmd=switch to one of the replicas: it
// leaves the read set and its readers move; the fenced old primary joins
// the set once healthy; no reader is disconnected.
func TestReplicaSetFollowsASwitch(t *testing.T) {
	primary, reps := replicaSet(t, 2)
	cfg := roConfig(primary.Addr, false)
	cfg.Replicas.Addrs = []string{primary.Addr, reps[0].Addr, reps[1].Addr}
	cfg.Switch.Fence = true
	cfg.Switch.CatchupTimeoutMS, cfg.Switch.GateTimeoutMS = 10000, 2000
	p := startProxy(t, cfg)
	waitFor(t, "two healthy replicas", func() bool { return healthyReplicas(p) == 2 })
	ro := p.ROAddr().String()
	var readers []*redistest.Client
	for range 10 {
		c := redistest.MustDial(t, ro)
		expectPrefix(t, c, "1) \"slave\"", "ROLE")
		readers = append(readers, c)
	}
	promoted := reps[0]
	rep, err := p.Switch(t.Context(), promoted.Addr, false)
	if err != nil || !rep.OK {
		t.Fatalf("switch: %+v %v", rep, err)
	}
	waitFor(t, "the promoted replica left the read set, the old primary joined it", func() bool {
		np, _ := replicaByAddr(p, promoted.Addr)
		op, _ := replicaByAddr(p, primary.Addr)
		return !np.Healthy && op.Healthy
	})
	for i, c := range readers {
		if have := do(t, c, "ROLE"); !strings.HasPrefix(have, "1) \"slave\"") {
			t.Fatalf("reader %d after the switch: ROLE %q", i, have)
		}
		if at := serverPort(t, c); at == promoted.Addr {
			t.Errorf("reader %d still reads from the promoted server", i)
		}
	}
	if st := p.Status(); st.Clients < len(readers) {
		t.Errorf("%d clients after the switch, want at least %d: readers were disconnected", st.Clients, len(readers))
	}
}

// TestReplicaDialFailureLogged: a client's dial to a replica that died
// since its last check is logged naming that replica, not the primary;
// the replica is marked unhealthy and the read goes to the primary
// (fallback_primary).
func TestReplicaDialFailureLogged(t *testing.T) {
	primary, reps := replicaSet(t, 1)
	cfg := roConfig(primary.Addr, true)
	cfg.Uplink.CheckIntervalMS = 60000 // one check at start-up, no other in the test
	var logs syncBuffer
	p := startProxy(t, cfg, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	waitFor(t, "a healthy replica", func() bool { return healthyReplicas(p) == 1 })
	reps[0].Kill()
	c := redistest.MustDial(t, p.ROAddr().String())
	expectPrefix(t, c, `1) "master"`, "ROLE")
	var line string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "dial failed") {
			line = l
			break
		}
	}
	if !strings.Contains(line, `msg="replica dial failed" replica=`+reps[0].Addr+" ") || strings.Contains(line, primary.Addr) {
		t.Errorf("the dial failure's log line: %q, want it to name the replica %s", line, reps[0].Addr)
	}
	if st, _ := replicaByAddr(p, reps[0].Addr); st.Healthy || !strings.Contains(st.Error, "dial failed") {
		t.Errorf("status: %+v", st)
	}
}
