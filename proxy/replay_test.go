package proxy

import (
	"strings"
	"testing"

	"redis-proxy/internal/redistest"
)

// TestReplayList: what a session learnt is what a new connection is
// given, in one round trip; CLIENT SETINFO and CLIENT ID may be refused.
func TestReplayList(t *testing.T) {
	st := newReplay()
	for _, r := range []record{
		{kind: kindHello, arg: 3},
		{kind: kindSelect, arg: 4},
		record{kind: kindSetName}.with("worker"),
		record{kind: kindSetInfo, arg: setInfoLibName}.with("redis-py"),
		record{kind: kindSetInfo, arg: setInfoLibVer}.with("5.0.1"),
	} {
		st.learn(&r, true)
	}
	failed := record{kind: kindSetName}.with("refused")
	st.learn(&failed, false)
	b, sent := st.commands(nil, &target{user: "u", pass: "p"}, true)
	want := "AUTH u p|HELLO 3|SELECT 4|CLIENT SETNAME worker|CLIENT SETINFO LIB-NAME redis-py|CLIENT SETINFO LIB-VER 5.0.1|CLIENT ID"
	var have []string
	for _, line := range strings.Split(string(b), "*")[1:] {
		parts := strings.Split(line, "\r\n")
		var words []string
		for i := 2; i < len(parts); i += 2 {
			words = append(words, parts[i])
		}
		have = append(have, strings.Join(words, " "))
	}
	if strings.Join(have, "|") != want {
		t.Errorf("replayed:\nhave %s\nwant %s", strings.Join(have, "|"), want)
	}
	mayFail := ""
	for _, c := range sent {
		if c.mayFail {
			mayFail += "y"
		} else {
			mayFail += "n"
		}
	}
	if mayFail != "nnnnyyy" {
		t.Errorf("refusals ignored: have %s, want nnnnyyy", mayFail)
	}
}

// TestSetInfoThroughTheProxy: CLIENT SETINFO is answered as Redis answers
// it (Redis 7.0 refuses it), and a session that sent it still moves to a
// new connection.
func TestSetInfoThroughTheProxy(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	in := "CLIENT SETINFO LIB-NAME redis-py\r\nCLIENT SETINFO LIB-VER 5.0.1\r\nCLIENT SETINFO NOPE x\r\n"
	if have, want := exchange(t, p.Addr().String(), in), exchange(t, srv.Addr, in); have != want {
		t.Fatalf("have %q, want %q", have, want)
	}
	c := dial(t, p)
	do(t, c, "CLIENT", "SETINFO", "LIB-NAME", "redis-py")
	id := strings.TrimPrefix(do(t, c, "CLIENT", "ID"), "(integer) ")
	expect(t, srv.Client(t), "(integer) 1", "CLIENT", "KILL", "ID", id)
	if have := do(t, c, "PING"); have != "PONG" && !strings.Contains(have, "lost") {
		t.Fatalf("PING: %s", have)
	}
	expect(t, c, "PONG", "PING")
}
