package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

// waitTimeout bounds every wait for the process under test.
const waitTimeout = 15 * time.Second

// buildBinary builds redis-proxy once per test run (with -race when the
// tests run with it), into a directory removed at the end of the run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "redis-proxy-test-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "redis-proxy")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// runBinary runs redis-proxy to completion (within waitTimeout) and returns
// what it printed and its exit code.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = childEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		code = exitErr.ExitCode()
	default:
		t.Fatalf("redis-proxy %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, &out, &errOut)
	}
	return out.String(), errOut.String(), code
}

// childEnv is the environment of the process under test: ours, with the
// race detector's one-second pause at exit shortened (it only lets other
// goroutines report; a race found still makes the exit code 66 and writes
// to stderr, which the tests check).
func childEnv() []string {
	env := os.Environ()
	if raceEnabled {
		env = append(env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=50"))
	}
	return env
}

// stream collects a process's output line by line and lets a test wait
// for a line.
type stream struct {
	mu     sync.Mutex
	lines  []string
	eof    bool
	notify chan struct{} // closed and replaced at every new line and at EOF
}

func newStream() *stream { return &stream{notify: make(chan struct{})} }

func (s *stream) read(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		close(s.notify)
		s.notify = make(chan struct{})
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.eof = true
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
}

// Lines returns every line read so far.
func (s *stream) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *stream) String() string { return strings.Join(s.Lines(), "\n") }

// next waits for the first line at index from or after that matches, and
// returns it with its index; ok is false at EOF or after timeout.
func (s *stream) next(from int, timeout time.Duration, match func(string) bool) (line string, i int, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i := from; ; {
		s.mu.Lock()
		for ; i < len(s.lines); i++ {
			if match(s.lines[i]) {
				line := s.lines[i]
				s.mu.Unlock()
				return line, i, true
			}
		}
		eof, notify := s.eof, s.notify
		s.mu.Unlock()
		if eof {
			return "", i, false
		}
		select {
		case <-notify:
		case <-deadline.C:
			return "", i, false
		}
	}
}

// proc is redis-proxy running as a child process. Only this process is
// ever signalled, by its PID.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *stream
	exited         chan struct{}
	code           int
	logs           *stream // the stream --log-output chose
}

// startProc starts redis-proxy with args; it is killed at the test's
// cleanup if still running.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = childEnv()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, stdout: newStream(), stderr: newStream(), exited: make(chan struct{})}
	p.logs = p.stderr
	for i, a := range args {
		if strings.TrimLeft(a, "-") == "log-output" && i+1 < len(args) && args[i+1] == "stdout" || strings.TrimLeft(a, "-") == "log-output=stdout" {
			p.logs = p.stdout
		}
	}
	go p.stdout.read(outR)
	go p.stderr.read(errR)
	go func() {
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(waitTimeout):
			t.Errorf("redis-proxy pid %d: not reaped after SIGKILL", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("redis-proxy stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// wait waits for the process to exit and its output to end, and returns
// the exit code; past waitTimeout it kills the process and fails.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(waitTimeout):
		p.cmd.Process.Kill()
		p.t.Fatalf("redis-proxy did not exit within %v\nstdout:\n%s\nstderr:\n%s", waitTimeout, p.stdout, p.stderr)
	}
	for _, s := range []*stream{p.stdout, p.stderr} {
		if _, _, ok := s.next(0, waitTimeout, func(string) bool { return false }); !ok && !s.atEOF() {
			p.t.Fatalf("redis-proxy output did not end within %v", waitTimeout)
		}
	}
	return p.code
}

func (s *stream) atEOF() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eof
}

// stop sends SIGTERM and requires exit code 0.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		p.t.Fatalf("exit code after SIGTERM: have %d, want 0\nstdout:\n%s\nstderr:\n%s", code, p.stdout, p.stderr)
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
func (p *proc) waitLog(from int, msg string) (string, int) {
	p.t.Helper()
	line, i, ok := p.logs.next(from, waitTimeout, msgIs(msg))
	if !ok {
		p.t.Fatalf("no log line %q (from line %d) within %v; exited: %v\nstdout:\n%s\nstderr:\n%s",
			msg, from, waitTimeout, p.hasExited(), p.stdout, p.stderr)
	}
	return line, i
}

// waitEntry is waitLog for structured logs.
func (p *proc) waitEntry(from int, msg string) (logEntry, int) {
	p.t.Helper()
	line, i := p.waitLog(from, msg)
	e, err := parseEntry(line)
	if err != nil {
		p.t.Fatalf("log line %q: %v", line, err)
	}
	return e, i
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
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
	*proc
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
		p := startProc(t, append([]string{"-f", path}, flags...)...)
		line, _, ok := p.logs.next(0, waitTimeout, msgIs("started"))
		if ok {
			return &running{proc: p, cfgPath: path, cfg: cfg, started: line, listen: cfg.Listen.Addr, admin: cfg.Admin.Addr}
		}
		code := p.wait()
		if attempt < 3 && code == exitFailure && strings.Contains(p.logs.String(), "address already in use") {
			cfg.Listen.Addr, cfg.Admin.Addr = freeAddr(t), freeAddr(t)
			continue
		}
		t.Fatalf("redis-proxy did not start (exit code %d)\nstdout:\n%s\nstderr:\n%s", code, p.stdout, p.stderr)
	}
}
