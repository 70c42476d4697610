package proxy

import (
	"strings"
	"testing"

	"redis-proxy/internal/redistest"
)

// TestStateChangesInsideMulti: SELECT and CLIENT SETNAME inside MULTI run
// as Redis runs them, and the proxy replays on a new uplink connection
// what EXEC's reply says ran: nothing when EXEC was aborted (a WATCH
// failed, EXECABORT) or the command failed inside it.
func TestStateChangesInsideMulti(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	p := startProxy(t, testConfig(srv.Addr))

	in := "MULTI\r\nSELECT 3\r\nSET k v3\r\nCLIENT SETNAME inmulti\r\nEXEC\r\n"
	if have, want := exchange(t, p.Addr().String(), in), exchange(t, srv.Addr, in); have != want {
		t.Fatalf("have %q, want %q", have, want)
	}
	c := dial(t, p)
	vs, err := c.Pipeline([]any{"MULTI"}, []any{"SELECT", "3"}, []any{"CLIENT", "SETNAME", "inmulti"}, []any{"EXEC"})
	if err != nil || len(vs) != 4 || vs[3].String() != "1) OK\n2) OK" {
		t.Fatalf("transaction: %v %v", vs, err)
	}
	// A new uplink connection: the db and the name are replayed.
	kill := func() {
		t.Helper()
		id := strings.TrimPrefix(do(t, c, "CLIENT", "ID"), "(integer) ")
		expect(t, direct, "(integer) 1", "CLIENT", "KILL", "ID", id)
		waitFor(t, "the proxy saw its connection killed", func() bool {
			return !strings.Contains(do(t, direct, "CLIENT", "LIST", "ID", id), "id="+id)
		})
	}
	kill()
	if have := do(t, c, "GET", "k"); have != `"v3"` && !strings.Contains(have, "lost") {
		t.Fatalf("GET k: %s", have)
	}
	expect(t, c, `"v3"`, "GET", "k")
	expect(t, c, `"inmulti"`, "CLIENT", "GETNAME")

	// Nothing of an aborted or failed transaction is learnt.
	expect(t, c, "OK", "WATCH", "w")
	other := dial(t, p)
	expect(t, other, "OK", "SELECT", "3")
	expect(t, other, "OK", "SET", "w", "changed")
	vs, err = c.Pipeline([]any{"MULTI"}, []any{"SELECT", "5"}, []any{"CLIENT", "SETNAME", "watched"}, []any{"EXEC"})
	if err != nil || len(vs) != 4 || vs[3].String() != "(nil)" {
		t.Fatalf("watched transaction: %v %v", vs, err)
	}
	vs, err = c.Pipeline([]any{"MULTI"}, []any{"SELECT", "6"}, []any{"NOSUCHCOMMAND"}, []any{"EXEC"})
	if err != nil || len(vs) != 4 || !strings.HasPrefix(vs[3].String(), "(error) EXECABORT") {
		t.Fatalf("aborted transaction: %v %v", vs, err)
	}
	vs, err = c.Pipeline([]any{"MULTI"}, []any{"SELECT", "99"}, []any{"EXEC"})
	if err != nil || len(vs) != 3 || !strings.Contains(vs[2].String(), "ERR DB index is out of range") {
		t.Fatalf("SELECT failing inside EXEC: %v %v", vs, err)
	}
	kill()
	if have := do(t, c, "GET", "k"); have != `"v3"` && !strings.Contains(have, "lost") {
		t.Fatalf("GET k: %s", have)
	}
	expect(t, c, `"v3"`, "GET", "k")
	expect(t, c, `"inmulti"`, "CLIENT", "GETNAME")
}
