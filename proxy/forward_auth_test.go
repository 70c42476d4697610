package proxy

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"redis-proxy/internal/redistest"
)

// The proxy's own password on the default user: client connections must
// never be opened with it under listen.forward_auth.
const upPass = "upSECRET"

// aclServer starts a Redis whose default user needs upPass, with the ACL
// users given as ACL SETUSER argument lists.
func aclServer(t *testing.T, users ...[]string) *redistest.Server {
	t.Helper()
	srv := redistest.Start(t, "--requirepass", upPass)
	c := srv.Client(t)
	expect(t, c, "OK", "AUTH", upPass)
	for _, u := range users {
		args := []any{"ACL", "SETUSER"}
		for _, a := range u {
			args = append(args, a)
		}
		expect(t, c, "OK", args...)
	}
	return srv
}

var (
	alice = []string{"alice", "on", ">paSECRET", "~a:*", "+@all", "-flushall"}
	bob   = []string{"bob", "on", ">pbSECRET", "~*", "+get", "-set"}
	carol = []string{"carol", "on", ">pcSECRET", "~*", "+@all"}
)

// forwardAuthFile is a config file for a proxy with listen.forward_auth
// in front of srv, the proxy's own connections authenticated with upPass.
func forwardAuthFile(t *testing.T, srv *redistest.Server) *configFile {
	t.Helper()
	f := newConfigFile(t, srv.Addr)
	f.cfg.Uplink.Pass = upPass
	f.cfg.Listen.ForwardAuth = true
	f.write()
	return f
}

// replies renders each command's reply, errors included, as redis-cli does.
func replies(t *testing.T, c *redistest.Client, cmds [][]any) []string {
	t.Helper()
	var out []string
	for _, cmd := range cmds {
		out = append(out, do(t, c, cmd...))
	}
	return out
}

func TestForwardAuthUsersGetRedisAnswers(t *testing.T) {
	srv := aclServer(t, alice, bob)
	p := forwardAuthFile(t, srv).start()
	for _, tc := range []struct {
		name string
		cmds [][]any
	}{
		{"alice", [][]any{
			{"PING"}, // NOAUTH: the connection is not opened with upPass
			{"AUTH", "alice", "paSECRET"},
			{"SET", "a:1", "x"},
			{"SET", "b:1", "x"}, // NOPERM: key
			{"FLUSHALL"},        // NOPERM: command
			{"GET", "a:1"},
			{"ACL", "WHOAMI"},
		}},
		{"bob", [][]any{
			{"AUTH", "bob", "pbSECRET"},
			{"GET", "a:1"},
			{"SET", "a:1", "y"}, // NOPERM: command
			{"ACL", "WHOAMI"},   // NOPERM
		}},
		{"wrong", [][]any{
			{"AUTH", "alice", "wrong"},
			{"AUTH", "nobody", "x"},
			{"AUTH", upPass + "no"},
			{"AUTH"},
			{"ACL", "WHOAMI"},
			{"AUTH", upPass}, // the default user, as Redis knows it
			{"ACL", "WHOAMI"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := replies(t, srv.Client(t), tc.cmds)
			have := replies(t, dial(t, p), tc.cmds)
			for i := range want {
				if have[i] != want[i] {
					t.Errorf("%v: have %q, want %q (as directly)", tc.cmds[i], have[i], want[i])
				}
			}
		})
	}
	if s := strings.Join(replies(t, srv.Client(t), [][]any{{"AUTH", "bob", "pbSECRET"}, {"SET", "k", "v"}}), " "); !strings.Contains(s, "NOPERM") {
		t.Fatalf("bob's SET directly: %s (the exchange above shows nothing)", s)
	}

	// HELLO 3 AUTH: authenticated, and RESP3.
	c := dial(t, p)
	v, err := c.Do("HELLO", "3", "AUTH", "alice", "paSECRET", "SETNAME", "al")
	if err != nil || v.Type != '%' {
		t.Fatalf("HELLO 3 AUTH: %v %v", v, err)
	}
	expect(t, c, `"alice"`, "ACL", "WHOAMI")
	expect(t, c, `"al"`, "CLIENT", "GETNAME")
	expect(t, c, "(error) WRONGPASS invalid username-password pair or user is disabled.", "HELLO", "3", "AUTH", "alice", "wrong")
	expect(t, c, `"alice"`, "ACL", "WHOAMI") // a refused AUTH leaves the identity

	// An AUTH pipelined after other commands: their replies come first.
	vs, err := c.Pipeline([]any{"SET", "a:p", "1"}, []any{"AUTH", "alice", "paSECRET"}, []any{"GET", "a:p"})
	if err != nil || len(vs) != 3 || vs[0].String() != "OK" || vs[1].String() != "OK" || vs[2].String() != `"1"` {
		t.Fatalf("pipeline: %v %v", vs, err)
	}
}

func TestForwardAuthReplayedOnReload(t *testing.T) {
	srv1 := aclServer(t, alice, bob)
	srv2 := aclServer(t, alice, bob)
	f := forwardAuthFile(t, srv1)
	p := f.start()
	a, b := dial(t, p), dial(t, p)
	expect(t, a, "OK", "AUTH", "alice", "paSECRET")
	expect(t, a, `"alice"`, "ACL", "WHOAMI")
	if v, err := b.Do("HELLO", "3", "AUTH", "bob", "pbSECRET"); err != nil || v.Type != '%' {
		t.Fatalf("HELLO 3 AUTH: %v %v", v, err)
	}
	f.cfg.Uplink.Addr = srv2.Addr
	f.write()
	if err := p.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	expect(t, a, `"alice"`, "ACL", "WHOAMI")
	expect(t, a, "OK", "SET", "a:moved", "1")
	expect(t, b, "(error) NOPERM this user has no permissions to run the 'set' command", "SET", "a:x", "1")
	expect(t, b, `"1"`, "GET", "a:moved")
	d := srv2.Client(t)
	expect(t, d, "OK", "AUTH", upPass)
	expect(t, d, `"1"`, "GET", "a:moved") // on the new server
	if list := do(t, d, "CLIENT", "LIST"); !strings.Contains(list, "user=alice") || !strings.Contains(list, "user=bob") {
		t.Fatalf("the new server's clients:\n%s", list)
	}

	// RESET deauthenticates, as in Redis: the next connection has no user.
	expect(t, a, "RESET", "RESET")
	expectPrefix(t, a, "(error) NOAUTH", "ACL", "WHOAMI")
}

func TestForwardAuthRefusedAfterReload(t *testing.T) {
	srv1 := aclServer(t, alice)
	srv2 := aclServer(t, carol) // no alice
	f := forwardAuthFile(t, srv1)
	p := f.start()
	c := dial(t, p)
	expect(t, c, "OK", "AUTH", "alice", "paSECRET")
	f.cfg.Uplink.Addr = srv2.Addr
	f.write()
	if err := p.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Redis's own refusal, at every command, until the client authenticates
	// again: never as another user.
	const wrongPass = "(error) WRONGPASS invalid username-password pair or user is disabled."
	expect(t, c, wrongPass, "ACL", "WHOAMI")
	expect(t, c, wrongPass, "GET", "a:1")
	expect(t, c, wrongPass, "AUTH", "alice", "paSECRET")
	expect(t, c, "OK", "AUTH", "carol", "pcSECRET")
	expect(t, c, `"carol"`, "ACL", "WHOAMI")
}

func TestForwardAuthNeverLogged(t *testing.T) {
	srv := aclServer(t, alice)
	f := forwardAuthFile(t, srv)
	f.cfg.LogMessages = true
	f.write()
	var logs syncBuffer
	cfg := f.cfg
	p := startProxy(t, &cfg, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	c := dial(t, p)
	expect(t, c, "OK", "AUTH", "alice", "paSECRET")
	expect(t, c, "OK", "AUTH", upPass)
	expect(t, c, "(error) WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "wrongSECRET")
	if v, err := c.Do("HELLO", "3", "AUTH", "alice", "paSECRET"); err != nil || v.Type != '%' {
		t.Fatalf("HELLO 3 AUTH: %v %v", v, err)
	}
	expect(t, c, "OK", "MULTI")
	expect(t, c, "QUEUED", "AUTH", "alice", "paSECRET")
	expect(t, c, "1) OK", "EXEC")
	expect(t, c, `"alice"`, "ACL", "WHOAMI")
	// A forwarded command is logged once written: that may come just
	// after its reply reached the client.
	waitFor(t, "the commands logged", func() bool {
		out := logs.String()
		return strings.Contains(out, `cmd="AUTH ***"`) && strings.Contains(out, `cmd="ACL WHOAMI ***"`)
	})
	out := logs.String()
	if strings.Contains(out, "SECRET") {
		t.Errorf("a password reached the log:\n%s", out)
	}
}
