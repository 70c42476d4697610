package proxy

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// TestDeepRepliesForwarded: replies of any nesting depth reach the client
// byte for byte and the connection stays usable: a Lua script's deeply
// nested table (Redis sends thousands of nested arrays, then the Lua
// stack limit error), as direct Redis sends it; and 200,000 nested arrays
// and maps from an uplink.
func TestDeepRepliesForwarded(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	script := "local function f(n) if n == 0 then return 1 end return {f(n-1)} end return f(10000)"
	in := "*3\r\n$4\r\nEVAL\r\n$" + strconv.Itoa(len(script)) + "\r\n" + script + "\r\n$1\r\n0\r\nPING\r\n"
	want := exchange(t, srv.Addr, in)
	if !strings.Contains(want, "lua stack limit") {
		t.Fatalf("Redis did not send the deep reply this test is about: %.200q", want)
	}
	if have := exchange(t, p.Addr().String(), in); have != want {
		t.Errorf("through the proxy: %d bytes, direct %d; same: %v", len(have), len(want), have == want)
	}

	for _, deep := range []string{
		strings.Repeat("*1\r\n", 200000) + ":1\r\n",
		strings.Repeat("%1\r\n+k\r\n", 200000) + ":1\r\n",
	} {
		up, _ := fakeUplink(t, deep)
		fp := startProxy(t, testConfig(up))
		conn := rawConn(t, fp.Addr().String())
		br := bufio.NewReader(conn)
		for range 2 {
			if _, err := io.WriteString(conn, "GET x\r\n"); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(deep))
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.ReadFull(br, got); err != nil {
				t.Fatalf("%d bytes due: %v", len(deep), err)
			}
			if string(got) != deep {
				t.Fatalf("the deep reply changed on its way")
			}
		}
	}
}
