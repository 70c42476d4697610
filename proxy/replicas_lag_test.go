package proxy

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"redis-proxy/internal/redistest"
)

// infoPort is the tcp_port INFO server reports through c: which server
// answers c, as 127.0.0.1:port.
func infoPort(t *testing.T, c *redistest.Client) string {
	t.Helper()
	v, err := c.Do("INFO", "server")
	if err != nil || v.Err() != nil {
		t.Fatalf("INFO server: %v %v", v, err)
	}
	for line := range strings.Lines(v.Str) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "tcp_port:"); ok {
			return "127.0.0.1:" + p
		}
	}
	t.Fatalf("INFO server without tcp_port: %q", v.Str)
	return ""
}

// offset reads an integer field of INFO replication.
func offset(t *testing.T, m map[string]string, key string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(m[key], 10, 64)
	if err != nil {
		t.Fatalf("INFO replication %s: %q", key, m[key])
	}
	return n
}

// TestReplicaLag: a replica that is up but lagging. One replica
// replicates straight from the primary, the other through a relay
// (faultRelay, rel_relay_test.go). The relay is stalled: the replication
// stream stops reaching that replica while both connections stay open,
// so its master_link_status stays up. A few KiB written on the primary
// (max_lag_bytes 1000): the proxy finds it lagging, gives it no new
// readers and moves its readers to the other replica before their next
// command, none disconnected. Resumed, it catches up and gets new
// readers again.
func TestReplicaLag(t *testing.T) {
	primary := redistest.Start(t, replArgs...)
	pport := strconv.Itoa(primary.Port)
	direct := redistest.Start(t, append([]string{"--replicaof", "127.0.0.1", pport}, replArgs...)...)
	relay := startRelay(t, primary.Addr)
	_, rport, _ := net.SplitHostPort(relay.Addr)
	relayed := redistest.Start(t, append([]string{"--replicaof", "127.0.0.1", rport}, replArgs...)...)
	for _, r := range []*redistest.Server{direct, relayed} {
		waitFor(t, "replica "+r.Addr+" streaming", func() bool { return infoReplication(t, r.Addr)["master_link_status"] == "up" })
	}
	// The primary lists the relayed replica with the relay's source
	// address (127.0.0.1) and the port the replica announces: its own.
	waitFor(t, "the primary to list both replicas", func() bool {
		m := infoReplication(t, primary.Addr)
		return m["connected_slaves"] == "2" && strings.Contains(m["slave0"]+m["slave1"], "port="+strconv.Itoa(relayed.Port)+",")
	})

	cfg := roConfig(primary.Addr, false)
	cfg.Replicas.MaxLagBytes = 1000
	p := startProxy(t, cfg)
	waitFor(t, "two healthy replicas, the relayed one discovered at its own address", func() bool {
		st, ok := replicaByAddr(p, relayed.Addr)
		return ok && st.Healthy && healthyReplicas(p) == 2
	})

	ro := p.ROAddr().String()
	var readers []*redistest.Client
	for range 6 {
		readers = append(readers, redistest.MustDial(t, ro))
	}
	var moving []*redistest.Client // the readers on the relayed replica
	for _, c := range readers {
		if infoPort(t, c) == relayed.Addr {
			moving = append(moving, c)
		}
	}
	if len(moving) != 3 {
		t.Fatalf("%d of 6 readers on the relayed replica, want 3", len(moving))
	}

	// Stalled: a few KiB written, none of it reaches the relayed replica.
	relay.Stall()
	w := primary.Client(t)
	val := strings.Repeat("x", 512)
	for i := range 8 {
		expect(t, w, "OK", "SET", "lag:"+strconv.Itoa(i), val)
	}
	// The direct replica has it all.
	expect(t, w, "(integer) 1", "WAIT", 1, 5000)
	wrote := offset(t, infoReplication(t, primary.Addr), "master_repl_offset")

	// The direct replica may lag too, for the check that reads the
	// primary's offset while the burst is on its way to it.
	waitFor(t, "the relayed replica unhealthy for its lag, the direct one healthy", func() bool {
		st, _ := replicaByAddr(p, relayed.Addr)
		ds, _ := replicaByAddr(p, direct.Addr)
		return !st.Healthy && strings.Contains(st.Error, "lags") && ds.Healthy
	})
	st, _ := replicaByAddr(p, relayed.Addr)
	info := infoReplication(t, relayed.Addr)
	if info["master_link_status"] != "up" {
		t.Fatalf("relayed replica: master_link_status %q, want up (lagging, not down)", info["master_link_status"])
	}
	if have := offset(t, info, "slave_repl_offset"); wrote-have <= 1000 || st.LagBytes <= 1000 {
		t.Fatalf("relayed replica at %d, the primary at %d; status %+v: not lagging by over 1000 bytes", have, wrote, st)
	}
	t.Logf("lagging: %+v; master_link_status up", st)

	// Its readers move before their next command, on the same
	// connection, and read what the lagging replica has not got.
	for i, c := range moving {
		if at := infoPort(t, c); at != direct.Addr {
			t.Errorf("moving reader %d: next command answered by %s, want %s", i, at, direct.Addr)
		}
		expect(t, c, `"`+val+`"`, "GET", "lag:7")
	}
	if st, _ := replicaByAddr(p, relayed.Addr); st.Clients != 0 {
		t.Errorf("relayed replica still has %d clients", st.Clients)
	}
	// New readers go to the healthy one only.
	for range 3 {
		c := redistest.MustDial(t, ro)
		readers = append(readers, c)
		if at := infoPort(t, c); at != direct.Addr {
			t.Errorf("new reader while lagging: on %s, want %s", at, direct.Addr)
		}
	}
	if n := p.Status().Clients; n != len(readers) {
		t.Errorf("%d clients, want %d: a reader was disconnected", n, len(readers))
	}
	if ds, _ := replicaByAddr(p, direct.Addr); ds.Clients != len(readers) {
		t.Errorf("direct replica: %+v, want all %d readers", ds, len(readers))
	}

	// Resumed: it catches up and is used again for new clients.
	relay.Resume()
	waitFor(t, "the relayed replica healthy again", func() bool { st, _ := replicaByAddr(p, relayed.Addr); return st.Healthy })
	waitFor(t, "the relayed replica caught up", func() bool {
		return offset(t, infoReplication(t, relayed.Addr), "slave_repl_offset") >= wrote
	})
	c := redistest.MustDial(t, ro)
	if at := infoPort(t, c); at != relayed.Addr {
		t.Errorf("a new reader after the catch-up on %s, want %s (fewest clients)", at, relayed.Addr)
	}
	expect(t, c, `"`+val+`"`, "GET", "lag:7")
	c.Close()
	for _, c := range readers {
		if _, err := c.Do("PING"); err != nil {
			t.Errorf("reader lost: %v", err)
		}
		c.Close()
	}
}
