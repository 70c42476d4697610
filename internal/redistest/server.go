package redistest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"redis-proxy/internal/proc"
)

// ErrNotInstalled is returned (wrapped) by StartServer when the redis-server
// binary cannot be found or run.
var ErrNotInstalled = errors.New("redistest: redis-server not found")

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("address already in use")

const (
	// readyLine is what redis-server logs once it accepts connections
	// (7.0: "Ready to accept connections", 7.2: "... connections tcp").
	readyLine = "Ready to accept connections"
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// tailLines is how many output lines are kept for error messages.
	tailLines = 30
	// portAttempts is how many ports StartServer tries when it picks them.
	portAttempts = 5
)

// Options configure StartServer. The zero value is usable.
type Options struct {
	// Binary is the redis-server to run. Default: $REDIS_SERVER, else
	// "redis-server" from PATH.
	Binary string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one (and retries
	// with another if redis-server then finds it taken).
	Port int
	// Args are extra redis-server arguments, after the fixed ones, e.g.
	// "--requirepass", "x", "--enable-debug-command", "yes".
	Args []string
	// Dir is the server's working directory (--dir). Default: a new
	// temporary directory, removed by Stop.
	Dir string
	// Stdout, if set, receives a copy of the server's output (stdout and
	// stderr), line by line, from another goroutine; writes end before
	// Stop or Kill returns (and start again with Restart).
	Stdout io.Writer
}

// Server is a redis-server process started by StartServer. Its methods are
// safe for concurrent use.
type Server struct {
	Addr string // "127.0.0.1:<Port>"
	Port int
	Dir  string

	binary string
	args   []string
	stdout io.Writer
	ownDir bool

	mu  sync.Mutex // serialises Stop, Kill, Restart; guards run
	run *run       // the latest process started; nil before the first
}

// run is one run of redis-server.
type run struct {
	p     *proc.Process
	out   *proc.Output  // its last lines (stdout and stderr)
	ready chan struct{} // closed when the ready line was seen
}

// pickPort returns a free loopback port; tests replace it.
var pickPort = func() (int, error) {
	addr, err := FreeAddr()
	if err != nil {
		return 0, err
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// FreeAddr returns "127.0.0.1:<port>" for a port that was free a moment
// ago: it listens on port 0, notes the port and closes. Someone else may
// take it before the caller does; StartServer retries for that reason.
// It never returns a port it returned before in this process, so two
// calls in a row (a listener and an admin address) never give the same.
func FreeAddr() (string, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("redistest: free port: %w", err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			return "", fmt.Errorf("redistest: free port: %w", err)
		}
		given.Lock()
		seen := given.addrs[addr]
		given.addrs[addr] = true
		given.Unlock()
		if !seen {
			return addr, nil
		}
	}
	return "", fmt.Errorf("redistest: free port: 100 ports in a row were given out before")
}

// given is every address FreeAddr returned.
var given = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// lookBinary resolves the redis-server binary (see Options.Binary).
func lookBinary(bin string) (string, error) {
	if bin == "" {
		bin = os.Getenv("REDIS_SERVER")
	}
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	return path, nil
}

// StartServer starts redis-server on 127.0.0.1 and returns once it logged
// that it accepts connections, or with an error (including the last lines
// of its output) when it exits first or ctx ends first. The server always
// runs with --bind 127.0.0.1 --save "" --appendonly no --daemonize no and
// logs to its stdout; opts.Args come after those. Call Stop when done.
func StartServer(ctx context.Context, opts Options) (*Server, error) {
	bin, err := lookBinary(opts.Binary)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Dir:    opts.Dir,
		binary: bin,
		args:   append([]string(nil), opts.Args...),
		stdout: opts.Stdout,
	}
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		s.Dir, s.ownDir = d, true
	}
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = pickPort(); err != nil {
				s.removeDir()
				return nil, err
			}
		}
		r, err := s.start(ctx, port)
		if err == nil {
			s.Port, s.Addr, s.run = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), r
			return s, nil
		}
		if opts.Port != 0 || attempt >= portAttempts || !errors.Is(err, errAddrInUse) {
			s.removeDir()
			return nil, err
		}
	}
}

// start runs one redis-server process on port and awaits its readiness.
func (s *Server) start(ctx context.Context, port int) (*run, error) {
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--dir", s.Dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	args = append(args, s.args...)
	r := &run{ready: make(chan struct{})}
	seen := false // by OnLine's goroutine only
	r.out = &proc.Output{Keep: tailLines, OnLine: func(line string) {
		if s.stdout != nil {
			_, _ = io.WriteString(s.stdout, line+"\n")
		}
		if !seen && strings.Contains(line, readyLine) {
			seen = true
			close(r.ready)
		}
	}}
	p, err := proc.Start(s.binary, args, proc.Options{Stdout: r.out, Stderr: r.out})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	r.p = p
	select {
	case <-r.ready:
		return r, nil
	case <-p.Done():
		out := r.out.String()
		if strings.Contains(out, "Address already in use") {
			return nil, fmt.Errorf("redistest: redis-server port %d: %w; output:\n%s", port, errAddrInUse, out)
		}
		return nil, fmt.Errorf("redistest: redis-server on port %d exited before it was ready (%v); output:\n%s",
			port, p.State(), out)
	case <-ctx.Done():
		p.Kill()
		return nil, fmt.Errorf("redistest: redis-server on port %d not ready: %w; output:\n%s", port, ctx.Err(), r.out.String())
	}
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited after
// 5 s, and waits until the process is reaped. It then removes Dir if
// StartServer created it (Restart creates it again). Stop is idempotent
// and fine to call after Kill or after the server exited by itself.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run != nil {
		s.run.p.Stop(stopGrace)
	}
	return s.removeDir()
}

// Kill sends SIGKILL and waits until the process is reaped, as a crash
// would end it. Dir is kept. Kill is idempotent.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run != nil {
		s.run.p.Kill()
	}
	return nil
}

// Signal sends sig (e.g. syscall.SIGSTOP, syscall.SIGCONT) to the running
// server process. It fails with os.ErrProcessDone if it is not running.
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == nil {
		return fmt.Errorf("redistest: signal %v: %w", sig, os.ErrProcessDone)
	}
	if err := s.run.p.Signal(sig); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	return nil
}

// Restart starts redis-server again on the same port and Dir and returns
// once it is ready, or with an error when ctx ends first. A server still
// running is stopped first (as by Stop, but Dir is kept).
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run != nil {
		s.run.p.Stop(stopGrace)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	r, err := s.start(ctx, s.Port)
	if err != nil {
		return err
	}
	s.run = r
	return nil
}

// PID is the process id of the running server, or 0 when it is not
// running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == nil || s.run.p.Exited() {
		return 0
	}
	return s.run.p.PID()
}

// Exited returns a channel closed when the current server process has
// exited and been reaped (e.g. after SHUTDOWN sent by a client).
func (s *Server) Exited() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.run.p.Done()
}

// Output returns the last lines the current server process wrote.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == nil {
		return ""
	}
	return s.run.out.String()
}

// Client dials the server (see MustDial); the client is closed at the
// test's cleanup.
func (s *Server) Client(tb testing.TB) *Client {
	tb.Helper()
	return MustDial(tb, s.Addr)
}

func (s *Server) removeDir() error {
	if !s.ownDir {
		return nil
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	return nil
}

// Start starts a redis-server for a test, with args added to its command
// line, within 10 s, and stops it at the test's cleanup (logging its last
// output lines if the test failed). Its Dir is a tb.TempDir().
//
// When redis-server is not installed, Start skips the test, unless the
// environment variable CI is "true": then it is a test failure (Fatalf),
// never a skip.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	if _, err := lookBinary(""); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%v (CI=true: a missing redis-server fails the test)", err)
			return nil
		}
		tb.Skipf("%v (install redis-server or set REDIS_SERVER; with CI=true this fails)", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := StartServer(ctx, Options{Args: args, Dir: tb.TempDir()})
	if err != nil {
		tb.Fatalf("%v", err)
		return nil
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("redis-server %s, last output:\n%s", s.Addr, s.Output())
		}
		if err := s.Stop(); err != nil {
			tb.Errorf("stop redis-server %s: %v", s.Addr, err)
		}
	})
	return s
}
