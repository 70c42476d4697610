package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

// fakeReplica is a server that says it is a replica of primary, with the
// primary's offset while lag returns false and 1000 bytes behind it
// while it returns true: a target that never passes the gate.
type fakeReplica struct {
	ln        net.Listener
	primary   string
	lag       func() bool
	replicaof atomic.Int32 // REPLICAOF commands received
}

func startFakeReplica(t *testing.T, primary string, lag func() bool) *fakeReplica {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeReplica{ln: ln, primary: primary, lag: lag}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(t, c)
		}
	}()
	return f
}

func (f *fakeReplica) addr() string { return f.ln.Addr().String() }

func (f *fakeReplica) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		v, err := redistest.ReadValue(br)
		if err != nil || len(v.Elems) == 0 {
			return
		}
		var out string
		switch strings.ToUpper(v.Elems[0].Str) {
		case "PING":
			out = "+PONG\r\n"
		case "INFO":
			off := primaryOffset(f.primary)
			if f.lag() {
				off -= 1000
			}
			host, port, _ := net.SplitHostPort(f.primary)
			body := fmt.Sprintf("# Replication\r\nrole:slave\r\nmaster_host:%s\r\nmaster_port:%s\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:%d\r\n", host, port, off)
			out = fmt.Sprintf("$%d\r\n%s\r\n", len(body), body)
		case "REPLICAOF":
			f.replicaof.Add(1)
			out = "+OK\r\n"
		default:
			out = "+OK\r\n"
		}
		if _, err := c.Write([]byte(out)); err != nil {
			return
		}
	}
}

// primaryOffset reads a server's master_repl_offset (0 if it cannot).
func primaryOffset(addr string) int64 {
	c, err := redistest.Dial(addr, 2*time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	v, err := c.Do("INFO", "replication")
	if err != nil {
		return 0
	}
	var off int64
	if i := strings.Index(v.Str, "master_repl_offset:"); i >= 0 {
		fmt.Sscan(v.Str[i+len("master_repl_offset:"):], &off)
	}
	return off
}

// expectRolledBack checks that a failed switch left p on primary, running,
// with the reason in the report and the history, and clients working.
func expectRolledBack(t *testing.T, p *Proxy, rep SwitchReport, err error, primary, reason string, c *redistest.Client) {
	t.Helper()
	if err == nil || rep.OK || !rep.RolledBack || rep.State != "failed" || !strings.Contains(rep.Error, reason) {
		t.Errorf("switch: %v; report ok %v rolled_back %v state %s error %q; want a roll-back with %q", err, rep.OK, rep.RolledBack, rep.State, rep.Error, reason)
	}
	if len(rep.Phases) != len(phaseNames) {
		t.Errorf("phases: %v", rep.Phases)
	}
	st := p.Status()
	if st.State != StateRunning || st.Uplink.Addr != primary || st.Switch.State != "failed" || st.Switch.Error != rep.Error {
		t.Errorf("after the roll-back: state %s uplink %s switch %+v", st.State, st.Uplink.Addr, st.Switch)
	}
	if h := st.History; len(h) == 0 || h[0].Event != "switch" || h[0].OK || !strings.Contains(h[0].Detail, reason) {
		t.Errorf("history: %+v", h[:min(len(h), 1)])
	}
	if st.Counters.Switches != 0 {
		t.Errorf("counters.switches %d", st.Counters.Switches)
	}
	expect(t, c, "OK", "SET", "after", "rollback")
	if v := do(t, redistest.MustDial(t, primary), "GET", "after"); v != `"rollback"` {
		t.Errorf("a write after the roll-back is not on the old primary: %s", v)
	}
}

// TestSwitchGateTimeoutRollsBack: a target that does not reach the
// primary's offset within gate_timeout_ms: everything unpaused, the
// clients on the old primary, 500 with rolled_back.
func TestSwitchGateTimeoutRollsBack(t *testing.T) {
	a := redistest.Start(t)
	f := switchConfig(t, a.Addr)
	f.cfg.Switch.GateTimeoutMS = 100
	f.write()
	p := f.startSwitching()
	target := startFakeReplica(t, a.Addr, func() bool { return p.State() == StatePaused })
	c := dial(t, p)
	expect(t, c, "OK", "SET", "before", "1")
	rep, err := p.Switch(context.Background(), target.addr(), false)
	expectRolledBack(t, p, rep, err, a.Addr, "gate_timeout_ms", c)
	if errors.Is(err, ErrRefused) || errors.Is(err, ErrState) {
		t.Errorf("error %v: want neither refused nor state (500)", err)
	}
	if rep.PausedMS <= 0 || rep.Phases[3].MS <= 0 {
		t.Errorf("paused_ms %v, pause phase %v", rep.PausedMS, rep.Phases[3])
	}
	if n := target.replicaof.Load(); n != 0 {
		t.Errorf("%d REPLICAOF sent to a target that was a replica already", n)
	}
	if cfg, _ := config.Load(f.path); cfg.Uplink.Addr != a.Addr {
		t.Errorf("config file changed: %s", cfg.Uplink.Addr)
	}
}

// TestSwitchPeerRefusesPause: a peer answering 409 to cmd=pause: the
// switch stops, unpauses, and says which peer.
func TestSwitchPeerRefusesPause(t *testing.T) {
	a := redistest.Start(t, replArgs...)
	b := redistest.Start(t, replArgs...)
	var unpaused atomic.Int32
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		switch r.Form.Get("cmd") {
		case "pause":
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"ok":false,"error":"pause: not possible in this state (stopping)"}`)
		case "unpause":
			unpaused.Add(1)
			fmt.Fprint(w, `{"ok":true}`)
		default:
			fmt.Fprint(w, `{"state":"running"}`)
		}
	}))
	defer peer.Close()
	f := switchConfig(t, a.Addr, peer.URL)
	p := f.startSwitching()
	c := dial(t, p)
	rep, err := p.Switch(context.Background(), b.Addr, true)
	expectRolledBack(t, p, rep, err, a.Addr, "peer "+peer.URL, c)
	if unpaused.Load() != 0 {
		t.Errorf("a peer that refused the pause was unpaused")
	}
	if m := infoReplication(t, a.Addr); m["role"] != "master" {
		t.Errorf("the old primary is no longer a master: %v", m["role"])
	}
}

// TestSwitchRefusals: refused before anything changed (400): a missing
// or bad address, an unreachable target, the primary itself, a server
// not a replica without attach=yes; 409 while a reload or a switch runs,
// and in Sentinel mode.
func TestSwitchRefusals(t *testing.T) {
	a := redistest.Start(t)
	other := redistest.Start(t)
	f := switchConfig(t, a.Addr)
	p := f.startSwitching()
	c := dial(t, p)
	nobody, err := redistest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ to, reason string }{
		{"", "missing to"},
		{"localhost", "want HOST:PORT"},
		{"127.0.0.1:0", "bad port"},
		{nobody, "connection refused"},
		{a.Addr, "is the current primary"},
		{other.Addr, "not a replica of " + a.Addr + "; attach=yes"},
	} {
		rep, err := p.Switch(context.Background(), tc.to, false)
		if !errors.Is(err, ErrRefused) || rep.OK || !rep.RolledBack || !strings.Contains(rep.Error, tc.reason) {
			t.Errorf("to=%q: %v, report %+v; want refused with %q", tc.to, err, rep, tc.reason)
		}
		if len(rep.Phases) != len(phaseNames) || rep.From != a.Addr || rep.To != tc.to {
			t.Errorf("to=%q: report keys %+v", tc.to, rep)
		}
	}
	if m := infoReplication(t, other.Addr); m["role"] != "master" {
		t.Errorf("a refused switch changed the target: role %s", m["role"])
	}
	expect(t, c, "OK", "SET", "k", "v")

	// A reload in progress (it holds the same lock).
	p.reloadMu.Lock()
	_, err = p.Switch(context.Background(), other.Addr, true)
	errAsync := p.SwitchAsync(other.Addr, true)
	errRetarget := p.Retarget(context.Background(), other.Addr)
	p.reloadMu.Unlock()
	for _, e := range []error{err, errAsync, errRetarget} {
		if !errors.Is(e, ErrState) {
			t.Errorf("while a reload runs: %v, want ErrState", e)
		}
	}

	// A switch in progress: a target that never catches up holds it in
	// catchup for the length of catchup_timeout_ms.
	f.cfg.Switch.CatchupTimeoutMS = 1500
	f.write()
	if err := p.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	slow := startFakeReplica(t, a.Addr, func() bool { return true })
	if err := p.SwitchAsync(slow.addr(), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the switch to run", func() bool { return p.Status().Switch.Phase == "catchup" })
	if _, err := p.Switch(context.Background(), other.Addr, true); !errors.Is(err, ErrState) {
		t.Errorf("a second switch: %v, want ErrState", err)
	}
	if err := p.Reload(context.Background()); !errors.Is(err, ErrState) {
		t.Errorf("a reload during a switch: %v, want ErrState", err)
	}
	waitFor(t, "the switch to fail", func() bool { return p.Status().Switch.State == "failed" })
	if st := p.Status(); !st.Switch.RolledBack || !strings.Contains(st.Switch.Error, "catchup_timeout_ms") || st.State != StateRunning || st.Uplink.Addr != a.Addr {
		t.Errorf("after a catch-up timeout: %+v", st.Switch)
	}

	// Sentinel mode.
	sp := startProxy(t, func() *config.Config {
		cfg := testConfig(a.Addr)
		cfg.Uplink.Sentinel = config.Sentinel{Addrs: []string{"127.0.0.1:26379"}, Master: "m"}
		return cfg
	}())
	if _, err := sp.Switch(context.Background(), other.Addr, true); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "Sentinel") {
		t.Errorf("in Sentinel mode: %v, want ErrState", err)
	}
}

// TestRetarget: an unreachable server is refused and nothing changes; a
// good one gets every client, and the file names it.
func TestRetarget(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	f := switchConfig(t, a.Addr)
	p := f.startSwitching()
	c := dial(t, p)
	expect(t, c, "OK", "SELECT", "2")
	nobody, err := redistest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Retarget(context.Background(), nobody); !errors.Is(err, ErrRefused) {
		t.Errorf("retarget to %s: %v, want refused", nobody, err)
	}
	if st := p.Status(); st.Uplink.Addr != a.Addr || st.State != StateRunning || st.History[0].Event != "retarget" || st.History[0].OK {
		t.Errorf("after a refused retarget: uplink %s state %s history %+v", st.Uplink.Addr, st.State, st.History[0])
	}
	if cfg, _ := config.Load(f.path); cfg.Uplink.Addr != a.Addr {
		t.Errorf("config file: %s", cfg.Uplink.Addr)
	}
	expect(t, c, "OK", "SET", "k", "on-a")
	if err := p.Retarget(context.Background(), b.Addr); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "OK", "SET", "k", "on-b")
	onB := b.Client(t)
	expect(t, onB, "OK", "SELECT", "2")
	expect(t, onB, `"on-b"`, "GET", "k")
	if cfg, _ := config.Load(f.path); cfg.Uplink.Addr != b.Addr {
		t.Errorf("config file: %s, want %s", cfg.Uplink.Addr, b.Addr)
	}
	if st := p.Status(); st.Uplink.Addr != b.Addr || st.History[0].Event != "retarget" || !st.History[0].OK {
		t.Errorf("after retarget: %s %+v", st.Uplink.Addr, st.History[0])
	}
}
