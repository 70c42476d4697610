package resp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startRedis starts a throw-away redis-server on a Unix socket in a
// temporary directory (no port to collide on) and returns a connection to
// it; the server is killed when the test ends. It skips the test with
// -short, and without redis-server unless the environment variable CI is
// "true": there a missing redis-server fails the test, so that a broken
// CI image cannot turn these tests into silent skips.
func startRedis(t *testing.T) net.Conn {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no redis-server")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: a missing redis-server fails the test)", err)
		}
		t.Skipf("%v (install redis-server; with CI=true this fails)", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait for its own word that it is ready, not by polling the socket.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(strings.ToLower(sc.Text()), "ready to accept connections") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("redis-server exited before it was ready")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("redis-server not ready after 10s")
	}
	conn := dialRedis(t, sock)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func dialRedis(t *testing.T, sock string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn
}

// TestForwardDeepLuaReply: a Lua script returning a deeply nested table
// makes Redis send thousands of nested "*1" headers and, past its own
// limit, "-ERR reached lua stack limit" as the innermost element. Forward
// passes the reply on byte for byte, as Redis sent it to a plain
// connection, reports it as an array (not an error) and goes on.
func TestForwardDeepLuaReply(t *testing.T) {
	conn := startRedis(t)
	br := bufio.NewReader(conn)
	r := NewReader(br)
	for _, depth := range []int{1000, 10000} {
		eval := AppendCommand(nil, "EVAL", "local function f(n) if n == 0 then return 1 end return {f(n-1)} end return f(tonumber(ARGV[1]))", "0", strconv.Itoa(depth))
		eval = eval[:len(eval):len(eval)] // appending to it copies

		// The raw bytes: the same script on a connection of its own,
		// then QUIT, which Redis answers with +OK before it closes.
		c2 := dialRedis(t, conn.RemoteAddr().String())
		c2.Write(AppendCommand(eval, "QUIT"))
		raw, err := io.ReadAll(c2)
		c2.Close()
		raw, ok := bytes.CutSuffix(raw, []byte("+OK\r\n"))
		if err != nil || !ok {
			t.Fatalf("depth %d: reading Redis directly: %d bytes ending %q, %v", depth, len(raw), raw[max(0, len(raw)-40):], err)
		}
		nested := 0
		for bytes.HasPrefix(raw[4*nested:], []byte("*1\r\n")) {
			nested++
		}
		t.Logf("f(%d): %d nested arrays, then %q", depth, nested, raw[4*nested:])
		if nested < 1000 {
			t.Fatalf("depth %d: only %d nested arrays: %q", depth, nested, raw[:min(len(raw), 100)])
		}

		conn.Write(AppendCommand(eval, "PING"))
		var out bytes.Buffer
		rep, err := r.Forward(&out)
		if err != nil {
			t.Fatalf("depth %d: Forward: %v after %d bytes", depth, err, rep.N)
		}
		if !bytes.Equal(out.Bytes(), raw) {
			t.Fatalf("depth %d: Forward wrote %d bytes ending %q, Redis sent %d ending %q",
				depth, out.Len(), out.Bytes()[max(0, out.Len()-40):], len(raw), raw[max(0, len(raw)-40):])
		}
		if rep.Type != '*' || rep.Len != 1 || rep.IsError() || rep.N != int64(len(raw)) {
			t.Errorf("depth %d: have Reply{Type %q, Len %d, N %d, IsError %v}, want {'*', 1, %d, false}",
				depth, rep.Type, rep.Len, rep.N, rep.IsError(), len(raw))
		}
		if rep, err := r.Forward(nil); err != nil || string(rep.Line) != "PONG" {
			t.Fatalf("depth %d: then PING: have %q, %v", depth, rep.Line, err)
		}
	}
}
