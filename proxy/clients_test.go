package proxy

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

func TestPackName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""}, {"get", "GET"}, {"Set", "SET"}, {"brpoplpush", "BRPOPLPUSH"},
		{"zrangebyscore", "ZRANGEBYSCORE"}, {"abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOP"},
		{"x-1_y", "X-1_Y"},
	} {
		if have := unpackName(packName([]byte(tc.in))); have != tc.want {
			t.Errorf("%q: have %q, want %q", tc.in, have, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { packName([]byte("get")) }); n != 0 {
		t.Errorf("packName allocates: %v", n)
	}
}

// clientByID finds a client in the list.
func clientByID(t *testing.T, p *Proxy, id uint64) ClientInfo {
	t.Helper()
	for _, c := range p.Clients() {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("client %d not in %+v", id, p.Clients())
	return ClientInfo{}
}

func waitClient(t *testing.T, p *Proxy, id uint64, what string, cond func(ClientInfo) bool) ClientInfo {
	t.Helper()
	var ci ClientInfo
	waitFor(t, what, func() bool { ci = clientByID(t, p, id); return cond(ci) })
	return ci
}

func TestClients(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	if cs := p.Clients(); cs == nil || len(cs) != 0 {
		t.Fatalf("no clients: %#v", cs)
	}
	a, b := dial(t, p), dial(t, p)
	expect(t, a, "OK", "SELECT", "3")
	expect(t, a, "OK", "CLIENT", "SETNAME", "app-one")
	do(t, a, "HELLO", "3")
	expect(t, b, "PONG", "PING")

	cs := p.Clients()
	if len(cs) != 2 || cs[0].ID >= cs[1].ID {
		t.Fatalf("clients: %+v", cs)
	}
	ca, cb := cs[0], cs[1]
	if ca.Name != "app-one" || ca.DB != 3 || ca.Proto != 3 || ca.Addr != a.Conn().LocalAddr().String() ||
		ca.Cmd != "" || len(ca.Flags) != 0 || ca.Subs != 0 || ca.AgeS <= 0 {
		t.Errorf("a: %+v", ca)
	}
	if cb.Name != "" || cb.DB != 0 || cb.Proto != 2 || cb.Addr != b.Conn().LocalAddr().String() {
		t.Errorf("b: %+v", cb)
	}

	// A transaction, a blocking command and its name in flight.
	expect(t, a, "OK", "MULTI")
	waitClient(t, p, ca.ID, "a in multi", func(c ClientInfo) bool { return slices.Equal(c.Flags, []string{"multi"}) })
	if err := b.Send("blpop", "nothing", "10"); err != nil {
		t.Fatal(err)
	}
	b.Flush()
	waitClient(t, p, cb.ID, "b blocked in BLPOP", func(c ClientInfo) bool {
		return c.Cmd == "BLPOP" && slices.Equal(c.Flags, []string{"blocked"})
	})
	expect(t, dial(t, p), "(integer) 1", "RPUSH", "nothing", "x")
	if v, err := b.Receive(); err != nil || !strings.Contains(v.String(), `"x"`) {
		t.Fatalf("BLPOP: %v %v", v, err)
	}
	waitClient(t, p, cb.ID, "b answered", func(c ClientInfo) bool { return c.Cmd == "" && len(c.Flags) == 0 })
	expect(t, a, "QUEUED", "SELECT", "5")
	do(t, a, "EXEC")
	ci := waitClient(t, p, ca.ID, "a out of multi", func(c ClientInfo) bool { return len(c.Flags) == 0 })
	if ci.DB != 5 {
		t.Errorf("SELECT inside EXEC: db %d", ci.DB)
	}

	// Idle time counts from the last command.
	time.Sleep(300 * time.Millisecond)
	if ci := clientByID(t, p, cb.ID); ci.IdleS < 0.25 || ci.IdleS > ci.AgeS {
		t.Errorf("idle_s after 300 ms: %+v", ci)
	}
	expect(t, b, "PONG", "PING")
	if ci := clientByID(t, p, cb.ID); ci.IdleS > 0.2 {
		t.Errorf("idle_s after a command: %+v", ci)
	}

	// Waiting at a pause.
	if err := p.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Send("GET", "k"); err != nil {
		t.Fatal(err)
	}
	b.Flush()
	waitClient(t, p, cb.ID, "b waiting", func(c ClientInfo) bool { return slices.Equal(c.Flags, []string{"waiting"}) })
	if err := p.Unpause(); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Receive(); err != nil || v.String() != "(nil)" {
		t.Fatalf("GET after unpause: %v %v", v, err)
	}
	waitClient(t, p, cb.ID, "b no longer waiting", func(c ClientInfo) bool { return len(c.Flags) == 0 })

	// RESET shows a new connection's state; a closed client is gone.
	do(t, a, "RESET")
	if ci := clientByID(t, p, ca.ID); ci.Name != "" || ci.DB != 0 || ci.Proto != 2 {
		t.Errorf("after RESET: %+v", ci)
	}
	a.Close()
	waitFor(t, "a gone", func() bool { return len(p.Clients()) == 2 }) // b and the RPUSH client
}

// packName upper-cases eight bytes at once: every byte value, at every
// place in either word, as the byte-by-byte rule would.
func TestPackNameEveryByte(t *testing.T) {
	for c := range 256 {
		for pos := range cmdNameLen {
			name := []byte("xxxxxxxxxxxxxxxx")
			name[pos] = byte(c)
			var want [2]uint64
			for i, ch := range name {
				if 'a' <= ch && ch <= 'z' {
					ch -= 'a' - 'A'
				}
				want[i/8] |= uint64(ch) << (8 * (i % 8))
			}
			if have := packName(name); have != want {
				t.Fatalf("byte %#x at %d: have %x, want %x", c, pos, have, want)
			}
		}
	}
}
