package proxy

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

// sentinelListed is the ip:port of every replica SENTINEL REPLICAS m
// lists on the sentinel c is connected to (flagged or not), sorted.
func sentinelListed(t *testing.T, c *redistest.Client) []string {
	t.Helper()
	v, err := c.Do("SENTINEL", "REPLICAS", "m")
	if err != nil || v.Err() != nil {
		t.Fatalf("SENTINEL REPLICAS: %v %v", v, err)
	}
	var out []string
	for _, e := range v.Elems {
		m := map[string]string{}
		for i := 0; i+1 < len(e.Elems); i += 2 {
			m[e.Elems[i].Str] = e.Elems[i+1].Str
		}
		out = append(out, m["ip"]+":"+m["port"])
	}
	slices.Sort(out)
	return out
}

// TestReplicaSentinelDiscovery: in Sentinel mode, replicas.discover asks
// the sentinels (SENTINEL REPLICAS). Three replicas, one of them with
// replica-announced no: the primary lists it, Sentinel does not, and the
// proxy does not read from it. Readers spread over the two Sentinel
// lists. One of those killed: Sentinel flags it (disconnected, s_down)
// and the proxy stops listing it as Sentinel's. The sentinel stopped: the proxy falls
// back to the primary's list, and the unannounced replica joins.
func TestReplicaSentinelDiscovery(t *testing.T) {
	primary := redistest.Start(t, replArgs...)
	of := []string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port)}
	a := redistest.Start(t, append(of, replArgs...)...)
	b := redistest.Start(t, append(of, replArgs...)...)
	hidden := redistest.Start(t, append(append(of, "--replica-announced", "no"), replArgs...)...)
	waitFor(t, "three replicas online", func() bool { return infoReplication(t, primary.Addr)["connected_slaves"] == "3" })
	announced := []string{a.Addr, b.Addr}
	slices.Sort(announced)

	s := startSentinel(t, sentinelAddrs(t, 1)[0], primary.Port)
	sc := redistest.MustDial(t, s.addr)
	// It finds all three in the primary's INFO at once, and leaves the
	// unannounced one out once it has read that replica's own INFO.
	waitFor(t, "Sentinel to list the two announced replicas only", func() bool {
		return slices.Equal(sentinelListed(t, sc), announced)
	})

	cfg := sentinelConfig([]string{s.addr})
	cfg.ListenRO = config.ListenRO{Addr: "127.0.0.1:0"}
	cfg.Replicas = config.Replicas{Discover: true, MaxLagBytes: 1 << 20}
	p := startProxy(t, cfg)
	waitFor(t, "two healthy replicas", func() bool { return healthyReplicas(p) == 2 })
	st := p.Status().Replicas
	if len(st) != 2 {
		t.Fatalf("replicas %+v: want the two Sentinel lists, not %s", st, hidden.Addr)
	}
	for _, r := range st {
		if !slices.Contains(announced, r.Addr) || r.Source != "sentinel "+s.addr {
			t.Errorf("replica %+v: want one of %v, source %q", r, announced, "sentinel "+s.addr)
		}
	}

	ro := p.ROAddr().String()
	spread := map[string]int{}
	var readers []*redistest.Client
	for range 10 {
		c := redistest.MustDial(t, ro)
		readers = append(readers, c)
		spread[infoPort(t, c)]++
	}
	if spread[a.Addr] != 5 || spread[b.Addr] != 5 {
		t.Errorf("readers spread %v, want 5 on %s and 5 on %s", spread, a.Addr, b.Addr)
	}

	// Killed: Sentinel still lists it, flagged (disconnected at once,
	// s_down after down-after-milliseconds), and the proxy no longer has
	// it from Sentinel.
	b.Kill()
	waitFor(t, "the killed replica no longer listed by Sentinel", func() bool {
		r, _ := replicaByAddr(p, b.Addr)
		return !r.Healthy && strings.Contains(r.Error, "no longer listed by Sentinel")
	})
	if n := len(sentinelListed(t, sc)); n != 2 {
		t.Errorf("Sentinel lists %d replicas; the test wants it to list the killed one, flagged", n)
	}
	for i, c := range readers {
		if at := infoPort(t, c); at != a.Addr {
			t.Errorf("reader %d on %s after the kill, want %s", i, at, a.Addr)
		}
	}

	// No sentinel answers: the primary's INFO replication, which lists
	// the unannounced replica.
	s.p.Stop(5 * time.Second)
	waitFor(t, "the unannounced replica discovered from the primary", func() bool {
		r, _ := replicaByAddr(p, hidden.Addr)
		return r.Healthy && r.Source == "primary"
	})
	if r, _ := replicaByAddr(p, a.Addr); !r.Healthy || r.Source != "primary" {
		t.Errorf("replica %+v after the sentinel stopped", r)
	}
}
