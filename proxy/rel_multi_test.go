package proxy

import (
	"context"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// TestRelFailedMulti: a MULTI answered with an error leaves the session in
// no transaction, as the client was told. Two ways it happens:
//
//   - the uplink connection dies with MULTI in flight (Redis restarted):
//     MULTI gets "uplink connection lost", and later commands must run as
//     Redis would run them, not be refused until an EXEC;
//   - Redis refuses MULTI (an ACL without +multi: NOPERM): later commands
//     go through the pause gate again.
//
// Either way the session must not hold a pause unit: a pause completes at
// once. Also with the transaction pipelined behind the refused MULTI, and
// after a RESET inside a transaction.
func TestRelFailedMulti(t *testing.T) {
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
		waitFor(t, "MULTI in flight", func() bool { return p.Status().ActiveRequests == 1 })
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
		// Pipelined: MULTI refused, the SET runs, EXEC is "without MULTI".
		vs, err := c.Pipeline([]any{"MULTI"}, []any{"SET", "k", "w"}, []any{"EXEC"})
		if err != nil || len(vs) != 3 || vs[1].String() != "OK" || vs[2].Err() == nil {
			t.Fatalf("pipelined transaction behind a refused MULTI: %v %v", vs, err)
		}
		checkPauseQuick(t, p)
		expect(t, c, `"w"`, "GET", "k")
	})
	t.Run("RESET inside a transaction", func(t *testing.T) {
		srv := redistest.Start(t)
		p := startProxy(t, testConfig(srv.Addr))
		c := dial(t, p)
		expect(t, c, "OK", "MULTI")
		expect(t, c, "QUEUED", "SET", "k", "v")
		expect(t, c, "RESET", "RESET")
		checkPauseQuick(t, p)
		expect(t, c, "(nil)", "GET", "k")
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
