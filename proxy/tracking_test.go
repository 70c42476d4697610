package proxy

import (
	"strings"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// receive reads one value the client was sent, within a bound.
func receive(t *testing.T, c *redistest.Client) string {
	t.Helper()
	c.SetTimeout(10 * time.Second)
	v, err := c.Receive()
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return v.String()
}

// TestTrackingFollowsEveryChange: RESP3 tracking (default, BCAST with a
// prefix, OPTIN) and RESP2 REDIRECT to a subscribed client: after a
// reload, a restart of Redis and a CLIENT KILL of the connection, the
// client first gets an invalidate-all, then the invalidation of a key
// written after the change.
func TestTrackingFollowsEveryChange(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	f := newConfigFile(t, a.Addr)
	p := f.start()
	writer := dial(t, p)
	cur := a

	type tracker struct {
		name string
		c    *redistest.Client // where invalidations arrive
		read func()            // caches the key (nothing for BCAST)
		key  string
		all  string // the invalidate-all as rendered
	}
	newRESP3 := func(name, key string, opts ...any) *tracker {
		c := dial(t, p)
		do(t, c, "HELLO", "3")
		expect(t, c, "OK", append([]any{"CLIENT", "TRACKING", "ON"}, opts...)...)
		tr := &tracker{name: name, c: c, key: key, all: "1) \"invalidate\"\n2) (nil)"}
		tr.read = func() { do(t, c, "GET", key) }
		return tr
	}
	def := newRESP3("default", "tk")
	bcast := newRESP3("bcast", "pre:x", "BCAST", "PREFIX", "pre:")
	bcast.read = func() {}
	optin := newRESP3("optin", "ok", "OPTIN")
	optin.read = func() {
		expect(t, optin.c, "OK", "CLIENT", "CACHING", "YES")
		do(t, optin.c, "GET", "ok")
	}
	target := dial(t, p)
	id := strings.TrimPrefix(do(t, target, "CLIENT", "ID"), "(integer) ")
	expect(t, target, "1) \"subscribe\"\n2) \"__redis__:invalidate\"\n3) (integer) 1", "SUBSCRIBE", "__redis__:invalidate")
	source := dial(t, p)
	expect(t, source, "OK", "CLIENT", "TRACKING", "ON", "REDIRECT", id)
	redirect := &tracker{name: "redirect", c: target, key: "rk", all: "1) \"message\"\n2) \"__redis__:invalidate\"\n3) (nil)"}
	redirect.read = func() { do(t, source, "GET", "rk") }
	trackers := []*tracker{def, bcast, optin, redirect}

	invalidation := func(tr *tracker) {
		t.Helper()
		tr.read()
		do(t, writer, "SET", tr.key, "v")
		have := receive(t, tr.c)
		for have == tr.all { // a REDIRECT moved after its target: one more
			have = receive(t, tr.c)
		}
		if !strings.Contains(have, "invalidate") || !strings.Contains(have, tr.key) {
			t.Fatalf("%s: have %q, want the invalidation of %s", tr.name, have, tr.key)
		}
	}
	for _, tr := range trackers {
		invalidation(tr)
	}
	changes := []struct {
		name string
		do   func()
	}{
		{"reload", func() {
			cur = b
			f.cfg.Uplink.Addr = b.Addr
			f.write()
			if err := f.reload(p); err != nil {
				t.Fatal(err)
			}
		}},
		{"restart", func() {
			if err := cur.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := cur.Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
		{"CLIENT KILL", func() {
			do(t, cur.Client(t), "CLIENT", "KILL", "TYPE", "normal")
			do(t, cur.Client(t), "CLIENT", "KILL", "TYPE", "pubsub")
		}},
	}
	for _, ch := range changes {
		ch.do()
		for _, tr := range trackers {
			if have := receive(t, tr.c); have != tr.all {
				t.Fatalf("after %s, %s: have %q, want the invalidate-all %q", ch.name, tr.name, have, tr.all)
			}
		}
		// The writer's own connection may have been killed too.
		if have := do(t, writer, "PING"); have != "PONG" && !strings.Contains(have, "lost") {
			t.Fatalf("writer: %s", have)
		}
		for _, tr := range trackers {
			invalidation(tr)
		}
	}
}
