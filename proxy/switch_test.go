package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

// replArgs make a fresh replica's first sync quick: no 5 s wait for more
// replicas before a diskless sync.
var replArgs = []string{"--repl-diskless-sync-delay", "0"}

// startSwitching starts a proxy from f that writes its new uplink into
// f's file.
func (f *configFile) startSwitching() *Proxy {
	f.t.Helper()
	cfg, err := config.Load(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	return startProxy(f.t, cfg, func(o *Options) {
		o.LoadConfig = func() (*config.Config, error) { return config.Load(f.path) }
		o.ConfigPath = f.path
	})
}

// switchConfig is a config file for a proxy in front of upAddr with the
// switch settings of the tests.
func switchConfig(t *testing.T, upAddr string, peers ...string) *configFile {
	f := newConfigFile(t, upAddr)
	f.cfg.Switch = config.Switch{CatchupTimeoutMS: 20000, GateTimeoutMS: 1000, Fence: true, Peers: append([]string{}, peers...)}
	f.write()
	return f
}

// switchTo runs one switch and fails the test unless it succeeds.
func switchTo(t *testing.T, p *Proxy, to string) SwitchReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := p.Switch(ctx, to, true)
	if err != nil || !rep.OK || rep.Error != "" {
		t.Fatalf("switch to %s: %v; report %+v", to, err, rep)
	}
	return rep
}

// infoReplication reads INFO replication of a server.
func infoReplication(t *testing.T, addr string) map[string]string {
	t.Helper()
	c, err := redistest.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Do("INFO", "replication")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(v.Str, "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = val
		}
	}
	return m
}

// writer is one client of the load: it appends its sequence numbers to
// its own list (in its own db) and remembers those acknowledged.
type writer struct {
	id, kind, db int
	key          string
	c            *redistest.Client
	acked        []int64
	errs         []string
	disconnects  int
	seq          int64
}

// The kinds of writer: pipelines of 5, MULTI blocks of 2, RESP3 singles.
const (
	wkPipeline = iota
	wkMulti
	wkResp3
	wkKinds
)

func newWriter(t *testing.T, addr string, id int) *writer {
	t.Helper()
	w := &writer{id: id, kind: id % wkKinds, db: id % 4, key: fmt.Sprintf("w:%s:%d", addr, id)}
	w.c = redistest.MustDial(t, addr)
	w.c.SetTimeout(30 * time.Second)
	expect(t, w.c, "OK", "SELECT", strconv.Itoa(w.db))
	if w.kind == wkResp3 {
		if v, err := w.c.Do("HELLO", "3"); err != nil || v.Type != '%' {
			t.Fatalf("HELLO 3: %v %v", v, err)
		}
	}
	return w
}

// round sends one batch; it returns false once the connection broke.
func (w *writer) round() bool {
	var cmds [][]any
	var seqs []int64
	next := func() int64 { w.seq++; seqs = append(seqs, w.seq); return w.seq }
	switch w.kind {
	case wkPipeline:
		for range 5 {
			cmds = append(cmds, []any{"RPUSH", w.key, next()})
		}
	case wkMulti:
		cmds = [][]any{{"MULTI"}, {"RPUSH", w.key, next()}, {"RPUSH", w.key, next()}, {"EXEC"}}
	default:
		cmds = [][]any{{"RPUSH", w.key, next()}}
	}
	vs, err := w.c.Pipeline(cmds...)
	if err != nil {
		w.disconnects++
		w.errs = append(w.errs, err.Error())
		return false
	}
	ok := true
	for _, v := range vs {
		if v.Err() != nil {
			ok = false
			w.errs = append(w.errs, v.Str)
		}
	}
	if w.kind == wkMulti && (len(vs) != 4 || vs[3].Type != '*' || len(vs[3].Elems) != 2) {
		ok = false
		w.errs = append(w.errs, fmt.Sprintf("EXEC: %v", vs))
	}
	if ok {
		w.acked = append(w.acked, seqs...)
	}
	return true
}

// load runs writers until stop; wait returns them.
type writers struct {
	ws   []*writer
	stop chan struct{}
	wg   sync.WaitGroup
	n    atomic.Int64
}

func startSwitchLoad(t *testing.T, addrs []string, n int) *writers {
	l := &writers{stop: make(chan struct{})}
	for i := range n {
		l.ws = append(l.ws, newWriter(t, addrs[i%len(addrs)], i))
	}
	for _, w := range l.ws {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				if !w.round() {
					return
				}
				l.n.Add(1)
			}
		}()
	}
	return l
}

// waitRounds waits until the writers together did n more rounds.
func (l *writers) waitRounds(t *testing.T, n int64) {
	t.Helper()
	target := l.n.Load() + n
	waitFor(t, "the load to go on", func() bool { return l.n.Load() >= target })
}

func (l *writers) finish() {
	close(l.stop)
	l.wg.Wait()
}

// check verifies on addr that every acknowledged write is there exactly
// once, in order, and that no writer saw an error or a disconnect.
func (l *writers) check(t *testing.T, addr string) {
	t.Helper()
	c := redistest.MustDial(t, addr)
	var acked int
	for _, w := range l.ws {
		if w.disconnects > 0 || len(w.errs) > 0 {
			t.Errorf("writer %d (kind %d): %d disconnects, errors %q", w.id, w.kind, w.disconnects, w.errs[:min(len(w.errs), 3)])
		}
		expect(t, c, "OK", "SELECT", strconv.Itoa(w.db))
		v, err := c.Do("LRANGE", w.key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		have := make([]int64, 0, len(v.Elems))
		for _, e := range v.Elems {
			n, _ := strconv.ParseInt(e.Str, 10, 64)
			have = append(have, n)
		}
		if !slices.Equal(have, w.acked) {
			t.Errorf("writer %d: %d entries on %s, %d acknowledged (first ones: have %v, want %v)",
				w.id, len(have), addr, len(w.acked), have[:min(len(have), 5)], w.acked[:min(len(w.acked), 5)])
		}
		acked += len(w.acked)
	}
	t.Logf("%d acknowledged writes of %d writers, all on %s once", acked, len(l.ws), addr)
}

// pausedStats is the p50 and max of the switches' paused_ms.
func pausedStats(reps []SwitchReport) (p50, worst float64) {
	var xs []float64
	for _, r := range reps {
		xs = append(xs, r.PausedMS)
	}
	slices.Sort(xs)
	return xs[(len(xs)-1)/2], xs[len(xs)-1]
}

// TestSwitchUnderLoad: 50 clients (pipelines, MULTI, RESP3, four dbs)
// through N switches, each to a fresh empty server (attach=yes): no
// error, no disconnect, every acknowledged write on the final primary
// once; each old primary is fenced; the file names the final primary.
func TestSwitchUnderLoad(t *testing.T) {
	n := 5
	if *relLong { // -long: 20 switches
		n = 20
	}
	cur := redistest.Start(t, replArgs...)
	f := switchConfig(t, cur.Addr)
	p := f.startSwitching()
	l := startSwitchLoad(t, []string{p.Addr().String()}, 50)
	var reps []SwitchReport
	for i := range n {
		l.waitRounds(t, 200)
		next := redistest.Start(t, replArgs...)
		rep := switchTo(t, p, next.Addr)
		reps = append(reps, rep)
		if m := infoReplication(t, cur.Addr); m["role"] != "slave" || net.JoinHostPort(m["master_host"], m["master_port"]) != next.Addr {
			t.Errorf("switch %d: the old primary %s is not fenced: role %s of %s:%s", i+1, cur.Addr, m["role"], m["master_host"], m["master_port"])
		}
		if st := p.Status(); st.Uplink.Addr != next.Addr || st.State != StateRunning || st.Switch.State != "done" {
			t.Errorf("switch %d: status uplink %s state %s switch %s", i+1, st.Uplink.Addr, st.State, st.Switch.State)
		}
		cur = next
	}
	l.waitRounds(t, 200)
	l.finish()
	l.check(t, cur.Addr)
	cfg, err := config.Load(f.path)
	if err != nil || cfg.Uplink.Addr != cur.Addr {
		t.Errorf("config file: uplink.addr %v (%v), want %s", cfg.Uplink.Addr, err, cur.Addr)
	}
	st := p.Status()
	if st.Counters.Switches != uint64(n) {
		t.Errorf("counters.switches %d, want %d", st.Counters.Switches, n)
	}
	if h := st.History; len(h) == 0 || h[0].Event != "switch" || !h[0].OK {
		t.Errorf("history: %+v", h[:min(len(h), 2)])
	}
	p50, worst := pausedStats(reps)
	t.Logf("%d switches, 50 clients, %d rounds: paused_ms p50 %.1f, max %.1f; last phases %v", n, l.n.Load(), p50, worst, reps[len(reps)-1].Phases)
}

// startPeer is a proxy in front of upAddr with its admin API on an HTTP
// test server; it returns the proxy and the admin URL.
func startPeer(t *testing.T, upAddr string, h func(*Proxy) http.Handler) (*Proxy, *configFile, string) {
	f := switchConfig(t, upAddr)
	p := f.startSwitching()
	srv := httptest.NewServer(h(p))
	t.Cleanup(srv.Close)
	return p, f, srv.URL
}

// TestSwitchFleet: a coordinator and two peers (through their admin
// URLs), writers on all three: nothing lost, every proxy and its file on
// the new primary, and nothing reached the old primary after the gate.
func TestSwitchFleet(t *testing.T) {
	a := redistest.Start(t, replArgs...)
	b := redistest.Start(t, replArgs...)
	p1, f1, u1 := startPeer(t, a.Addr, peerHandler)
	p2, f2, u2 := startPeer(t, a.Addr, peerHandler)
	f := switchConfig(t, a.Addr, u1, u2)
	f.cfg.Switch.Fence = false // the old primary stays a master: its offset shows what reached it
	f.write()
	p := f.startSwitching()
	l := startSwitchLoad(t, []string{p.Addr().String(), p1.Addr().String(), p2.Addr().String()}, 30)
	l.waitRounds(t, 300)

	rep := switchTo(t, p, b.Addr)
	l.waitRounds(t, 300)
	l.finish()
	l.check(t, b.Addr)
	for i, q := range []*Proxy{p, p1, p2} {
		if st := q.Status(); st.Uplink.Addr != b.Addr || st.State != StateRunning {
			t.Errorf("proxy %d: uplink %s state %s", i, st.Uplink.Addr, st.State)
		}
	}
	for i, ff := range []*configFile{f, f1, f2} {
		if cfg, err := config.Load(ff.path); err != nil || cfg.Uplink.Addr != b.Addr {
			t.Errorf("proxy %d config file: %v %v", i, cfg.Uplink.Addr, err)
		}
	}
	// Nothing reached the old primary once the gate read its offset: the
	// new primary was promoted at that offset (second_repl_offset is the
	// promotion offset + 1), and the old one has no byte past it but
	// perhaps a last ping to its replicas (14 bytes).
	old, promoted := infoReplication(t, a.Addr), infoReplication(t, b.Addr)
	oldOff, _ := strconv.ParseInt(old["master_repl_offset"], 10, 64)
	second, _ := strconv.ParseInt(promoted["second_repl_offset"], 10, 64)
	if old["role"] != "master" || oldOff > second-1+14 {
		t.Errorf("the old primary (role %s) is at offset %d, past the promotion offset %d", old["role"], oldOff, second-1)
	}
	t.Logf("fleet switch: paused_ms %.1f; old primary at offset %d, promoted at %d; phases %v", rep.PausedMS, oldOff, second-1, rep.Phases)
}

// peerHandler is the part of the admin API a switch uses on a peer:
// /cmd/ with pause, unpause and retarget, and /info.json's state. The
// admin package has the real one; it imports this package, so the test
// has its own.
func peerHandler(p *Proxy) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info.json", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"state":%q}`, p.State())
	})
	mux.HandleFunc("POST /cmd/", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		var err error
		switch r.Form.Get("cmd") {
		case "pause":
			err = p.Pause(r.Context())
		case "unpause":
			err = p.Unpause()
		case "retarget":
			err = p.Retarget(r.Context(), r.Form.Get("to"))
		default:
			err = errors.New("unknown cmd")
		}
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, `{"ok":false,"error":%q}`, err.Error())
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	return mux
}
