//go:build linux

package proxy

import (
	"context"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// bothParked reports whether every session of p has neither goroutine:
// its request side parked on the client socket and its reply side parked
// on its uplink connection (or waiting for one).
func bothParked(p *Proxy) bool {
	all := true
	p.forEachSession(func(s *session) {
		if s.rawc == nil || s.rawc.pc == nil || !s.rawc.pc.rd.parked.Load() {
			all = false
			return
		}
		s.handMu.Lock()
		idle := s.replyIdle
		s.handMu.Unlock()
		if u := s.cur.Load(); !idle && (u == nil || u.raw == nil || u.raw.pc == nil || !u.raw.pc.rd.parked.Load()) {
			all = false
		}
	})
	return all
}

func waitParkedSessions(t *testing.T, p *Proxy) {
	t.Helper()
	waitFor(t, "every session parked", func() bool { return bothParked(p) })
}

// Everything that reaches a session reaches a parked one: a command, a
// pub/sub message, a pause, a move to another uplink (a subscriber's at
// once), the idle timeout, the stop.
func TestParkedSessions(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	cfg := testConfig(a.Addr)
	p := startProxy(t, cfg)
	c := dial(t, p)
	expect(t, c, "OK", "SET", "k", "v")
	sub := dial(t, p)
	if v, err := sub.Do("SUBSCRIBE", "ch"); err != nil || len(v.Elems) != 3 {
		t.Fatalf("SUBSCRIBE: %v %v", v, err)
	}
	waitParkedSessions(t, p)

	// A command, and a message for the subscriber.
	expect(t, c, `"v"`, "GET", "k")
	if n, err := a.Client(t).Do("PUBLISH", "ch", "m1"); err != nil || n.Int != 1 {
		t.Fatalf("PUBLISH on a: %v %v", n, err)
	}
	if m, err := sub.Receive(); err != nil || len(m.Elems) != 3 || m.Elems[2].Str != "m1" {
		t.Fatalf("message to a parked subscriber: %v %v", m, err)
	}
	waitParkedSessions(t, p)

	// A pause holds a parked client's next command until the unpause.
	pause(t, p)
	got := make(chan string, 1)
	go func() {
		v, err := c.Do("GET", "k")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- v.Str
	}()
	waitFor(t, "the command held at the pause", func() bool { return p.Status().WaitingRequests == 1 })
	p.Unpause()
	if v := <-got; v != "v" {
		t.Fatalf("GET after the unpause: %q", v)
	}
	waitParkedSessions(t, p)

	// A move to b: the parked subscriber moves at once (it sends
	// nothing), the parked client at its next command.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Retarget(ctx, b.Addr); err != nil {
		t.Fatal(err)
	}
	bc := b.Client(t)
	waitFor(t, "the subscriber on b", func() bool {
		v, err := bc.Do("PUBSUB", "NUMSUB", "ch")
		return err == nil && len(v.Elems) == 2 && v.Elems[1].Int == 1
	})
	bc.Do("PUBLISH", "ch", "m2")
	if m, err := sub.Receive(); err != nil || len(m.Elems) != 3 || m.Elems[2].Str != "m2" {
		t.Fatalf("message on b: %v %v", m, err)
	}
	expect(t, c, "OK", "SET", "k", "on-b")
	if v, _ := bc.Do("GET", "k"); v.Str != "on-b" {
		t.Fatalf("GET k on b: %q", v.Str)
	}
	waitParkedSessions(t, p)

	// The stop reaches parked sessions: they end, and Shutdown returns.
	start := time.Now()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown with parked sessions took %v", d)
	}
	expectEOF(t, c)
}

// The idle timeout reaches a parked client: its timer starts the request
// side, which closes the session.
func TestParkedSessionIdleTimeout(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ClientIdleTimeoutMS = 1500
	p := startProxy(t, cfg)
	c := dial(t, p)
	expect(t, c, "PONG", "PING")
	start := time.Now()
	waitParkedSessions(t, p)
	c.SetTimeout(5 * time.Second)
	expectEOF(t, c)
	if d := time.Since(start); d < 1400*time.Millisecond || d > 4*time.Second {
		t.Errorf("closed after %v, want about 1.5 s", d)
	}
	waitFor(t, "no session left", func() bool { return p.Status().Clients == 0 })
}
