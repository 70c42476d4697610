package proxy

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"redis-proxy/internal/redistest"
)

// syncBuffer is a log destination safe for the proxy's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestLogMessages(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "uplinkSECRET")
	cfg := testConfig(srv.Addr)
	cfg.Uplink.Pass = "uplinkSECRET"
	cfg.Listen.Pass = "clientSECRET"
	cfg.LogMessages = true
	var logs syncBuffer
	p := startProxy(t, cfg, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	c := dial(t, p)
	expect(t, c, "(error) WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "wrongSECRET")
	expect(t, c, "OK", "AUTH", "clientSECRET")
	if v, err := c.Do("HELLO", "3", "AUTH", "default", "clientSECRET"); err != nil || v.Type != '%' {
		t.Fatalf("HELLO: %v %v", v, err)
	}
	expect(t, c, "OK", "SET", "greeting", "hello world")
	expect(t, c, `"hello world"`, "GET", "greeting")
	do(t, c, "CONFIG", "SET", "masterauth", "configSECRET")
	out := logs.String()
	for _, want := range []string{`cmd="SET greeting \"hello world\""`, `reply="+OK\r\n"`, `cmd="GET greeting"`, `cmd=AUTH`, `cmd=HELLO`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("a password reached the log:\n%s", out)
	}
	// Off: nothing about commands.
	var quiet syncBuffer
	cfg2 := testConfig(srv.Addr)
	cfg2.Uplink.Pass = "uplinkSECRET"
	p2 := startProxy(t, cfg2, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&quiet, nil)) })
	expect(t, dial(t, p2), "PONG", "PING")
	if strings.Contains(quiet.String(), "msg=command") {
		t.Errorf("commands logged with log_messages off")
	}
}

// TestCloseReasonsLogged: every client connection's open and close are
// logged, the close with why.
func TestCloseReasonsLogged(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 200
	cfg.ClientIdleTimeoutMS = 300
	var logs syncBuffer
	p := startProxy(t, cfg, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })

	quit := dial(t, p)
	expect(t, quit, "OK", "QUIT")
	expectEOF(t, quit)

	bad := dial(t, p)
	bad.WriteRaw([]byte("*1\r\n+x\r\n"))
	expectLine(t, bad, "-ERR Protocol error: expected '$', got '+'")
	expectEOF(t, bad)

	gone := dial(t, p)
	expect(t, gone, "PONG", "PING")
	gone.Close()

	idle := dial(t, p)
	expect(t, idle, "PONG", "PING")
	expectEOF(t, idle)

	slow := dial(t, p)
	expect(t, slow, "(error) ERR proxy: command exceeded read_time_limit_ms", "DEBUG", "SLEEP", "0.5")
	expectEOF(t, slow)

	want := []string{"reason=\"client quit\"", "reason=\"protocol error: Protocol error: expected '$', got '+'\"", "reason=\"client closed\"", "reason=\"idle timeout\"", "reason=\"time limit\""}
	waitFor(t, "the log line", func() bool {
		out := logs.String()
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return strings.Count(out, "msg=\"client connected\"") == 5
	})
}
