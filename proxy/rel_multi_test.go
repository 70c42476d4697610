package proxy

import (
	"context"
	"flag"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// Bugs the reliability suite found and did not fix (each needs a design
// decision, not a few lines). Their tests fail today and are left out of
// the default run; `go test -run KnownBug -known-bugs ./proxy/` runs them.
// doc/reliability.md describes each.
var relKnownBugs = flag.Bool("known-bugs", false, "reliability suite: run the tests of known, unfixed bugs (they fail)")

func knownBug(t *testing.T) {
	t.Helper()
	if !*relKnownBugs {
		t.Skip("a known bug, not fixed yet (see doc/reliability.md); run with -known-bugs")
	}
}

// TestRelKnownBugFailedMulti: a MULTI answered with an error leaves the
// session "in a transaction" in the proxy (session.multi sets inMulti once
// MULTI is queued, whatever its reply), while the client was told there
// is none. Two ways it happens:
//
//   - the uplink connection dies with MULTI in flight (Redis restarted):
//     MULTI gets "uplink connection lost", and every later command of a
//     client that does not pipeline its transaction (MULTI, read the
//     reply, then the commands) gets the same error until it sends EXEC
//     or DISCARD, where Redis would run them;
//   - Redis refuses MULTI (an ACL without +multi: NOPERM): later commands
//     run, but bypass the pause gate as if inside the transaction.
//
// Either way the session holds a pause unit: a pause or reload waits
// read_time_limit_ms + 250 ms, then disconnects the client.
func TestRelKnownBugFailedMulti(t *testing.T) {
	knownBug(t)
	t.Run("uplink lost with MULTI in flight", func(t *testing.T) {
		srv := redistest.Start(t)
		relay := startRelay(t, srv.Addr)
		cfg := testConfig(relay.Addr)
		p := startProxy(t, cfg)
		c := dial(t, p)
		expect(t, c, "PONG", "PING")
		relay.Stall()
		reply := make(chan string, 1)
		go func() { reply <- do(t, c, "MULTI") }()
		relWaitFor(t, "MULTI in flight", func() bool { return p.Status().ActiveRequests == 1 })
		relay.ResetAll()
		relay.Resume()
		if have := <-reply; have != "(error) "+errLost {
			t.Fatalf("MULTI: %s", have)
		}
		// The client knows of no transaction; Redis would run this.
		expect(t, c, "OK", "SET", "k", "v")
		checkPauseQuick(t, p)
	})
	t.Run("MULTI refused by Redis", func(t *testing.T) {
		srv := redistest.Start(t)
		expect(t, srv.Client(t), "OK", "ACL", "SETUSER", "nomulti", "on", ">pw", "~*", "+@all", "-multi")
		cfg := testConfig(srv.Addr)
		cfg.Uplink.User, cfg.Uplink.Pass = "nomulti", "pw"
		p := startProxy(t, cfg)
		c := dial(t, p)
		expectPrefix(t, c, "(error) NOPERM", "MULTI")
		expect(t, c, "OK", "SET", "k", "v")
		checkPauseQuick(t, p)
	})
}

// checkPauseQuick: with nothing in flight a pause completes at once.
func checkPauseQuick(t *testing.T, p *Proxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("pause took %v with nothing in flight: the failed MULTI held it (clients now %d)", d, p.Status().Clients)
	}
	p.Unpause()
}
