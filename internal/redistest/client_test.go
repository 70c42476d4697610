package redistest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, c *Client, args ...any) Value {
	t.Helper()
	v, err := c.Do(args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

// expect checks the redis-cli rendering of a reply.
func expect(t *testing.T, c *Client, want string, args ...any) Value {
	t.Helper()
	v := do(t, c, args...)
	if have := v.String(); have != want {
		t.Errorf("%v:\nhave %s\nwant %s", args, have, want)
	}
	return v
}

func TestClientRESP2(t *testing.T) {
	t.Parallel()
	s := Start(t, "--enable-debug-command", "yes")
	c := s.Client(t)

	if v := expect(t, c, "PONG", "PING"); v.Type != '+' {
		t.Errorf("PING: type %q, want '+'", v.Type)
	}
	expect(t, c, "OK", "SET", "k", []byte("v"))
	if v := expect(t, c, `"v"`, "GET", "k"); v.Type != '$' || v.Str != "v" {
		t.Errorf("GET k: %#v", v)
	}
	if v := expect(t, c, "(nil)", "GET", "nope"); v.Type != '$' || !v.Null {
		t.Errorf("GET nope: %#v, want a null bulk", v)
	}
	expect(t, c, "(integer) 3", "RPUSH", "l", "a", 2, int64(3))
	expect(t, c, "1) \"a\"\n2) \"2\"\n3) \"3\"", "LRANGE", "l", 0, -1)
	expect(t, c, "(empty array)", "LRANGE", "nope", 0, -1)
	expect(t, c, "1) (integer) 1\n2) 1) (integer) 2\n   2) \"a\"\n3) (empty array)",
		"EVAL", "return {1,{2,'a'},{}}", 0)
	expect(t, c, `"3.5"`, "INCRBYFLOAT", "f", 3.5)

	v := do(t, c, "NOSUCHCOMMAND", "x")
	var re ReplyError
	if v.Type != '-' || !errors.As(v.Err(), &re) || !strings.HasPrefix(string(re), "ERR unknown command") {
		t.Errorf("unknown command: have %#v, want an ERR reply", v)
	}
	v = do(t, c, "LPUSH", "k", "x")
	if !strings.HasPrefix(v.String(), "(error) WRONGTYPE ") {
		t.Errorf("LPUSH on a string: have %s", v)
	}
	// the connection is still in step after error replies
	expect(t, c, "PONG", "PING")

	// RESP2 gets no attributes, the value only
	if v := expect(t, c, `"Some real reply following the attribute"`, "DEBUG", "PROTOCOL", "attrib"); v.Attrs != nil {
		t.Errorf("RESP2 attrib: have attributes %v", v.Attrs)
	}
	expect(t, c, `"1234567999999999999999999999999999999"`, "DEBUG", "PROTOCOL", "bignum")
}

func TestClientRESP3(t *testing.T) {
	t.Parallel()
	s := Start(t, "--enable-debug-command", "yes")
	c := s.Client(t)

	hello := do(t, c, "HELLO", "3")
	if hello.Type != '%' || len(hello.Elems)%2 != 0 {
		t.Fatalf("HELLO 3: have %#v, want a map", hello)
	}
	fields := map[string]Value{}
	for i := 0; i < len(hello.Elems); i += 2 {
		fields[hello.Elems[i].Str] = hello.Elems[i+1]
	}
	if fields["server"].Str != "redis" || fields["proto"].Int != 3 {
		t.Errorf("HELLO 3: have %s", hello)
	}

	if v := expect(t, c, "(nil)", "GET", "nope"); v.Type != '_' || !v.Null {
		t.Errorf("RESP3 GET nope: %#v, want '_'", v)
	}
	if v := expect(t, c, "(double) 3.141", "DEBUG", "PROTOCOL", "double"); v.Type != ',' || v.Float != "3.141" {
		t.Errorf("double: %#v", v)
	}
	if v := expect(t, c, "(big number) 1234567999999999999999999999999999999", "DEBUG", "PROTOCOL", "bignum"); v.Type != '(' {
		t.Errorf("bignum: %#v", v)
	}
	if v := expect(t, c, "(true)", "DEBUG", "PROTOCOL", "true"); v.Type != '#' || v.Int != 1 {
		t.Errorf("true: %#v", v)
	}
	expect(t, c, "(false)", "DEBUG", "PROTOCOL", "false")
	expect(t, c, "(nil)", "DEBUG", "PROTOCOL", "null")
	if v := expect(t, c, "This is a verbatim\nstring", "DEBUG", "PROTOCOL", "verbatim"); v.Type != '=' || v.Str != "txt:This is a verbatim\nstring" {
		t.Errorf("verbatim: %#v", v)
	}
	expect(t, c, "1~ (integer) 0\n2~ (integer) 1\n3~ (integer) 2", "DEBUG", "PROTOCOL", "set")
	expect(t, c, "1# (integer) 0 => (false)\n2# (integer) 1 => (true)\n3# (integer) 2 => (false)", "DEBUG", "PROTOCOL", "map")

	attr := do(t, c, "DEBUG", "PROTOCOL", "attrib")
	want := Value{Type: '$', Str: "Some real reply following the attribute", Attrs: []Value{
		{Type: '$', Str: "key-popularity"},
		{Type: '*', Elems: []Value{{Type: '$', Str: "key:123"}, {Type: ':', Int: 90}}},
	}}
	if attr.String() != want.String() || attr.Str != want.Str || len(attr.Attrs) != 2 || attr.Attrs[1].Elems[1].Int != 90 {
		t.Errorf("attrib:\nhave %#v\nwant %#v", attr, want)
	}

	// DEBUG PROTOCOL push sends a push message, then the reply.
	push := do(t, c, "DEBUG", "PROTOCOL", "push")
	if push.Type != '>' || len(push.Elems) != 2 || push.Elems[0].Str != "server-cpu-usage" || push.Elems[1].Int != 42 {
		t.Errorf("push: %#v", push)
	}
	v, err := c.Receive()
	if err != nil || v.Str != "Some real reply following the push reply" {
		t.Errorf("reply after the push: %v %v", v, err)
	}

	if v := do(t, c, "NOSUCHCOMMAND"); v.Err() == nil {
		t.Errorf("RESP3 error: have %s", v)
	}
	expect(t, c, "PONG", "PING")
}

func TestClientLargeValue(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	big := make([]byte, 1<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "OK", "SET", "big", big)
	v := do(t, c, "GET", "big")
	if v.Type != '$' || v.Str != string(big) {
		t.Fatalf("GET big: type %q, %d bytes, want the 1 MiB sent", v.Type, len(v.Str))
	}
	expect(t, c, "(integer) 1048576", "STRLEN", "big")
}

func TestClientPipeline(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	const n = 10000
	for range n {
		if err := c.Send("INCR", "counter"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		v, err := c.Receive()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if v.Type != ':' || v.Int != int64(i) {
			t.Fatalf("reply %d: have %s", i, v)
		}
	}

	// Pipeline: 10,000 commands of 1 KiB, more than the socket buffers
	// hold, written while the replies are read.
	val := strings.Repeat("x", 1024)
	cmds := make([][]any, n)
	for i := range cmds {
		cmds[i] = []any{"SET", "k" + strconv.Itoa(i), val}
	}
	cmds = append(cmds, []any{"DBSIZE"})
	replies, err := c.Pipeline(cmds...)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != n+1 {
		t.Fatalf("have %d replies, want %d", len(replies), n+1)
	}
	for i, v := range replies[:n] {
		if v.String() != "OK" {
			t.Fatalf("reply %d: have %s", i, v)
		}
	}
	if have := replies[n].String(); have != "(integer) 10001" {
		t.Errorf("DBSIZE: have %s, want (integer) 10001", have)
	}
	if _, err := c.Pipeline([]any{"PING"}, []any{}); err == nil {
		t.Error("Pipeline with an empty command: have nil error")
	}
	expect(t, c, "PONG", "PING")
}

func TestClientRaw(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	if err := c.WriteRaw([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := c.ReadLine(); err != nil || line != "+PONG" {
		t.Fatalf("inline PING: have %q %v", line, err)
	}
	if err := c.WriteRaw([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := c.ReadRaw(7); err != nil || string(b) != "+PONG\r\n" {
		t.Fatalf("ReadRaw: have %q %v", b, err)
	}
	// Redis answers a malformed request with a protocol error and closes.
	if err := c.WriteRaw([]byte("*1\r\n$x\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := c.ReadLine(); err != nil || !strings.HasPrefix(line, "-ERR Protocol error") {
		t.Fatalf("malformed request: have %q %v", line, err)
	}
	if err := c.ReadEOF(); err != nil {
		t.Errorf("ReadEOF after a protocol error: %v", err)
	}

	c2 := s.Client(t)
	if _, ok := c2.Conn().(*net.TCPConn); !ok {
		t.Errorf("Conn(): %T", c2.Conn())
	}
	c2.SetTimeout(100 * time.Millisecond)
	if err := c2.ReadEOF(); err == nil {
		t.Error("ReadEOF on an open, idle connection: have nil error")
	}
	c2.SetTimeout(DefaultTimeout)
	expect(t, c2, "OK", "QUIT")
	if err := c2.ReadEOF(); err != nil {
		t.Errorf("ReadEOF after QUIT: %v", err)
	}
}

// TestDialTLS runs redis-server with a TLS port and a throwaway CA.
func TestDialTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pool := writeCert(t, dir)
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	s := Start(t, "--tls-port", port, "--tls-auth-clients", "no",
		"--tls-cert-file", filepath.Join(dir, "cert.pem"), "--tls-key-file", filepath.Join(dir, "key.pem"))
	_ = s
	c, err := DialTLS(addr, &tls.Config{RootCAs: pool, ServerName: "localhost"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "PONG", "PING")
	if _, ok := c.Conn().(*tls.Conn); !ok {
		t.Errorf("Conn(): %T, want *tls.Conn", c.Conn())
	}
	// a wrong name fails verification
	if c, err := DialTLS(addr, &tls.Config{RootCAs: pool, ServerName: "other"}, 10*time.Second); err == nil {
		c.Close()
		t.Error("DialTLS with the wrong server name: have nil error")
	}
}

// writeCert writes a self-signed certificate for localhost and 127.0.0.1
// (cert.pem, key.pem) into dir and returns a pool that trusts it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

// TestStringMatchesRedisCLI compares Value.String with what redis-cli
// --no-raw prints for the same commands.
func TestStringMatchesRedisCLI(t *testing.T) {
	t.Parallel()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s := Start(t, "--enable-debug-command", "yes")
	setup := s.Client(t)
	expect(t, setup, "OK", "SET", "odd", "a\"b\\c\n\r\t\x01\xc3\xa9~ ")
	for i := range 12 {
		do(t, setup, "RPUSH", "twelve", i)
	}
	expect(t, setup, "(integer) 2", "HSET", "h", "f1", "v1", "f2", "v2")
	expect(t, setup, "(integer) 1", "SADD", "s", "m")

	cases := []struct {
		resp3 bool
		args  []string
	}{
		{false, []string{"PING"}},
		{false, []string{"GET", "odd"}},
		{false, []string{"GET", "nope"}},
		{false, []string{"LRANGE", "twelve", "0", "-1"}},
		{false, []string{"LRANGE", "nope", "0", "-1"}},
		{false, []string{"EVAL", "return {1,{2,'a',{}},{}}", "0"}},
		{false, []string{"HGETALL", "h"}},
		{false, []string{"NOSUCHCOMMAND", "x"}},
		{false, []string{"INCR", "odd"}},
		{true, []string{"GET", "nope"}},
		{true, []string{"HGETALL", "h"}},
		{true, []string{"HGETALL", "nope"}},
		{true, []string{"SMEMBERS", "s"}},
		{true, []string{"SMEMBERS", "nope"}},
		{true, []string{"DEBUG", "PROTOCOL", "map"}},
		{true, []string{"DEBUG", "PROTOCOL", "set"}},
		{true, []string{"DEBUG", "PROTOCOL", "double"}},
		{true, []string{"DEBUG", "PROTOCOL", "true"}},
		{true, []string{"DEBUG", "PROTOCOL", "null"}},
		{true, []string{"DEBUG", "PROTOCOL", "verbatim"}},
		{true, []string{"EVAL", "redis.setresp(3); return {map={k={1,2}}}", "0"}},
		{true, []string{"EVAL", "redis.setresp(3); return {map={k={map={a=1}}}}", "0"}},
		{true, []string{"EVAL", "redis.setresp(3); return {double=1.5}", "0"}},
	}
	c2 := s.Client(t)
	c3 := s.Client(t)
	do(t, c3, "HELLO", "3")
	for _, tt := range cases {
		cliArgs := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "--no-raw"}
		c := c2
		if tt.resp3 {
			cliArgs = append(cliArgs, "-3")
			c = c3
		}
		out, err := exec.Command(cli, append(cliArgs, tt.args...)...).CombinedOutput()
		if err != nil && !bytes.Contains(out, []byte("(error)")) {
			t.Errorf("redis-cli %v: %v\n%s", tt.args, err, out)
			continue
		}
		want := strings.TrimSuffix(string(out), "\n")
		args := make([]any, len(tt.args))
		for i, a := range tt.args {
			args[i] = a
		}
		if have := do(t, c, args...).String(); have != want {
			t.Errorf("RESP%d %q:\nhave %q\nwant %q (redis-cli)", map[bool]int{false: 2, true: 3}[tt.resp3], tt.args, have, want)
		}
	}
}
