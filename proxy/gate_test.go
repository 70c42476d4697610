package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// TestPauseAfterPipelinedTransactions: transactions sent back to back in
// one write (as ioredis and node-redis send concurrent multi() calls on a
// shared connection) leave no pause unit behind: a pause afterwards
// completes in milliseconds and the client stays connected.
func TestPauseAfterPipelinedTransactions(t *testing.T) {
	many := make([][]any, 0, 3000)
	for range 1000 {
		many = append(many, []any{"MULTI"}, []any{"INCR", "a"}, []any{"EXEC"})
	}
	cases := []struct {
		name string
		cmds [][]any
	}{
		{"MULTI/EXEC twice", [][]any{{"MULTI"}, {"INCR", "a"}, {"EXEC"}, {"MULTI"}, {"INCR", "a"}, {"EXEC"}}},
		{"MULTI/DISCARD then MULTI/EXEC", [][]any{{"MULTI"}, {"INCR", "a"}, {"DISCARD"}, {"MULTI"}, {"INCR", "a"}, {"EXEC"}}},
		{"WATCH/MULTI/EXEC twice", [][]any{{"WATCH", "a"}, {"MULTI"}, {"INCR", "a"}, {"EXEC"}, {"WATCH", "a"}, {"MULTI"}, {"INCR", "a"}, {"EXEC"}}},
		{"a failed MULTI between them", [][]any{{"MULTI"}, {"INCR", "a"}, {"EXEC"}, {"MULTI", "extra"}, {"INCR", "a"}, {"EXEC"}, {"MULTI"}, {"INCR", "a"}, {"EXEC"}}},
		{"1,000 transactions in one write", many},
	}
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, p)
			vs, err := c.Pipeline(tc.cmds...)
			if err != nil || len(vs) != len(tc.cmds) {
				t.Fatalf("pipeline: %d replies, %v", len(vs), err)
			}
			// The replies went out; the client now idles.
			if d := pause(t, p); d > time.Second {
				t.Errorf("pause took %v after the transactions, want milliseconds", d)
			}
			if err := p.Unpause(); err != nil {
				t.Fatal(err)
			}
			expect(t, c, "PONG", "PING")
			if n := p.Status().Counters.TimeLimitDisconnects; n != 0 {
				t.Errorf("%d clients disconnected", n)
			}
		})
	}
}

// TestWaitingCommandOfAClosedClientIsDropped: a command waiting at the
// pause whose client closes the connection is never forwarded, so a
// client that gave up and retried elsewhere has its write applied once.
func TestWaitingCommandOfAClosedClientIsDropped(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "PONG", "PING")
	before := commandCalls(t, direct, "incr")
	pause(t, p)
	if err := c.WriteRaw([]byte("*2\r\n$4\r\nINCR\r\n$4\r\ngone\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "WaitingRequests == 1", func() bool { return p.Status().WaitingRequests == 1 })
	c.Close()
	// Wait until the proxy's side of the socket has seen the FIN: a
	// second connection's close is then surely seen by the first's too.
	probe := dial(t, p)
	probe.Close()
	if err := p.Unpause(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Clients == 0", func() bool { return p.Status().Clients == 0 })
	if have := commandCalls(t, direct, "incr"); have != before {
		t.Errorf("INCR reached Redis %d times after its client closed", have-before)
	}
	expect(t, direct, "(nil)", "GET", "gone")
}

// TestFailedSetNameIsNotReplayed: a CLIENT SETNAME answered "uplink
// unavailable" leaves the name as it was; the name replayed on the next
// connection is the last one Redis accepted.
func TestFailedSetNameIsNotReplayed(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "OK", "CLIENT", "SETNAME", "first")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	expectPrefix(t, c, "(error) ERR proxy: uplink", "CLIENT", "SETNAME", "failed")
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "\"first\"", "CLIENT", "GETNAME")
	expect(t, c, "OK", "CLIENT", "SETNAME", "second")
	// A new connection to the same Redis: what is replayed?
	srv.Client(t).Do("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
	if have := do(t, c, "CLIENT", "GETNAME"); have != "\"second\"" && !strings.Contains(have, "lost") {
		t.Fatalf("CLIENT GETNAME: %s", have)
	}
	expect(t, c, "\"second\"", "CLIENT", "GETNAME")
}
