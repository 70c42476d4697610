package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/proc"
	"redis-proxy/internal/redistest"
)

// waitTimeout bounds every wait for the process under test.
const waitTimeout = 15 * time.Second

// proxyBinary is the redis-proxy the tests drive: built once per test
// run, with -race when the tests run with it.
var proxyBinary proc.TestBinary

func TestMain(m *testing.M) {
	code := m.Run()
	proxyBinary.Remove()
	os.Exit(code)
}

func binary(t *testing.T) string { return proxyBinary.Path(t) }

// runBinary runs redis-proxy to completion (within waitTimeout) and returns
// what it printed and its exit code.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runProgram(t, binary(t), args...)
}

// runProgram is runBinary for the redis-proxy binary bin.
func runProgram(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	c := startChild(t, bin, args...)
	code = c.wait()
	return c.stdout.Text(), c.stderr.Text(), code
}

// childEnv is added to the environment of the process under test: the
// race detector's one-second pause at exit shortened (it only lets other
// goroutines report; a race found still makes the exit code 66 and writes
// to stderr, which the tests check).
func childEnv() []string {
	if !proc.Race {
		return nil
	}
	return []string{"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=50")}
}

// child is redis-proxy running as a child process. Only this process is
// ever signalled, by its PID.
type child struct {
	t              *testing.T
	p              *proc.Process
	stdout, stderr *proc.Output
	logs           *proc.Output // the stream --log-output chose
}

// startChild starts the redis-proxy binary bin with args; it is killed at
// the test's cleanup if still running.
func startChild(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	c := &child{t: t, stdout: new(proc.Output), stderr: new(proc.Output)}
	c.logs = c.stderr
	for i, a := range args {
		if strings.TrimLeft(a, "-") == "log-output" && i+1 < len(args) && args[i+1] == "stdout" || strings.TrimLeft(a, "-") == "log-output=stdout" {
			c.logs = c.stdout
		}
	}
	p, err := proc.Start(bin, args, proc.Options{Env: childEnv(), Stdout: c.stdout, Stderr: c.stderr})
	if err != nil {
		t.Fatal(err)
	}
	c.p = p
	t.Cleanup(func() {
		if p.Exited() {
			return
		}
		p.Kill()
		if t.Failed() {
			t.Logf("redis-proxy stdout:\n%s\nstderr:\n%s", c.stdout, c.stderr)
		}
	})
	return c
}

func (c *child) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.p.Signal(sig); err != nil {
		c.t.Fatal(err)
	}
}

// wait waits for the process to exit and its output to end, and returns
// the exit code; past waitTimeout it kills the process and fails.
func (c *child) wait() int {
	c.t.Helper()
	if !c.p.Wait(waitTimeout) {
		c.p.Kill()
		c.t.Fatalf("redis-proxy did not exit within %v\nstdout:\n%s\nstderr:\n%s", waitTimeout, c.stdout, c.stderr)
	}
	return c.p.ExitCode()
}

// stop sends SIGTERM and requires exit code 0.
func (c *child) stop() {
	c.t.Helper()
	c.signal(syscall.SIGTERM)
	if code := c.wait(); code != 0 {
		c.t.Fatalf("exit code after SIGTERM: have %d, want 0\nstdout:\n%s\nstderr:\n%s", code, c.stdout, c.stderr)
	}
}

// logEntry is one structured log line.
type logEntry map[string]any

func (e logEntry) str(key string) string {
	s, _ := e[key].(string)
	return s
}

func (e logEntry) num(key string) float64 {
	n, _ := e[key].(float64)
	return n
}

func parseEntry(line string) (logEntry, error) {
	var e logEntry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return nil, err
	}
	return e, nil
}

// msgIs matches a structured line whose msg is msg, or a text line that
// carries msg.
func msgIs(msg string) func(string) bool {
	return func(line string) bool {
		if e, err := parseEntry(line); err == nil {
			return e.str("msg") == msg
		}
		return strings.Contains(line, " "+msg+" ") || strings.HasSuffix(line, " "+msg)
	}
}

// waitLog waits for the first log line from index from on whose msg is
// msg and returns it with its index, or fails.
func (c *child) waitLog(from int, msg string) (string, int) {
	c.t.Helper()
	line, i, ok := c.logs.Next(from, waitTimeout, msgIs(msg))
	if !ok {
		c.t.Fatalf("no log line %q (from line %d) within %v; exited: %v\nstdout:\n%s\nstderr:\n%s",
			msg, from, waitTimeout, c.p.Exited(), c.stdout, c.stderr)
	}
	return line, i
}

// waitEntry is waitLog for structured logs.
func (c *child) waitEntry(from int, msg string) (logEntry, int) {
	c.t.Helper()
	line, i := c.waitLog(from, msg)
	e, err := parseEntry(line)
	if err != nil {
		c.t.Fatalf("log line %q: %v", line, err)
	}
	return e, i
}

// newConfig is a configuration for uplink with free loopback ports for the
// listeners.
func newConfig(t *testing.T, uplink string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Uplink.Addr = uplink
	cfg.Listen.Addr = freeAddr(t)
	cfg.Admin.Addr = freeAddr(t)
	return cfg
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := redistest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// writeConfig writes cfg as JSON to path.
func writeConfig(t *testing.T, path string, cfg *config.Config) {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// running is a started proxy.
type running struct {
	*child
	cfgPath string
	cfg     *config.Config
	started string // the "started" log line
	listen  string // the client address
	admin   string // the admin address
}

// startProxy writes cfg into a temporary file and runs redis-proxy -f on it
// with flags, until the "started" line. The listener ports are picked
// free beforehand; should another process take one in between, it tries
// again with new ones.
func startProxy(t *testing.T, cfg *config.Config, flags ...string) *running {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	for attempt := 1; ; attempt++ {
		writeConfig(t, path, cfg)
		c := startChild(t, binary(t), append([]string{"-f", path}, flags...)...)
		line, _, ok := c.logs.Next(0, waitTimeout, msgIs("started"))
		if ok {
			return &running{child: c, cfgPath: path, cfg: cfg, started: line, listen: cfg.Listen.Addr, admin: cfg.Admin.Addr}
		}
		code := c.wait()
		if attempt < 3 && code == exitFailure && strings.Contains(c.logs.String(), "address already in use") {
			cfg.Listen.Addr, cfg.Admin.Addr = freeAddr(t), freeAddr(t)
			continue
		}
		t.Fatalf("redis-proxy did not start (exit code %d)\nstdout:\n%s\nstderr:\n%s", code, c.stdout, c.stderr)
	}
}
