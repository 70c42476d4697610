package proxy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/proc"
	"redis-proxy/internal/redistest"
)

// sentinel is one redis-sentinel process of a test.
type sentinel struct {
	addr string
	p    *proc.Process
	out  *proc.Output
}

// sentinelBinary finds redis-sentinel, or skips the test (fails it with
// CI=true).
func sentinelBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-sentinel")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-sentinel: %v (CI=true: a missing binary fails the test)", err)
		}
		t.Skipf("redis-sentinel: %v (with CI=true this fails)", err)
	}
	return bin
}

// sentinelAddrs returns n free loopback addresses for sentinels.
func sentinelAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		a, err := redistest.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	return addrs
}

// startSentinel starts redis-sentinel on addr monitoring master "m" at
// 127.0.0.1:port (quorum 2, down after 1 s, failover timeout 5 s) and
// returns once it monitors it; it is stopped by its PID at cleanup.
func startSentinel(t *testing.T, addr string, port int) *sentinel {
	t.Helper()
	bin := sentinelBinary(t)
	_, sport, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %s\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir %s\n"+
		"sentinel monitor m 127.0.0.1 %d 2\nsentinel down-after-milliseconds m 1000\nsentinel failover-timeout m 5000\n",
		sport, dir, port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var once sync.Once
	out := &proc.Output{Keep: 200, OnLine: func(line string) {
		if strings.Contains(line, "+monitor master m") {
			once.Do(func() { close(ready) })
		}
	}}
	p, err := proc.Start(bin, []string{conf}, proc.Options{Stdout: out, Stderr: out})
	if err != nil {
		t.Fatal(err)
	}
	s := &sentinel{addr: addr, p: p, out: out}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sentinel %s, last output:\n%s", addr, out.String())
		}
		p.Stop(5 * time.Second)
	})
	select {
	case <-ready:
	case <-p.Done():
		t.Fatalf("sentinel %s exited: %s", addr, out.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("sentinel %s not ready: %s", addr, out.String())
	}
	return s
}

// startSentinels starts three sentinels for the master at port and waits
// until each knows the other two and the replicas.
func startSentinels(t *testing.T, port, replicas int) []*sentinel {
	t.Helper()
	var ss []*sentinel
	for _, a := range sentinelAddrs(t, 3) {
		ss = append(ss, startSentinel(t, a, port))
	}
	for _, s := range ss {
		c := redistest.MustDial(t, s.addr)
		waitFor(t, "sentinel "+s.addr+" to know the others and the replicas", func() bool {
			v, err := c.Do("SENTINEL", "master", "m")
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for i := 0; i+1 < len(v.Elems); i += 2 {
				m[v.Elems[i].Str] = v.Elems[i+1].Str
			}
			return m["num-other-sentinels"] == "2" && m["num-slaves"] == strconv.Itoa(replicas)
		})
	}
	return ss
}

// switchMasterTimes records when a sentinel announced +switch-master.
type switchMasterTimes struct {
	mu    sync.Mutex
	times []time.Time
}

// firstAfter is the first announcement after t0.
func (s *switchMasterTimes) firstAfter(t0 time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for _, at := range s.times {
		if at.After(t0) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// listenSwitchMaster subscribes to +switch-master on every sentinel: each
// announces it when it learns of the switch, the leader first.
func listenSwitchMaster(t *testing.T, ss []*sentinel) *switchMasterTimes {
	t.Helper()
	s := &switchMasterTimes{}
	for _, sn := range ss {
		conn, err := net.Dial("tcp", sn.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "SUBSCRIBE +switch-master\r\n")
		s.listen(conn)
	}
	return s
}

func (s *switchMasterTimes) listen(conn net.Conn) {
	go func() {
		br := bufio.NewReader(conn)
		prev := ""
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			// The channel's name follows "message" in a message, and
			// "subscribe" in the confirmation.
			isMsg := prev == "message\r\n"
			if line[0] != '$' {
				prev = line
			}
			if isMsg && strings.HasPrefix(line, "+switch-master") {
				s.mu.Lock()
				s.times = append(s.times, time.Now())
				s.mu.Unlock()
			}
		}
	}()
}

// startReplicated starts a primary and n replicas of it, streaming.
func startReplicated(t *testing.T, n int) (*redistest.Server, []*redistest.Server) {
	t.Helper()
	primary := redistest.Start(t, replArgs...)
	var reps []*redistest.Server
	for range n {
		reps = append(reps, redistest.Start(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port)}, replArgs...)...))
	}
	waitFor(t, "the replicas online", func() bool {
		return infoReplication(t, primary.Addr)["connected_slaves"] == strconv.Itoa(n)
	})
	for _, r := range reps {
		waitFor(t, "replica "+r.Addr+" streaming", func() bool { return infoReplication(t, r.Addr)["master_link_status"] == "up" })
	}
	return primary, reps
}

// failoverLoad is clients writing through the proxy, one RPUSH at a
// time, each remembering when it sent every write acknowledged.
type failoverLoad struct {
	ws   []*failoverWriter
	stop chan struct{}
	wg   sync.WaitGroup
	n    atomic.Int64
}

type failoverWriter struct {
	key         string
	c           *redistest.Client
	seq         int64
	acked       []int64
	sentAt      []time.Time // of each acknowledged write
	errs        []string
	disconnects int
}

func startFailoverLoad(t *testing.T, addr string, n int) *failoverLoad {
	l := &failoverLoad{stop: make(chan struct{})}
	for i := range n {
		w := &failoverWriter{key: fmt.Sprintf("fw:%d", i), c: redistest.MustDial(t, addr)}
		w.c.SetTimeout(30 * time.Second)
		l.ws = append(l.ws, w)
	}
	for _, w := range l.ws {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				w.seq++
				sent := time.Now()
				v, err := w.c.Do("RPUSH", w.key, w.seq)
				if err != nil {
					w.disconnects++
					w.errs = append(w.errs, err.Error())
					return
				}
				if v.Err() != nil {
					w.errs = append(w.errs, v.Str)
					time.Sleep(time.Millisecond)
					continue
				}
				w.acked = append(w.acked, w.seq)
				w.sentAt = append(w.sentAt, sent)
				l.n.Add(1)
			}
		})
	}
	return l
}

func (l *failoverLoad) waitRounds(t *testing.T, n int64) {
	t.Helper()
	target := l.n.Load() + n
	waitFor(t, "the load to go on", func() bool { return l.n.Load() >= target })
}

func (l *failoverLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// check: no client disconnected; every error is one a failover may
// cause; every write sent after since (once the proxy was seen on addr)
// and acknowledged is on addr. A write acknowledged just after since may
// have been sent before, and answered by the old primary: Sentinel's own
// window, which may lose it.
func (l *failoverLoad) check(t *testing.T, addr string, since time.Time) {
	t.Helper()
	c := redistest.MustDial(t, addr)
	var after, errs int
	for i, w := range l.ws {
		if w.disconnects > 0 {
			t.Errorf("writer %d disconnected: %q", i, w.errs[len(w.errs)-1])
		}
		for _, e := range w.errs {
			if !strings.HasPrefix(e, "ERR proxy: uplink") && !strings.HasPrefix(e, "READONLY") {
				t.Errorf("writer %d: unexpected error %q", i, e)
			}
		}
		errs += len(w.errs)
		v, err := c.Do("LRANGE", w.key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		have := map[int64]bool{}
		for _, e := range v.Elems {
			n, _ := strconv.ParseInt(e.Str, 10, 64)
			have[n] = true
		}
		for j, seq := range w.acked {
			if w.sentAt[j].After(since) {
				after++
				if !have[seq] {
					t.Errorf("writer %d: write %d sent after the failover and acknowledged is not on %s", i, seq, addr)
					break
				}
			}
		}
	}
	t.Logf("%d writes sent after the failover and acknowledged, all on %s; %d error replies (uplink lost/unavailable, READONLY), 0 disconnects", after, addr, errs)
	if after == 0 {
		t.Errorf("no write sent after the failover was acknowledged")
	}
}

// sentinelConfig is a proxy configuration in Sentinel mode.
func sentinelConfig(addrs []string) *config.Config {
	cfg := testConfig("")
	cfg.Uplink.CheckIntervalMS = 200
	cfg.Uplink.Sentinel = config.Sentinel{Addrs: addrs, Master: "m"}
	return cfg
}

func sentinelAddrsOf(ss []*sentinel) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.addr)
	}
	return out
}

// waitUplink waits until the proxy's uplink is not from, and returns it
// and when it was seen.
func waitUplink(t *testing.T, p *Proxy, from string) (string, time.Time) {
	t.Helper()
	var to string
	waitFor(t, "the proxy to leave "+from, func() bool {
		to = p.Status().Uplink.Addr
		return to != from && to != ""
	})
	return to, time.Now()
}

// TestSentinelFollowsFailover: three sentinels, a primary and two
// replicas, clients writing through the proxy. The primary is killed:
// the proxy follows the master Sentinel elects as soon as it announces
// it, no client is disconnected and every write acknowledged after the
// move is on the new primary. Then a planned SENTINEL FAILOVER, followed
// the same way. Neither is written into a configuration file.
func TestSentinelFollowsFailover(t *testing.T) {
	primary, reps := startReplicated(t, 2)
	ss := startSentinels(t, primary.Port, 2)
	f := newConfigFile(t, "")
	listen, admin := f.cfg.Listen.Addr, f.cfg.Admin.Addr
	f.cfg = *sentinelConfig(sentinelAddrsOf(ss))
	f.cfg.Listen.Addr, f.cfg.Admin.Addr = listen, admin
	f.write()
	p := f.startSwitching()
	if have := p.Status().Uplink.Addr; have != primary.Addr {
		t.Fatalf("uplink at start-up: have %q, want %s (Sentinel's answer)", have, primary.Addr)
	}
	waitFor(t, "the +switch-master subscription", func() bool { return p.Status().Follow.Sentinel != "" })
	announced := listenSwitchMaster(t, ss)
	load := startFailoverLoad(t, p.Addr().String(), 8)
	load.waitRounds(t, 200)

	// Unplanned: SIGKILL the primary.
	killed := time.Now()
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	to, moved := waitUplink(t, p, primary.Addr)
	if !slices.ContainsFunc(reps, func(r *redistest.Server) bool { return r.Addr == to }) {
		t.Fatalf("moved to %s, not a replica", to)
	}
	load.waitRounds(t, 200)
	// The test's own subscriptions may hear the announcement after the
	// proxy has acted on it (or on get-master-addr-by-name).
	waitFor(t, "+switch-master seen", func() bool { _, ok := announced.firstAfter(killed); return ok })
	at, _ := announced.firstAfter(killed)
	// Negative: the proxy learnt it first (its own subscription, or
	// get-master-addr-by-name after a health check).
	t.Logf("unplanned: primary killed; +switch-master %v later; the proxy moved %v after it", at.Sub(killed).Round(time.Millisecond), moved.Sub(at).Round(time.Millisecond))
	// The proxy listens to one sentinel, which may learn of the switch up
	// to a hello period (2 s) after the leader announced it.
	if d := moved.Sub(at); d > 2500*time.Millisecond {
		t.Errorf("the proxy moved %v after +switch-master", d)
	}
	// The failover is counted once the move is done.
	waitFor(t, "the failover counted", func() bool { return p.Status().Counters.Failovers > 0 })
	if st := p.Status(); st.Counters.Failovers != 1 {
		t.Errorf("failovers: %d, want 1", st.Counters.Failovers)
	}

	// Planned: SENTINEL FAILOVER.
	from := to
	planned := time.Now()
	sc := redistest.MustDial(t, ss[0].addr)
	waitFor(t, "SENTINEL FAILOVER accepted", func() bool {
		v, err := sc.Do("SENTINEL", "FAILOVER", "m")
		if err != nil {
			t.Fatal(err)
		}
		if v.Err() != nil { // NOGOODSLAVE until Sentinel sees the other replica follow the new master
			time.Sleep(100 * time.Millisecond)
		}
		return v.Err() == nil
	})
	to2, moved2 := waitUplink(t, p, from)
	load.waitRounds(t, 200)
	load.finish()
	if at, ok := announced.firstAfter(planned); ok {
		t.Logf("planned: +switch-master; the proxy moved %v after it", moved2.Sub(at).Round(time.Millisecond))
		if d := moved2.Sub(at); d > 2500*time.Millisecond {
			t.Errorf("the proxy moved %v after +switch-master", d)
		}
	}
	load.check(t, to2, moved2)

	waitFor(t, "the second failover counted", func() bool { return p.Status().Counters.Failovers > 1 })
	st := p.Status()
	if st.Counters.Failovers != 2 {
		t.Errorf("failovers: %d, want 2", st.Counters.Failovers)
	}
	var fo []Event
	for _, e := range st.History {
		if e.Event == "failover" && e.OK {
			fo = append(fo, e)
		}
	}
	if len(fo) != 2 || !strings.Contains(fo[0].Detail, from+" -> "+to2) {
		t.Errorf("failover history: %+v", fo)
	}
	if cfg, err := config.Load(f.path); err != nil || cfg.Uplink.Addr != "" {
		t.Errorf("config file uplink.addr: %q %v; Sentinel mode writes nothing", cfg.Uplink.Addr, err)
	}
	if rep := p.Retarget(t.Context(), primary.Addr); rep == nil || !strings.Contains(rep.Error(), "Sentinel") {
		t.Errorf("Retarget in Sentinel mode: %v", rep)
	}
}

// TestSentinelDownAtStart: no sentinel answers at start-up; the proxy
// starts all the same, answers the uplink-unavailable error, and finds
// the master once a sentinel is up.
func TestSentinelDownAtStart(t *testing.T) {
	primary := redistest.Start(t)
	addrs := sentinelAddrs(t, 2)
	cfg := sentinelConfig(addrs)
	cfg.ReadTimeLimitMS = 1000
	p := startProxy(t, cfg)
	c := dial(t, p)
	expectPrefix(t, c, "(error) ERR proxy: uplink unavailable", "PING")

	startSentinel(t, addrs[1], primary.Port)
	up := time.Now()
	waitFor(t, "the proxy to find the master", func() bool { return p.Status().Uplink.Addr == primary.Addr })
	t.Logf("master found %v after the sentinel was up", time.Since(up).Round(time.Millisecond))
	expect(t, c, "OK", "SET", "k", "v")
	expect(t, redistest.MustDial(t, primary.Addr), `"v"`, "GET", "k")
	if n := p.Status().Counters.Failovers; n != 0 {
		t.Errorf("failovers: %d; finding the first master is not one", n)
	}
}
