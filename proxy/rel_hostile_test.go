package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

// hostileCase is one malformed input (doc/reliability.md, "Malformed input"). The proxy's answer
// must be Redis's own, byte for byte (sameAsRedis), or want.
type hostileCase struct {
	name string
	in   string
	// sameAsRedis: send in to redis-server too and require the same bytes
	// back, and the same close.
	sameAsRedis bool
	want        string // when not sameAsRedis: the exact bytes the proxy sends
	// halfClose: the client shuts its write side after in (as a client
	// that is done does); otherwise the proxy must close by itself.
	halfClose bool
}

var hostileCases = []hostileCase{
	{name: "bad type byte in a command", in: "*1\r\n+PING\r\n", sameAsRedis: true},
	{name: "bad type byte, binary", in: "*1\r\n\x00\r\n",
		// Redis looks for '\r' with strchr, stops at the NUL and waits
		// for more; the proxy answers at once.
		want: "-ERR Protocol error: expected '$', got '\x00'\r\n"},
	{name: "negative bulk length", in: "*1\r\n$-5\r\n", sameAsRedis: true},
	{name: "negative bulk length of an argument", in: "*2\r\n$3\r\nGET\r\n$-5\r\n", sameAsRedis: true},
	{name: "negative multibulk count is an empty command", in: "*-5\r\nPING\r\n", sameAsRedis: true, halfClose: true},
	{name: "$-5 alone is an inline command", in: "$-5\r\n", sameAsRedis: true, halfClose: true},
	{name: "bulk length overflows int64", in: "*1\r\n$9223372036854775808\r\n", sameAsRedis: true},
	{name: "bulk length of 23 digits", in: "*1\r\n$99999999999999999999999\r\n", sameAsRedis: true},
	{name: "multibulk count overflows int64", in: "*9223372036854775808\r\n", sameAsRedis: true},
	{name: "multibulk count over 2^31-1", in: "*2147483648\r\n", sameAsRedis: true},
	{name: "multibulk count 2^31-1, then nothing", in: "*2147483647\r\n", sameAsRedis: true, halfClose: true},
	{name: "bulk length over 512 MiB", in: "*2\r\n$4\r\nECHO\r\n$536870913\r\n", sameAsRedis: true},
	{name: "bulk of 512 MiB declared, 1 KiB sent", in: "*2\r\n$4\r\nECHO\r\n$536870912\r\n" + strings.Repeat("x", 1024), sameAsRedis: true, halfClose: true},
	{name: "inline line over 64 KiB", in: strings.Repeat("A", 70000), sameAsRedis: true},
	{name: "multibulk count line over 64 KiB", in: "*" + strings.Repeat("1", 70000), sameAsRedis: true},
	{name: "bulk length line over 64 KiB", in: "*1\r\n$" + strings.Repeat("1", 70000), sameAsRedis: true},
	{name: "unbalanced double quote", in: "SET \"a b\r\n", sameAsRedis: true},
	{name: "unbalanced single quote", in: "SET 'a b\r\n", sameAsRedis: true},
	{name: "closing quote not followed by a space", in: "SET \"a\"b c\r\n", sameAsRedis: true},
	{name: "nesting bomb: arrays in a command", in: strings.Repeat("*1\r\n", 100000), sameAsRedis: true},
	{name: "nesting bomb: maps in a command", in: strings.Repeat("%1\r\n", 100000) + "QUIT\r\n",
		// Not '*': an inline command, unknown, each line. (Redis stops
		// writing at a half-close: the QUIT ends it instead.)
		want: strings.Repeat("-ERR unknown command '%1', with args beginning with: \r\n", 100000) + "+OK\r\n"},
	{name: "pipeline cut in the middle of a value", in: "SET a 1\r\nGET a\r\n*3\r\n$3\r\nSET\r\n$3\r\ncut\r\n$10\r\nabc", sameAsRedis: true, halfClose: true},
	{name: "pipeline cut in the middle of a header", in: "SET a 1\r\n*3\r\n$3\r\nSET\r\n$3\r\ncut\r\n$1", sameAsRedis: true, halfClose: true},
	{name: "pipeline cut in the middle of a name", in: "SET a 1\r\n*3\r\n$3\r\nSE", sameAsRedis: true, halfClose: true},
	{name: "missing CRLF after a bulk", in: "PING\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabcd\r\n",
		// Redis skips the two bytes after a bulk unchecked; the proxy
		// checks them, as its RESP reader does everywhere.
		want: "+PONG\r\n-ERR Protocol error: expected '\\r\\n' after bulk data\r\n"},
	{name: "blank lines and empty commands are skipped", in: "\r\n\r\n*0\r\n\n*-1\r\nPING\r\n", sameAsRedis: true, halfClose: true},
	{name: "NUL bytes in an inline command", in: "EC\x00HO x\r\n", sameAsRedis: true, halfClose: true},
}

// TestRelHostileInput sends every malformed input of doc/reliability.md, each
// on a fresh connection, while a background client pipelines and checks
// every reply: each gets Redis's error (byte for byte) or a clean close,
// the proxy stays up, and the other client is unaffected.
func TestRelHostileInput(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	before := relCount()
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 1000
	p := startProxy(t, cfg)
	chk := startChecker(t, p.Addr().String(), "hostile", 8)
	chk.waitRounds(t, 5)
	heap0 := heapInuse()

	tried := 0
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			have, closed := hostileExchange(t, p.Addr().String(), tc)
			if !closed {
				t.Fatalf("connection not closed within 10s; have %q", trunc(have))
			}
			want := tc.want
			if tc.sameAsRedis {
				w, wclosed := hostileExchange(t, srv.Addr, tc)
				if !wclosed {
					t.Fatalf("redis-server did not close; the case is wrong")
				}
				want = string(w)
			}
			if string(have) != want {
				t.Errorf("proxy %q\n want %q", trunc(have), trunc([]byte(want)))
			}
			// Nothing of a cut command ran.
			expect(t, direct, "(integer) 0", "EXISTS", "cut")
		})
		tried++
		chk.waitRounds(t, 2)
	}
	if grew := int64(heapInuse()) - int64(heap0); grew > 16<<20 {
		t.Errorf("heap in use grew by %s over the hostile inputs; bound 16 MiB", mib(uint64(grew)))
	}
	t.Logf("hostile inputs: %d cases, each answered as Redis answers it (or as stated) and closed", tried)
	chk.finish(t)
	if st := p.Status(); st.State != StateRunning {
		t.Errorf("state %s", st.State)
	}
	relShutdown(t, p)
	checkNoLeaks(t, before)
}

// hostileExchange sends tc.in on a new connection and reads until the
// peer closes (10 s at most).
func hostileExchange(t *testing.T, addr string, tc hostileCase) ([]byte, bool) {
	t.Helper()
	conn := relDial(t, addr)
	defer conn.Close()
	werr := make(chan error, 1)
	go func() {
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := io.WriteString(conn, tc.in)
		if err == nil && tc.halfClose {
			err = conn.CloseWrite()
		}
		werr <- err
	}()
	out, closed, _ := readToClose(conn, 10*time.Second)
	<-werr // a write cut short by the close is fine
	return out, closed
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return fmt.Sprintf("%q... (%d bytes)", b[:300], len(b))
	}
	return string(b)
}

// TestRelRandomBytes sends 10 MiB of random bytes, then 10 MiB (1 MiB in
// the short form) of random inline garbage lines, to the proxy and to
// redis-server, and requires the same bytes back from both, with a
// background client checked all along.
func TestRelRandomBytes(t *testing.T) {
	srv := redistest.Start(t)
	before := relCount()
	p := startProxy(t, testConfig(srv.Addr))
	chk := startChecker(t, p.Addr().String(), "random", 8)
	lines := 1 << 20
	if *relLong {
		lines = 10 << 20
	}
	inputs := []struct {
		name string
		in   []byte
	}{
		{"10 MiB of random bytes", randomBytes(1, 10<<20)},
		{fmt.Sprintf("%d MiB of random inline lines", lines>>20), randomLines(2, lines)},
	}
	for _, in := range inputs {
		start := time.Now()
		have, closed := streamExchange(t, p.Addr().String(), in.in)
		d := time.Since(start)
		want, wclosed := streamExchange(t, srv.Addr, in.in)
		if !closed || !wclosed {
			t.Fatalf("%s: closed: proxy %v, redis %v", in.name, closed, wclosed)
		}
		if !bytes.Equal(have, want) {
			i := 0
			for i < len(have) && i < len(want) && have[i] == want[i] {
				i++
			}
			t.Errorf("%s: the proxy's reply differs from Redis's at byte %d of %d/%d:\nproxy %q\nredis %q",
				in.name, i, len(have), len(want), trunc(have[i:]), trunc(want[i:]))
		}
		t.Logf("%s: %d reply bytes, the same as Redis's, in %v", in.name, len(have), d)
		chk.waitRounds(t, 2)
	}
	chk.finish(t)
	relShutdown(t, p)
	checkNoLeaks(t, before)
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randomLines makes n bytes of inline commands: random printable words,
// no quotes (they would end it at the first line), never starting with
// '*' (a multibulk header).
func randomLines(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$:+-_!#%&()[]{}<>=?/.,;~^|@\\\t"
	b := make([]byte, 0, n+128)
	for len(b) < n {
		words := 1 + r.IntN(6)
		for w := range words {
			if w > 0 {
				b = append(b, ' ')
			}
			for range 1 + r.IntN(12) {
				b = append(b, alphabet[r.IntN(len(alphabet))])
			}
		}
		if r.IntN(4) == 0 {
			b = append(b, '\n')
		} else {
			b = append(b, '\r', '\n')
		}
	}
	return b
}

// streamExchange writes in, then QUIT (Redis stops writing replies at a
// half-close), while reading everything the peer sends until it closes
// (60 s at most).
func streamExchange(t *testing.T, addr string, in []byte) ([]byte, bool) {
	t.Helper()
	conn := relDial(t, addr)
	defer conn.Close()
	go func() {
		conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
		if _, err := conn.Write(in); err == nil {
			io.WriteString(conn, "\r\nQUIT\r\n")
		}
	}()
	out, closed, _ := readToClose(conn, 60*time.Second)
	return out, closed
}

// TestRelSilentHalfCommand: a client that sends half a command and goes
// silent. Which limit reaps it depends on how far it got: with the name
// incomplete nothing was forwarded and client_idle_timeout_ms applies
// (nothing, as in Redis, when it is 0); with the name complete the
// command is queued and forwarded as its arguments arrive, so
// read_time_limit_ms applies: the time-limit error, then the close.
func TestRelSilentHalfCommand(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 600
	cfg.ClientIdleTimeoutMS = 300
	p := startProxy(t, cfg)
	chk := startChecker(t, p.Addr().String(), "silent", 4)

	cases := []struct {
		name, in, want string
		min, max       time.Duration
	}{
		{"name incomplete: idle timeout", "*2\r\n$3\r\nGE", "", 250 * time.Millisecond, 3 * time.Second},
		{"header incomplete: idle timeout", "*2\r\n$3\r", "", 250 * time.Millisecond, 3 * time.Second},
		{"argument incomplete: time limit", "*2\r\n$3\r\nGET\r\n$5\r\nab", "-" + msgTimeLimit + "\r\n", 550 * time.Millisecond, 3 * time.Second},
		{"after a complete command: idle timeout", "PING\r\n*1\r\n", "+PONG\r\n", 250 * time.Millisecond, 3 * time.Second},
	}
	for _, tc := range cases {
		tl := p.Status().Counters.TimeLimitDisconnects
		conn := relDial(t, p.Addr().String())
		start := time.Now()
		io.WriteString(conn, tc.in)
		out, closed, err := readToClose(conn, 10*time.Second)
		d := time.Since(start)
		if !closed || string(out) != tc.want {
			t.Errorf("%s: have %q closed=%v (%v), want %q and a close", tc.name, out, closed, err, tc.want)
		}
		if d < tc.min || d > tc.max {
			t.Errorf("%s: closed after %v, want %v..%v", tc.name, d, tc.min, tc.max)
		}
		wantTL := tl
		if tc.want == "-"+msgTimeLimit+"\r\n" {
			wantTL++
		}
		if n := p.Status().Counters.TimeLimitDisconnects; n != wantTL {
			t.Errorf("%s: time_limit_disconnects %d, want %d", tc.name, n, wantTL)
		}
		t.Logf("half a command, silent (%s): closed after %v", tc.name, d.Round(time.Millisecond))
	}
	chk.finish(t)
}

// TestRelUnauthenticatedLimits: oversized arrays and bulks before AUTH get
// Redis's own errors (compared with a redis-server with requirepass).
func TestRelUnauthenticatedLimits(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "pw")
	cfg := testConfig(srv.Addr)
	cfg.Uplink.Pass = "pw"
	cfg.Listen.Pass = "pw"
	p := startProxy(t, cfg)
	chk := startCheckerAuth(t, p.Addr().String(), "pw")
	cases := []hostileCase{
		{name: "11 arguments", in: "*11\r\n", sameAsRedis: true},
		{name: "a million arguments", in: "*1000000\r\n", sameAsRedis: true},
		{name: "2^31-1 arguments", in: "*2147483647\r\n", sameAsRedis: true},
		{name: "a 16 KiB + 1 bulk", in: "*2\r\n$4\r\nAUTH\r\n$16385\r\n", sameAsRedis: true},
		{name: "a 512 MiB bulk", in: "*2\r\n$4\r\nAUTH\r\n$536870912\r\n", sameAsRedis: true},
		{name: "a command before AUTH", in: "*2\r\n$3\r\nGET\r\n$1\r\na\r\n", sameAsRedis: true, halfClose: true},
		{name: "an inline line over 64 KiB", in: strings.Repeat("A", 70000), sameAsRedis: true},
	}
	for _, tc := range cases {
		have, closed := hostileExchange(t, p.Addr().String(), tc)
		want, wclosed := hostileExchange(t, srv.Addr, tc)
		if !closed || !wclosed || !bytes.Equal(have, want) {
			t.Errorf("%s: proxy %q (closed %v), redis %q (closed %v)", tc.name, trunc(have), closed, trunc(want), wclosed)
		}
	}
	t.Logf("before AUTH: %d oversized inputs answered as Redis answers them", len(cases))
	chk.finish(t)
}

// startCheckerAuth is startChecker for a proxy with listen.pass.
func startCheckerAuth(t *testing.T, addr, pass string) *relChecker {
	t.Helper()
	c, err := redistest.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Do("AUTH", pass); err != nil || v.Str != "OK" {
		t.Fatalf("AUTH: %v %v", v, err)
	}
	c.SetTimeout(30 * time.Second)
	k := newChecker("auth")
	go k.run(c, 4)
	t.Cleanup(func() { k.halt() })
	k.waitRounds(t, 2)
	return k
}

// TestRelTLSMismatch: a TLS handshake on the plain port and plain text on
// the TLS port end with a close; the proxy goes on serving.
func TestRelTLSMismatch(t *testing.T) {
	certs := writeCerts(t)
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ClientIdleTimeoutMS = 500
	plain := startProxy(t, cfg)
	tcfg := testConfig(srv.Addr)
	tcfg.Listen.TLS = true
	tcfg.Listen.CertFile, tcfg.Listen.KeyFile = certs.ServerCert, certs.ServerKey
	tlsP := startProxy(t, tcfg)
	chk := startChecker(t, plain.Addr().String(), "tls", 4)

	// A ClientHello on the plain port is an inline request without a line
	// end (or garbage with one): no TLS answer comes; the client's
	// handshake fails, or client_idle_timeout_ms closes it.
	for i := range 5 {
		conn := relDial(t, plain.Addr().String())
		tc := tls.Client(conn, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err == nil {
			t.Fatalf("TLS handshake %d succeeded on the plain port", i)
		}
		tc.Close()
	}
	// Plain text on the TLS port: closed (a TLS alert at most), never an
	// answer.
	for _, in := range []string{"PING\r\n", "*1\r\n$4\r\nPING\r\n", string(randomBytes(3, 4096))} {
		conn := relDial(t, tlsP.Addr().String())
		io.WriteString(conn, in)
		out, closed, err := readToClose(conn, 15*time.Second)
		if !closed || bytes.Contains(out, []byte("PONG")) {
			t.Errorf("plain text on the TLS port: have %q closed=%v (%v)", out, closed, err)
		}
	}
	// The TLS listener still serves TLS clients.
	c, err := redistest.DialTLS(tlsP.Addr().String(), clientTLS(t, certs, false), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "PONG", "PING")
	waitFor(t, "the TLS probes reaped", func() bool { return plain.Status().Clients == 1 }) // the checker alone
	chk.finish(t)
	t.Logf("TLS on the plain port: 5 handshakes failed and were closed; plain text on the TLS port: 3 inputs closed")
}

// FuzzSession feeds arbitrary client bytes into a session in front of
// miniredis. Properties: no panic; the connection ends (the input is
// followed by a half-close) within a deadline; the proxy goes on serving
// another client.
func FuzzSession(f *testing.F) {
	for _, tc := range hostileCases {
		if len(tc.in) < 4096 {
			f.Add([]byte(tc.in))
		}
	}
	for _, s := range []string{
		"PING\r\n", "*1\r\n$4\r\nPING\r\n", "MULTI\r\nSET a 1\r\nEXEC\r\n", "MULTI\r\nMULTI\r\nDISCARD\r\n",
		"AUTH x\r\nHELLO 3\r\nHELLO 2 AUTH default x SETNAME n\r\n", "SELECT 3\r\nCLIENT SETNAME a\r\nRESET\r\n",
		"WATCH a\r\nMULTI\r\nEXEC\r\nQUIT\r\n", "SUBSCRIBE x\r\nCLIENT REPLY OFF\r\n", "HELLO 4\r\nHELLO x\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$70000\r\n" + strings.Repeat("v", 70000) + "\r\nGET k\r\n",
	} {
		f.Add([]byte(s))
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(mr.Close)
	cfg := &config.Config{
		Uplink:          config.Uplink{Addr: mr.Addr()},
		Listen:          config.Listen{Addr: "127.0.0.1:0"},
		Admin:           config.Admin{Addr: "127.0.0.1:0"},
		ReadTimeLimitMS: 500,
	}
	p, err := New(cfg, Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := p.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	addr := p.Addr().String()
	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write(in); err == nil {
				conn.(*net.TCPConn).CloseWrite()
			}
		}()
		// A reply may be anything Redis says; it must end, by the proxy
		// closing, within the time limit and a margin.
		_, closed, err := readToClose(conn, 5*time.Second)
		wg.Wait()
		if !closed {
			t.Fatalf("connection still open 5s after the input ended: %v", err)
		}
		other, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		other.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(other, "PING\r\n")
		line, err := bufio.NewReader(other).ReadString('\n')
		if line != "+PONG\r\n" {
			t.Fatalf("another client after the input: %q %v", line, err)
		}
	})
}
