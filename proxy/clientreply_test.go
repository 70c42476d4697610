package proxy

import (
	"fmt"
	"strings"
	"testing"

	"redis-proxy/internal/redistest"
)

// TestClientReplyInAPipeline: CLIENT REPLY OFF, SKIP and ON inside a
// 1,000-command pipeline: the replies that come pair with their commands,
// byte for byte as from Redis.
func TestClientReplyInAPipeline(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	var b strings.Builder
	for i := range 1000 {
		switch i % 50 {
		case 7:
			b.WriteString("CLIENT REPLY OFF\r\n")
		case 13:
			b.WriteString("CLIENT REPLY ON\r\n")
		case 21, 22:
			b.WriteString("CLIENT REPLY SKIP\r\n")
		case 30:
			b.WriteString("AUTH x\r\n") // answered by the proxy: silenced by SKIP too
		default:
			fmt.Fprintf(&b, "INCR c%d\r\n", i%7)
		}
		if i%50 == 29 {
			b.WriteString("CLIENT REPLY SKIP\r\n")
		}
	}
	in := b.String()
	want, have := exchangeBoth(t, srv, p.Addr().String(), in)
	if have != want {
		t.Errorf("have %d bytes, want %d:\nhave %.300q\nwant %.300q", len(have), len(want), have, want)
	}
}

// TestClientReplyOffSurvivesANewConnection: CLIENT REPLY OFF is replayed
// on a new uplink connection.
func TestClientReplyOffSurvivesANewConnection(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	f := newConfigFile(t, a.Addr)
	p := f.start()
	c := dial(t, p)
	if err := c.WriteRaw([]byte("CLIENT REPLY OFF\r\nSET before 1\r\n")); err != nil {
		t.Fatal(err)
	}
	f.cfg.Uplink.Addr = b.Addr
	f.write()
	waitFor(t, "SET reached Redis", func() bool { return do(t, a.Client(t), "GET", "before") == `"1"` })
	if err := f.reload(p); err != nil {
		t.Fatal(err)
	}
	// On B: still off, until ON.
	if err := c.WriteRaw([]byte("SET after 2\r\nINCR after\r\n")); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "OK", "CLIENT", "REPLY", "ON")
	expect(t, c, `"3"`, "GET", "after")
}
