package proxy

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"redis-proxy/internal/redistest"
)

// TestScanAndScriptsAcrossAChangeOfServer: a SCAN iteration spanning a
// reload to a replica returns every key (its cursor restarts at 0 on the
// new server); a script loaded through the proxy before the reload runs
// by its SHA after it (the replica does not have it by itself).
func TestScanAndScriptsAcrossAChangeOfServer(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	da, db := a.Client(t), b.Client(t)
	const n = 20000
	for i := 0; i < n; i += 1000 {
		args := []any{"MSET"}
		for k := i; k < i+1000; k++ {
			args = append(args, fmt.Sprintf("key:%d", k), "v")
		}
		expect(t, da, "OK", args...)
	}
	host, port, _ := strings.Cut(a.Addr, ":")
	expect(t, db, "OK", "REPLICAOF", host, port)
	waitFor(t, "the replica has every key", func() bool {
		return do(t, db, "DBSIZE") == fmt.Sprintf("(integer) %d", n) && strings.Contains(do(t, db, "INFO", "replication"), "master_link_status:up")
	})
	f := newConfigFile(t, a.Addr)
	p := f.start()
	c := dial(t, p)
	sha := strings.Trim(do(t, c, "SCRIPT", "LOAD", "return 7"), `"`)
	expect(t, c, `"e"`, "EVAL", "return 'e'", "0")
	direct := strings.Trim(do(t, da, "SCRIPT", "LOAD", "return 'direct'"), `"`)

	seen := make(map[string]bool)
	scan := func(cursor string) string {
		t.Helper()
		v, err := c.Do("SCAN", cursor, "COUNT", "100")
		if err != nil || len(v.Elems) != 2 {
			t.Fatalf("SCAN %s: %v %v", cursor, v, err)
		}
		for _, k := range v.Elems[1].Elems {
			seen[k.Str] = true
		}
		return v.Elems[0].Str
	}
	cursor := "0"
	for range 30 {
		cursor = scan(cursor)
	}
	if cursor == "0" {
		t.Fatal("the iteration ended before the reload")
	}
	f.cfg.Uplink.Addr = b.Addr
	f.write()
	if err := f.reload(p); err != nil {
		t.Fatal(err)
	}
	for steps := 0; ; steps++ {
		cursor = scan(cursor)
		if cursor == "0" {
			break
		}
		if steps > 10*n {
			t.Fatal("the iteration does not end")
		}
	}
	if len(seen) != n {
		t.Errorf("the iteration spanning the reload returned %d of %d keys", len(seen), n)
	}
	expect(t, c, "(integer) 7", "EVALSHA", sha, "0")
	evalSHA := sha1.Sum([]byte("return 'e'"))
	expect(t, c, `"e"`, "EVALSHA", hex.EncodeToString(evalSHA[:]), "0")
	// A script loaded straight into the old primary is not on the replica:
	// without the proxy's carrying, the EVALSHA above would fail the same way.
	expectPrefix(t, c, "(error) NOSCRIPT", "EVALSHA", direct, "0")
}

// TestNoEvictReplayed: CLIENT NO-EVICT on is given to a new uplink
// connection too.
func TestNoEvictReplayed(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "OK", "CLIENT", "NO-EVICT", "on")
	id := strings.TrimPrefix(do(t, c, "CLIENT", "ID"), "(integer) ")
	expect(t, srv.Client(t), "(integer) 1", "CLIENT", "KILL", "ID", id)
	waitFor(t, "the proxy saw its connection killed", func() bool {
		return !strings.Contains(do(t, srv.Client(t), "CLIENT", "LIST"), "id="+id+" ")
	})
	info := do(t, c, "CLIENT", "INFO")
	if strings.Contains(info, "lost") {
		info = do(t, c, "CLIENT", "INFO")
	}
	if !strings.Contains(info, "flags=e") {
		t.Errorf("CLIENT INFO on the new connection: %s", info)
	}
}

// TestScriptsSurviveARestart: a Redis restarted in place (same address,
// a new run_id, no scripts) gets the scripts loaded through the proxy
// before a client's first command on it.
func TestScriptsSurviveARestart(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	sha := strings.Trim(do(t, c, "SCRIPT", "LOAD", "return 'kept'"), `"`)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	expect(t, srv.Client(t), "1) (integer) 0", "SCRIPT", "EXISTS", sha) // the restarted server has none
	if have := do(t, c, "EVALSHA", sha, "0"); have != `"kept"` && !strings.Contains(have, "lost") {
		t.Fatalf("EVALSHA after the restart: %s", have)
	}
	expect(t, c, `"kept"`, "EVALSHA", sha, "0")
	expect(t, dial(t, p), `"kept"`, "EVALSHA", sha, "0")
}
