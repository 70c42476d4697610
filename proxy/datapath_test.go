package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

func TestSmoke(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "PONG", "PING")
	expect(t, c, "OK", "SET", "a", "1")
	expect(t, c, `"1"`, "GET", "a")
	expect(t, c, "OK", "SELECT", "3")
	expect(t, c, "(nil)", "GET", "a")
	expect(t, c, "OK", "CLIENT", "SETNAME", "smoke")
	expect(t, c, `"smoke"`, "CLIENT", "GETNAME")
}

// rawExchange writes raw bytes to addr and returns everything read until
// the server closes or n bytes have arrived.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestSameBytesAsRedis sends the same raw requests to Redis directly and
// through the proxy and requires the same bytes back.
func TestSameBytesAsRedis(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	cases := []string{
		"PING\r\n",
		"*1\r\n$4\r\nPING\r\n",
		"SET k v\r\nGET k\r\n",
		"ECHO \"a\\x41\\n\"\r\n",
		"*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$0\r\n\r\n*2\r\n$3\r\nGET\r\n$2\r\nk2\r\n",
		"*2\r\n$4\r\nLLEN\r\n$1\r\nk\r\n",
		"RPUSH l a b c\r\nLRANGE l 0 -1\r\n",
		"HSET h f1 v1 f2 v2\r\nHGETALL h\r\n",
		"*0\r\n\r\nPING\r\n",
		"$-5\r\n",
		"NOSUCHCOMMAND x\r\n",
		"INCRBYFLOAT f 1.5\r\n",
		"HELLO 3\r\nHGETALL h\r\nSMEMBERS nosuch\r\nGET nosuch\r\nHELLO 2\r\n",
		"MULTI\r\nSET t 1\r\nINCR t\r\nEXEC\r\n",
	}
	for _, in := range cases {
		want, have := exchangeBoth(t, srv, p.Addr().String(), in)
		if in == "HELLO 3\r\nHGETALL h\r\nSMEMBERS nosuch\r\nGET nosuch\r\nHELLO 2\r\n" {
			// The server info map names the connection id: compare shapes.
			want, have = stripIDs(want), stripIDs(have)
		}
		if have != want {
			t.Errorf("%q:\nhave %q\nwant %q", in, have, want)
		}
	}
}

var idRE = strings.NewReplacer()

func stripIDs(s string) string {
	// "id" is followed by an integer line that differs per connection.
	lines := strings.Split(s, "\r\n")
	for i := 0; i+1 < len(lines); i++ {
		if lines[i] == "id" && strings.HasPrefix(lines[i+1], ":") {
			lines[i+1] = ":N"
		}
	}
	return idRE.Replace(strings.Join(lines, "\r\n"))
}

// exchangeBoth runs the same exchange with Redis directly and through
// the proxy at addr, each on an empty database: what Redis sent (want)
// and what the proxy sent (have).
func exchangeBoth(t *testing.T, srv *redistest.Server, addr, in string) (want, have string) {
	t.Helper()
	direct := srv.Client(t)
	expect(t, direct, "OK", "FLUSHALL")
	want = exchange(t, srv.Addr, in)
	expect(t, direct, "OK", "FLUSHALL")
	return want, exchange(t, addr, in)
}

// exchange sends in, then QUIT, and reads everything up to the close.
func exchange(t *testing.T, addr, in string) string {
	t.Helper()
	conn := rawConn(t, addr)
	if _, err := io.WriteString(conn, in+"QUIT\r\n"); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%q: %v", in, err)
	}
	return string(out)
}

func TestPipelineOfTenThousandInOneWrite(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	const n = 10000
	var req bytes.Buffer
	for i := range n {
		fmt.Fprintf(&req, "*3\r\n$5\r\nRPUSH\r\n$4\r\npipe\r\n$%d\r\n%d\r\n", len(strconv.Itoa(i)), i)
	}
	conn := rawConn(t, p.Addr().String())
	go conn.Write(req.Bytes())
	br := bufio.NewReader(conn)
	for i := range n {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if want := ":" + strconv.Itoa(i+1) + "\r\n"; line != want {
			t.Fatalf("reply %d: have %q, want %q", i, line, want)
		}
	}
	c := srv.Client(t)
	expect(t, c, "(integer) "+strconv.Itoa(n), "LLEN", "pipe")
	expect(t, c, `"9999"`, "LINDEX", "pipe", "-1")
}

func TestCommandByteByByte(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	conn := rawConn(t, p.Addr().String())
	req := "*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$5\r\nvalue\r\nGET slow\r\n"
	for i := range len(req) {
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(conn)
	for _, want := range []string{"+OK\r\n", "$5\r\n", "value\r\n"} {
		line, err := br.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("have %q (%v), want %q", line, err, want)
		}
	}
}

func TestRepliesNeverCross(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for client := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := redistest.Dial(p.Addr().String(), 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := range 500 {
				val := fmt.Sprintf("client%d-%d", client, i)
				for range 4 {
					c.Send("ECHO", val)
				}
				c.Flush()
				for range 4 {
					v, err := c.Receive()
					if err != nil || v.Str != val {
						errs <- fmt.Errorf("client %d: have %q (%v), want %q", client, v.Str, err, val)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLargeValueStreams checks that a 64 MiB GET goes through without the
// proxy holding it: the process allocates far less than the value.
func TestLargeValueStreams(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	const size = 64 << 20
	conn := rawConn(t, p.Addr().String())
	br := bufio.NewReader(conn)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	fmt.Fprintf(conn, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n", size)
	if _, err := io.CopyN(conn, zeros{}, size); err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "\r\n*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
	if line, _ := br.ReadString('\n'); line != "+OK\r\n" {
		t.Fatalf("SET: %q", line)
	}
	if line, _ := br.ReadString('\n'); line != fmt.Sprintf("$%d\r\n", size) {
		t.Fatalf("GET header: %q", line)
	}
	if n, err := io.CopyN(io.Discard, br, size+2); err != nil {
		t.Fatalf("GET body: %d bytes, %v", n, err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("moving 2 x 64 MiB allocated %d KiB; want < 8 MiB", grew>>10)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestTimeLimitDisconnectsOnlyTheOffender(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 400
	p := startProxy(t, cfg)
	slow := dial(t, p)
	other := dial(t, p)
	expect(t, other, "PONG", "PING")

	// Redis sleeps for everyone, so the sleep is short enough for the other
	// client's next command (sent once the offender is out) to be in time.
	start := time.Now()
	expect(t, slow, "(error) ERR proxy: command exceeded read_time_limit_ms", "DEBUG", "SLEEP", "0.6")
	if d := time.Since(start); d < 350*time.Millisecond || d > 590*time.Millisecond {
		t.Errorf("the time limit fired after %v; want about 400ms", d)
	}
	if err := slow.ReadEOF(); err != nil {
		t.Errorf("offender not disconnected: %v", err)
	}
	expect(t, other, "PONG", "PING")
	if n := p.Status().Counters.TimeLimitDisconnects; n != 1 {
		t.Errorf("time_limit_disconnects = %d, want 1", n)
	}
}

func TestClientAuth(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "uplinksecret")
	cfg := testConfig(srv.Addr)
	cfg.Uplink.Pass = "uplinksecret"
	cfg.Listen.Pass = "clientsecret"
	p := startProxy(t, cfg)

	c := dial(t, p)
	expect(t, c, "(error) NOAUTH Authentication required.", "GET", "a")
	expectPrefix(t, c, "(error) NOAUTH HELLO must be called with the client already authenticated", "HELLO", "3")
	expect(t, c, "(error) WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "uplinksecret")
	expect(t, c, "(error) WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "bob", "clientsecret")
	expect(t, c, "(error) ERR wrong number of arguments for 'auth' command", "AUTH")
	expect(t, c, "OK", "AUTH", "clientsecret")
	expect(t, c, "PONG", "PING")
	expect(t, c, "OK", "AUTH", "default", "clientsecret")

	// HELLO AUTH authenticates here and the rest reaches Redis.
	h := dial(t, p)
	v, err := h.Do("HELLO", "3", "AUTH", "default", "clientsecret", "SETNAME", "helloname")
	if err != nil || v.Type != '%' {
		t.Fatalf("HELLO 3 AUTH: %v %v", v, err)
	}
	expect(t, h, `"helloname"`, "CLIENT", "GETNAME")
	expect(t, h, "(error) WRONGPASS invalid username-password pair or user is disabled.", "HELLO", "3", "AUTH", "default", "nope")

	// The client's AUTH never reached Redis: its commandstats show only the
	// proxy's own AUTHs (one per uplink connection: two clients), and ours.
	direct := srv.Client(t)
	expect(t, direct, "OK", "AUTH", "uplinksecret")
	info := do(t, direct, "INFO", "commandstats")
	if !strings.Contains(info, "cmdstat_auth:calls=3,") {
		t.Errorf("AUTH calls on Redis: want the proxy's 2 and ours, have\n%s", info)
	}
}

func TestAuthWithoutListenPass(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "(error) ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?", "AUTH", "x")
	expect(t, c, "OK", "AUTH", "default", "anything")
	expect(t, c, "(error) WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "someone", "x")
}

func TestUnauthenticatedLimits(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.Listen.Pass = "pw"
	p := startProxy(t, cfg)

	c := dial(t, p)
	c.WriteRaw([]byte("*11\r\n"))
	expectLine(t, c, "-ERR Protocol error: unauthenticated multibulk length")
	expectEOF(t, c)

	c = dial(t, p)
	c.WriteRaw([]byte("*2\r\n$4\r\nAUTH\r\n$16385\r\n"))
	expectLine(t, c, "-ERR Protocol error: unauthenticated bulk length")
	expectEOF(t, c)

	// After AUTH the limits are Redis's usual ones.
	c = dial(t, p)
	expect(t, c, "OK", "AUTH", "pw")
	big := strings.Repeat("x", 20000)
	args := []any{"RPUSH", "l"}
	for range 11 {
		args = append(args, big)
	}
	expect(t, c, "(integer) 11", args...)
}

func expectLine(t *testing.T, c *redistest.Client, want string) {
	t.Helper()
	line, err := c.ReadLine()
	if err != nil || line != want {
		t.Fatalf("have %q (%v), want %q", line, err, want)
	}
}

func expectEOF(t *testing.T, c *redistest.Client) {
	t.Helper()
	if err := c.ReadEOF(); err != nil {
		t.Fatalf("connection not closed: %v", err)
	}
}

func TestProtocolErrors(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	other := dial(t, p)
	cases := []struct{ in, want string }{
		{"*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'"},
		{"*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$9223372036854775807\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*2147483648\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*x\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"SET \"a b\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{strings.Repeat("A", 70000), "-ERR Protocol error: too big inline request"},
	}
	for _, tc := range cases {
		c := dial(t, p)
		c.WriteRaw([]byte(tc.in))
		expectLine(t, c, tc.want)
		expectEOF(t, c)
		expect(t, other, "PONG", "PING")
	}
	// Replies due before the error are delivered first.
	c := dial(t, p)
	c.WriteRaw([]byte("PING\r\n*1\r\n+x\r\n"))
	expectLine(t, c, "+PONG")
	expectLine(t, c, "-ERR Protocol error: expected '$', got '+'")
}

func TestInlineAndUnknownCommands(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	c.WriteRaw([]byte("PING\r\n$-5\r\nSET 'k 1' \"v\\t2\"\nGET 'k 1'\r\n"))
	expectLine(t, c, "+PONG")
	expectLine(t, c, "-ERR unknown command '$-5', with args beginning with: ")
	expectLine(t, c, "+OK")
	expectLine(t, c, "$3")
	expectLine(t, c, "v\t2")
}

func TestUnsupportedCommands(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	for _, cmd := range [][]any{{"SYNC"}, {"PSYNC", "?", "-1"}} {
		want := fmt.Sprintf("(error) ERR proxy: '%s' is not supported", strings.ToLower(cmd[0].(string)))
		expect(t, c, want, cmd...)
	}
	expect(t, c, "PONG", "PING")
}

func TestQuit(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "OK", "QUIT")
	expectEOF(t, c)
}

func TestMaxClients(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.MaxClients = 2
	p := startProxy(t, cfg)
	a, b := dial(t, p), dial(t, p)
	expect(t, a, "PONG", "PING")
	expect(t, b, "PONG", "PING")
	c := dial(t, p)
	expectLine(t, c, "-ERR max number of clients reached")
	expectEOF(t, c)
	if n := p.Status().Counters.ClientsRejected; n != 1 {
		t.Errorf("clients_rejected = %d, want 1", n)
	}
	a.Close()
	// The slot is free once the session has gone.
	waitFor(t, "Clients == 1", func() bool { return p.Status().Clients == 1 })
	d := dial(t, p)
	expect(t, d, "PONG", "PING")
}

func TestIdleTimeout(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ClientIdleTimeoutMS = 200
	p := startProxy(t, cfg)
	c := dial(t, p)
	expect(t, c, "PONG", "PING")
	start := time.Now()
	expectEOF(t, c)
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle client closed after %v; want about 200ms", d)
	}
	// A client waiting for a reply is not idle.
	cfg2 := testConfig(srv.Addr)
	cfg2.ClientIdleTimeoutMS = 100
	p2 := startProxy(t, cfg2)
	w := dial(t, p2)
	expect(t, w, "(nil)", "BLPOP", "nothing", "0.5")
}

func TestUplinkUnavailableThenBack(t *testing.T) {
	addr, err := redistest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(addr)
	p := startProxy(t, cfg)
	c := dial(t, p)
	expectPrefix(t, c, "(error) ERR proxy: uplink unavailable: dial tcp "+addr+": connect: connection refused", "PING")
	expectPrefix(t, c, "(error) ERR proxy: uplink unavailable:", "PING")
	if p.Status().Counters.UplinkDialErrors < 2 {
		t.Errorf("uplink_dial_errors not counted")
	}
	_, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	srv, err := redistest.StartServer(t.Context(), redistest.Options{Port: pn})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	expect(t, c, "PONG", "PING")
}

func TestUplinkWrongPassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "right")
	cfg := testConfig(srv.Addr)
	cfg.Uplink.Pass = "wrong"
	p := startProxy(t, cfg)
	c := dial(t, p)
	expectPrefix(t, c, "(error) ERR proxy: uplink unavailable: AUTH: WRONGPASS", "PING")
}

// TestRedisRestartWhileIdle: an uplink connection that died while the
// client idled is dialed again, with the session's state replayed.
func TestRedisRestartWhileIdle(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "OK", "SELECT", "5")
	expect(t, c, "OK", "CLIENT", "SETNAME", "survivor")
	v, err := c.Do("HELLO", "3")
	if err != nil || v.Type != '%' {
		t.Fatalf("HELLO 3: %v %v", v, err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "OK", "SET", "after", "restart")
	expect(t, c, `"survivor"`, "CLIENT", "GETNAME")
	v, err = c.Do("CLIENT", "INFO")
	if err != nil || !strings.Contains(v.Str, " db=5 ") || !strings.HasSuffix(strings.TrimSpace(v.Str), " resp=3") {
		t.Errorf("state not replayed: %v %v", v, err)
	}
	direct := srv.Client(t)
	expect(t, direct, "OK", "SELECT", "5")
	expect(t, direct, `"restart"`, "GET", "after")
}

// TestInFlightWhenRedisDies: a command in flight when the uplink dies gets
// an error, never a silent retry.
func TestInFlightWhenRedisDies(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "PONG", "PING")
	done := make(chan string, 1)
	go func() {
		v, err := c.Do("BLPOP", "never", "0")
		done <- fmt.Sprint(v, err)
	}()
	waitFor(t, "ActiveRequests == 1", func() bool { return p.Status().ActiveRequests == 1 })
	srv.Kill()
	if have := <-done; have != "(error) ERR proxy: uplink connection lost <nil>" {
		t.Errorf("in-flight command: have %q", have)
	}
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "PONG", "PING")
}

func TestRESP3Passes(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	v, err := c.Do("HELLO", "3")
	if err != nil || v.Type != '%' {
		t.Fatalf("HELLO 3: %v %v", v, err)
	}
	expect(t, c, "(integer) 2", "HSET", "h", "a", "1", "b", "2")
	v, _ = c.Do("HGETALL", "h")
	if v.Type != '%' {
		t.Errorf("HGETALL in RESP3: type %q, want map", v.Type)
	}
	v, _ = c.Do("GET", "nosuch")
	if v.Type != '_' {
		t.Errorf("nil in RESP3: type %q, want _", v.Type)
	}
}

// TestPushesAreCarried: RESP3 pushes (client tracking invalidations here)
// reach the client between replies.
func TestPushesAreCarried(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	if v, err := c.Do("HELLO", "3"); err != nil || v.Type != '%' {
		t.Fatalf("HELLO 3: %v %v", v, err)
	}
	expect(t, c, "OK", "CLIENT", "TRACKING", "on")
	do(t, c, "GET", "tracked")
	expect(t, srv.Client(t), "OK", "SET", "tracked", "x")
	v, err := c.Receive()
	if err != nil || v.Type != '>' {
		t.Fatalf("want an invalidation push, have %v %v", v, err)
	}
	expect(t, c, "PONG", "PING")
}

func TestListenerTLSWithClientCertificates(t *testing.T) {
	certs := writeCerts(t)
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.Listen.TLS = true
	cfg.Listen.CertFile, cfg.Listen.KeyFile, cfg.Listen.ClientCAFile = certs.ServerCert, certs.ServerKey, certs.CA
	p := startProxy(t, cfg)

	good := clientTLS(t, certs, true)
	c, err := redistest.DialTLS(p.Addr().String(), good, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "PONG", "PING")

	bad := clientTLS(t, certs, false)
	c2, err := redistest.DialTLS(p.Addr().String(), bad, 5*time.Second)
	if err == nil {
		_, err = c2.Do("PING")
		c2.Close()
	}
	if err == nil {
		t.Error("a client without a certificate was served")
	}
	// Plain text on the TLS port is refused; other clients go on.
	plain := dial(t, p)
	plain.WriteRaw([]byte("PING\r\n"))
	if v, err := plain.Receive(); err == nil {
		t.Errorf("plain text on the TLS port answered: %v", v)
	}
	expect(t, c, "PONG", "PING")
}

func TestUplinkTLS(t *testing.T) {
	certs := writeCerts(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, "--tls-port", strconv.Itoa(port), "--tls-cert-file", certs.ServerCert,
		"--tls-key-file", certs.ServerKey, "--tls-ca-cert-file", certs.CA, "--tls-auth-clients", "optional")
	_ = srv
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	cfg := testConfig(tlsAddr)
	cfg.Uplink.TLS, cfg.Uplink.CACertFile = true, certs.CA
	p := startProxy(t, cfg)
	c := dial(t, p)
	expect(t, c, "PONG", "PING")

	// A CA that did not sign the server's certificate: the cause is named.
	cfg2 := testConfig(tlsAddr)
	cfg2.Uplink.TLS, cfg2.Uplink.CACertFile = true, certs.OtherCA
	p2 := startProxy(t, cfg2)
	c2 := dial(t, p2)
	expectPrefix(t, c2, "(error) ERR proxy: uplink unavailable: tls: failed to verify certificate", "PING")

	// Mutual TLS with a client certificate.
	cfg3 := testConfig(tlsAddr)
	cfg3.Uplink = config.Uplink{Addr: tlsAddr, TLS: true, CACertFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
	p3 := startProxy(t, cfg3)
	expect(t, dial(t, p3), "PONG", "PING")
}

func TestRawRelay(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ListenRaw.Addr = "127.0.0.1:0"
	p := startProxy(t, cfg)
	sub, err := redistest.Dial(p.RawAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Pub/sub is what the raw listener is for.
	v, err := sub.Do("SUBSCRIBE", "news")
	if err != nil || len(v.Elems) != 3 {
		t.Fatalf("SUBSCRIBE: %v %v", v, err)
	}
	expect(t, dial(t, p), "(integer) 1", "PUBLISH", "news", "hello")
	msg, err := sub.Receive()
	if err != nil || len(msg.Elems) != 3 || msg.Elems[2].Str != "hello" {
		t.Fatalf("message: %v %v", msg, err)
	}
	waitFor(t, "RawConnections == 1", func() bool { return p.Status().RawConnections == 1 })
	if n := p.TerminateRawConnections(); n != 1 {
		t.Errorf("terminated %d, want 1", n)
	}
	if err := sub.ReadEOF(); err != nil {
		t.Errorf("raw connection not closed: %v", err)
	}
	waitFor(t, "RawConnections == 0", func() bool { return p.Status().RawConnections == 0 })
}

// TestArgumentsTooLongToInspect: a huge argument where the proxy looks at
// arguments is forwarded (SELECT, CLIENT) or refused (AUTH) and the session
// goes on.
func TestArgumentsTooLongToInspect(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	huge := strings.Repeat("9", 100<<10)
	expectPrefix(t, c, "(error) ERR", "SELECT", huge)
	expectPrefix(t, c, "(error) ERR", "CLIENT", huge)
	expect(t, c, "OK", "CLIENT", "SETNAME", strings.Repeat("n", 100<<10))
	expect(t, c, "(error) ERR proxy: argument too long", "AUTH", huge)
	expect(t, c, "PONG", "PING")
}
