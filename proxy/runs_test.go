package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"

	"redis-proxy/internal/redistest"
	"redis-proxy/resp"
)

// multibulk encodes commands as clients libraries send them (runs.go takes
// multibulk commands only; inline ones go the long way).
func multibulk(cmds ...[]string) string {
	var b []byte
	for _, c := range cmds {
		b = resp.AppendCommand(b, c...)
	}
	return string(b)
}

// runsPipeline mixes runs of plain commands with what a run must not take:
// commands the proxy handles (SELECT, CLIENT, MULTI, AUTH), a reply too
// long to be whole in a buffer, errors, CLIENT REPLY SKIP.
func runsPipeline() [][]string {
	big := strings.Repeat("v", 10000)
	return [][]string{
		{"SET", "a", "1"}, {"GET", "a"}, {"INCR", "a"}, {"SET", "big", big},
		{"SELECT", "1"}, {"SET", "a", "2"}, {"GET", "a"}, {"LPUSH", "a", "x"}, {"GET", "a"},
		{"CLIENT", "SETNAME", "runs"}, {"GET", "big"}, {"ECHO", "e"}, {"SELECT", "0"}, {"GET", "big"}, {"GET", "a"},
		{"MULTI"}, {"SET", "b", "1"}, {"INCR", "b"}, {"EXEC"}, {"GET", "b"},
		{"CLIENT", "REPLY", "SKIP"}, {"SET", "c", "1"}, {"GET", "c"}, {"AUTH", "x"}, {"PING"},
		{"SELECT", "1"}, {"INCRBY", "n", "5"}, {"GET", "n"},
	}
}

// TestRunsMatchRedis: a pipeline of runs and what breaks them gives, byte
// for byte, what Redis gives; the state the commands between the runs
// changed is the session's (its db and name, as the client list shows).
func TestRunsMatchRedis(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	in := multibulk(runsPipeline()...)
	want, have := exchangeBoth(t, srv, p.Addr().String(), in)
	if have != want {
		t.Fatalf("have %d bytes, want %d:\nhave %.400q\nwant %.400q", len(have), len(want), have, want)
	}

	// The same, the connection kept: the session ends in db 1, named.
	expect(t, srv.Client(t), "OK", "FLUSHALL")
	conn := rawConn(t, p.Addr().String())
	if _, err := io.WriteString(conn, in); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want)-len("+OK\r\n")) // all but QUIT's
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want[:len(got)] {
		t.Fatalf("kept open: have %.400q\nwant %.400q", got, want)
	}
	for _, ci := range p.Clients() {
		if ci.Name == "runs" && ci.DB == 1 {
			return
		}
	}
	t.Fatalf("no client named runs in db 1: %+v", p.Clients())
}

// TestRunsStopAtPushes: RESP3 with CLIENT TRACKING: invalidation pushes
// come between the replies of a pipeline (the client changes keys it
// reads) and reach the client where Redis put them, none taken for a
// reply.
func TestRunsStopAtPushes(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	cmds := [][]string{{"HELLO", "3"}, {"CLIENT", "TRACKING", "ON"}}
	for i := range 20 {
		k := []string{"k1", "k2", "k3"}[i%3]
		cmds = append(cmds, []string{"GET", k}, []string{"SET", k, "v"}, []string{"GET", "k2"}, []string{"MGET", "k1", "k3"})
	}
	want, have := exchangeBoth(t, srv, p.Addr().String(), multibulk(cmds...))
	want, have = stripIDs(want), stripIDs(have)
	if !strings.Contains(want, ">2\r\n$10\r\ninvalidate\r\n") {
		t.Fatalf("Redis sent no invalidation: %.300q", want)
	}
	if have != want {
		t.Fatalf("have %d bytes, want %d:\nhave %.600q\nwant %.600q", len(have), len(want), have, want)
	}
}

// TestRunsNotInsideMulti: inside MULTI each queued command is counted, so
// that EXEC's elements teach what the block changed: a SELECT after plain
// commands is learnt from its own element (here the first is an error).
func TestRunsNotInsideMulti(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	in := multibulk([]string{"SET", "s", "text"}, []string{"MULTI"}, []string{"INCR", "s"}, []string{"GET", "x"},
		[]string{"SELECT", "2"}, []string{"EXEC"}, []string{"CLIENT", "SETNAME", "multi"})
	want := "+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n-ERR value is not an integer or out of range\r\n$-1\r\n+OK\r\n+OK\r\n"
	if direct := exchange(t, srv.Addr, in); direct != want+"+OK\r\n" {
		t.Fatalf("Redis: %q", direct)
	}
	conn := rawConn(t, p.Addr().String())
	if _, err := io.WriteString(conn, in); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != want {
		t.Fatalf("have %q (%v), want %q", got, err, want)
	}
	for _, ci := range p.Clients() {
		if ci.Name == "multi" {
			if ci.DB != 2 {
				t.Fatalf("after EXEC: db %d, want 2", ci.DB)
			}
			return
		}
	}
	t.Fatalf("no client named multi: %+v", p.Clients())
}

// TestRunsNotWhileSubscribed: a RESP2 subscriber's PINGs are answered
// behind a backlog of messages (they wait in Redis while the test does
// not read); the messages are not replies, and every byte arrives as
// Redis sent it.
func TestRunsNotWhileSubscribed(t *testing.T) {
	srv := redistest.Start(t)
	expect(t, srv.Client(t), "OK", "CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
	p := startProxy(t, testConfig(srv.Addr))
	sub := rawConn(t, p.Addr().String())
	confirm := "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
	io.WriteString(sub, multibulk([]string{"SUBSCRIBE", "ch"}))
	if got := readN(t, sub, len(confirm)); got != confirm {
		t.Fatalf("SUBSCRIBE: %q", got)
	}
	const n, pings = 16000, 100 // 16 MB: more than the sockets between Redis and the test hold
	payload := strings.Repeat("m", 1000)
	var pubs []string
	for range n {
		pubs = append(pubs, multibulk([]string{"PUBLISH", "ch", payload}))
	}
	pub := rawConn(t, srv.Addr)
	go io.WriteString(pub, strings.Join(pubs, ""))
	if got := readN(t, pub, n*len(":1\r\n")); got != strings.Repeat(":1\r\n", n) {
		t.Fatalf("PUBLISH: %.100q", got)
	}
	var ping []string
	for range pings {
		ping = append(ping, multibulk([]string{"PING"}))
	}
	io.WriteString(sub, strings.Join(ping, ""))
	message := "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1000\r\n" + payload + "\r\n"
	want := strings.Repeat(message, n) + strings.Repeat("*2\r\n$4\r\npong\r\n$0\r\n\r\n", pings)
	if got := readN(t, sub, len(want)); got != want {
		t.Fatalf("have %d bytes, not the %d Redis sent", len(got), len(want))
	}
}

// TestRunsNotWhileMonitoring: a MONITOR client's own PINGs come back as
// a MONITOR line and a +PONG each, interleaved; every PONG arrives.
func TestRunsNotWhileMonitoring(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	conn := rawConn(t, p.Addr().String())
	io.WriteString(conn, multibulk([]string{"MONITOR"}))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	const pings = 200
	var ping []string
	for range pings {
		ping = append(ping, multibulk([]string{"PING"}))
	}
	io.WriteString(conn, strings.Join(ping, ""))
	pongs, lines := 0, 0
	for pongs < pings {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d PONGs and %d MONITOR lines: %v", pongs, lines, err)
		}
		switch {
		case line == "+PONG\r\n":
			pongs++
		case strings.HasSuffix(line, "\"PING\"\r\n"):
			lines++
		default:
			t.Fatalf("unexpected %q", line)
		}
	}
}

func readN(t *testing.T, conn net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if k, err := io.ReadFull(conn, b); err != nil {
		t.Fatalf("read %d of %d bytes: %v", k, n, err)
	}
	return string(b)
}
