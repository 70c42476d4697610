package proxy

import (
	"strings"
	"testing"
	"time"

	"redis-proxy/config"
)

// candidatesConfig is a config file for a proxy in front of up that may
// move to the candidates, checked every interval.
func candidatesConfig(t *testing.T, up string, interval time.Duration, candidates ...string) *configFile {
	f := newConfigFile(t, up)
	f.cfg.Uplink.CheckIntervalMS = int(interval / time.Millisecond)
	f.cfg.Uplink.Candidates = candidates
	f.write()
	return f
}

// TestCandidatesFollowPromotion: the primary is killed and a replica is
// promoted from outside (REPLICAOF NO ONE): the proxy follows it within 3
// check intervals of the kill (plus the promotion), writes it into the
// configuration file, loses no client, and every write acknowledged
// after the move is on the new primary.
func TestCandidatesFollowPromotion(t *testing.T) {
	const interval = 200 * time.Millisecond
	primary, reps := startReplicated(t, 2)
	f := candidatesConfig(t, primary.Addr, interval, reps[0].Addr, reps[1].Addr)
	p := f.startSwitching()
	waitHealth(t, p, "a passing check", func(h Health) bool { return h.OK && h.Role == "master" })
	load := startFailoverLoad(t, p.Addr().String(), 8)
	load.waitRounds(t, 200)

	killed := time.Now()
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	expect(t, reps[0].Client(t), "OK", "REPLICAOF", "NO", "ONE")
	promoted := time.Now()
	to, moved := waitUplink(t, p, primary.Addr)
	if to != reps[0].Addr {
		t.Fatalf("moved to %s, want %s", to, reps[0].Addr)
	}
	t.Logf("primary killed; promoted %v later; the proxy moved %v after the kill (check interval %v)",
		promoted.Sub(killed).Round(time.Millisecond), moved.Sub(killed).Round(time.Millisecond), interval)
	if d := moved.Sub(killed); d > 3*interval+time.Second {
		t.Errorf("moved %v after the kill; want within 3 check intervals (+1 s slack)", d)
	}
	load.waitRounds(t, 200)
	load.finish()
	load.check(t, to, moved)

	// The failover is counted once the move is done and written down.
	waitFor(t, "the failover counted", func() bool { return p.Status().Counters.Failovers > 0 })
	st := p.Status()
	if st.Counters.Failovers != 1 {
		t.Errorf("failovers: %d, want 1", st.Counters.Failovers)
	}
	if len(st.History) == 0 || !strings.Contains(st.History[0].Detail, primary.Addr+" -> "+to) {
		t.Errorf("history: %+v", st.History[:min(len(st.History), 3)])
	}
	if cfg, err := config.Load(f.path); err != nil || cfg.Uplink.Addr != to {
		t.Errorf("config file uplink.addr: %v %v, want %s", cfg, err, to)
	}
}

// TestCandidatesSplitBrain: the uplink and a candidate both report role
// master: the proxy does not move, says why (Status().Follow.Error, the
// readiness reason), logs it and records it; one master again clears it.
func TestCandidatesSplitBrain(t *testing.T) {
	const interval = 100 * time.Millisecond
	primary, reps := startReplicated(t, 1)
	f := candidatesConfig(t, primary.Addr, interval, reps[0].Addr)
	p := f.startSwitching()
	waitHealth(t, p, "a passing check", func(h Health) bool { return h.OK && h.Role == "master" })
	c := dial(t, p)
	expect(t, c, "OK", "SET", "k", "1")

	expect(t, reps[0].Client(t), "OK", "REPLICAOF", "NO", "ONE")
	waitFor(t, "the two masters reported", func() bool { return p.Status().Follow.Error != "" })
	st := p.Status()
	if !strings.Contains(st.Follow.Error, primary.Addr) || !strings.Contains(st.Follow.Error, reps[0].Addr) {
		t.Errorf("follow error: %q", st.Follow.Error)
	}
	if st.Uplink.Addr != primary.Addr || st.Counters.Failovers != 0 {
		t.Errorf("moved with two masters: uplink %s, failovers %d", st.Uplink.Addr, st.Counters.Failovers)
	}
	if len(st.History) == 0 || st.History[0].Event != "failover" || st.History[0].OK {
		t.Errorf("history: %+v", st.History[:min(len(st.History), 3)])
	}
	expect(t, c, "OK", "SET", "k", "2")
	expect(t, primary.Client(t), `"2"`, "GET", "k")

	// One master again: cleared.
	expect(t, reps[0].Client(t), "OK", "REPLICAOF", "127.0.0.1", primary.Port)
	waitFor(t, "the error cleared", func() bool { return p.Status().Follow.Error == "" })
}

// TestCandidatesNoMasterHold: the uplink dies and no candidate is master:
// commands wait at most read_time_limit_ms, then get the
// uplink-unavailable error; no client is disconnected.
func TestCandidatesNoMasterHold(t *testing.T) {
	primary, reps := startReplicated(t, 1)
	f := candidatesConfig(t, primary.Addr, 100*time.Millisecond, reps[0].Addr)
	f.cfg.ReadTimeLimitMS = 800
	f.write()
	p := f.startSwitching()
	waitHealth(t, p, "a passing check", func(h Health) bool { return h.OK && h.Role == "master" })
	c := dial(t, p)
	expect(t, c, "PONG", "PING")
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hold", func() bool { return p.State() == StatePaused || p.State() == StatePausing })
	start := time.Now()
	expectPrefix(t, c, "(error) ERR proxy: uplink unavailable", "PING")
	if d := time.Since(start); d > 800*time.Millisecond+500*time.Millisecond {
		t.Errorf("the command waited %v; want at most read_time_limit_ms (800 ms) and a margin", d)
	}
	expectPrefix(t, c, "(error) ERR proxy: uplink unavailable", "PING")
	if p.State() != StateRunning {
		t.Errorf("state %s after the hold, want running", p.State())
	}
}
