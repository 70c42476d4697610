package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireBinary skips (or, with CI=true, fails) like Start does, for tests
// that call StartServer themselves.
func requireBinary(t *testing.T) {
	t.Helper()
	if _, err := lookBinary(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPing(t *testing.T, c *Client) {
	t.Helper()
	v, err := c.Do("PING")
	if err != nil {
		t.Fatalf("PING: %v", err)
	}
	if have := v.String(); have != "PONG" {
		t.Fatalf("PING: have %s, want PONG", have)
	}
}

func refused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("dial %s: connected, want refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("dial %s: have %v, want connection refused", addr, err)
	}
	return nil
}

func TestStartServerStop(t *testing.T) {
	requireBinary(t)
	t.Parallel()
	var out strings.Builder
	s, err := StartServer(ctx10s(t), Options{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != "127.0.0.1:"+strconv.Itoa(s.Port) || s.Port == 0 {
		t.Errorf("Addr %q, Port %d", s.Addr, s.Port)
	}
	if fi, err := os.Stat(s.Dir); err != nil || !fi.IsDir() {
		t.Errorf("Dir %s: %v", s.Dir, err)
	}
	if s.PID() == 0 {
		t.Error("PID() = 0 while running")
	}
	c, err := Dial(s.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mustPing(t, c)
	c.Close()

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Exited():
	default:
		t.Error("Exited() not closed after Stop")
	}
	if s.PID() != 0 {
		t.Errorf("PID() = %d after Stop, want 0", s.PID())
	}
	if err := refused(s.Addr); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("own Dir after Stop: have %v, want it removed", err)
	}
	// idempotent
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := s.Kill(); err != nil {
		t.Errorf("Kill after Stop: %v", err)
	}
	if err := s.Signal(syscall.SIGCONT); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after Stop: have %v, want ErrProcessDone", err)
	}
	// Stop waited for the output reader: out is complete and ours now.
	if have := out.String(); !strings.Contains(have, readyLine) {
		t.Errorf("Stdout copy lacks the ready line:\n%s", have)
	}
}

func TestStartArgs(t *testing.T) {
	t.Parallel()
	s := Start(t, "--requirepass", "sekret")
	c := s.Client(t)
	v, err := c.Do("GET", "k")
	if err != nil {
		t.Fatal(err)
	}
	if have := v.String(); !strings.HasPrefix(have, "(error) NOAUTH") {
		t.Errorf("GET before AUTH: have %s, want (error) NOAUTH...", have)
	}
	if v, err := c.Do("AUTH", "sekret"); err != nil || v.String() != "OK" {
		t.Fatalf("AUTH: %v %v", v, err)
	}
	mustPing(t, c)
	if !strings.HasPrefix(s.Dir, os.TempDir()) {
		t.Errorf("Dir %s: want a test temp dir", s.Dir)
	}
	v, err = c.Do("CONFIG", "GET", "dir")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Elems) != 2 || v.Elems[1].Str != s.Dir {
		t.Errorf("CONFIG GET dir: have %s, want %s", v, s.Dir)
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	if v, err := c.Do("SET", "k", "v"); err != nil || v.String() != "OK" {
		t.Fatalf("SET: %v %v", v, err)
	}
	pid := s.PID()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("second Kill: %v", err)
	}
	if err := refused(s.Addr); err != nil {
		t.Fatal(err)
	}
	// the old connection is dead
	if _, err := c.Do("PING"); err == nil {
		t.Error("PING on a killed server's connection: have no error")
	}
	if _, err := os.Stat(s.Dir); err != nil {
		t.Errorf("Dir after Kill: %v, want it kept", err)
	}

	port := s.Port
	if err := s.Restart(ctx10s(t)); err != nil {
		t.Fatal(err)
	}
	if s.Port != port {
		t.Errorf("Port after Restart: have %d, want %d", s.Port, port)
	}
	if s.PID() == 0 || s.PID() == pid {
		t.Errorf("PID after Restart: have %d, old %d", s.PID(), pid)
	}
	// ready means accepting: no retry needed
	c2 := s.Client(t)
	v, err := c2.Do("GET", "k")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Null {
		t.Errorf("GET k after a restart without persistence: have %s, want (nil)", v)
	}

	// Restart of a running server stops it first.
	pid = s.PID()
	if err := s.Restart(ctx10s(t)); err != nil {
		t.Fatal(err)
	}
	if s.PID() == pid {
		t.Error("Restart of a running server kept its process")
	}
	mustPing(t, s.Client(t))
}

func TestSignalStopCont(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	mustPing(t, c)
	if err := s.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("PING"); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	// Nothing can be awaited for "no reply": a short deadline is the test.
	c.SetTimeout(200 * time.Millisecond)
	_, err := c.Receive()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Receive from a stopped server: have %v, want a timeout", err)
	}
	if err := s.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(DefaultTimeout)
	v, err := c.Receive()
	if err != nil || v.String() != "PONG" {
		t.Fatalf("Receive after SIGCONT: have %v %v, want PONG", v, err)
	}

	// Stop works on a stopped server too.
	if err := s.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// It handled SIGTERM (exit status 0) rather than needing SIGKILL.
	if st := s.run.p.State(); !st.Success() {
		t.Errorf("Stop of a SIGSTOPped server: %v, want exit status 0 (SIGTERM handled)", st)
	}
}

func TestExitedAfterShutdown(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	_ = c.Send("SHUTDOWN", "NOSAVE")
	_ = c.Flush()
	select {
	case <-s.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("Exited() not closed 10 s after SHUTDOWN")
	}
	if s.PID() != 0 {
		t.Errorf("PID() = %d after SHUTDOWN", s.PID())
	}
}

func TestStartServerPortInUse(t *testing.T) {
	requireBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port

	// A fixed port that is taken is an error naming the cause.
	_, err = StartServer(ctx10s(t), Options{Port: taken})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("StartServer on a taken port: have %v, want address already in use", err)
	}

	// A picked port that turns out taken is retried with another.
	picks := 0
	old := pickPort
	defer func() { pickPort = old }()
	pickPort = func() (int, error) {
		picks++
		if picks <= 2 {
			return taken, nil
		}
		return old()
	}
	s, err := StartServer(ctx10s(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if picks != 3 || s.Port == taken {
		t.Errorf("picks %d, port %d (taken %d): want 3 picks and another port", picks, s.Port, taken)
	}
	c, err := Dial(s.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustPing(t, c)
}

func TestStartServerFailureShowsOutput(t *testing.T) {
	requireBinary(t)
	t.Parallel()
	dir := t.TempDir()
	_, err := StartServer(ctx10s(t), Options{Dir: dir, Args: []string{"--no-such-directive", "1"}})
	if err == nil {
		t.Fatal("StartServer with a bad directive: have nil error")
	}
	if !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "no-such-directive") {
		t.Errorf("error lacks the reason and redis-server's output:\n%v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("a caller's Dir must be kept: %v", err)
	}
}

// TestStartServerNotReady: a "server" that never logs the ready line is
// killed when ctx ends, and the error carries its output. ctx is cancelled
// when the output has been seen, so nothing depends on timing. (Not
// parallel: it writes an executable, which must not race with forks
// elsewhere in the test binary.)
func TestStartServerNotReady(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fake-redis-server")
	script := "#!/bin/sh\necho fake starting\nexec sleep 60\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := StartServer(ctx, Options{Binary: bin, Stdout: cancelOn{"fake starting", cancel}})
	if err == nil {
		t.Fatal("have nil error")
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "fake starting") {
		t.Errorf("have %v, want the cancellation and the output", err)
	}
	// returned once killed, not when the fake's sleep ended
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("StartServer returned after %v", d)
	}
}

// cancelOn calls cancel when a line containing s is written.
type cancelOn struct {
	s      string
	cancel context.CancelFunc
}

func (c cancelOn) Write(b []byte) (int, error) {
	if strings.Contains(string(b), c.s) {
		c.cancel()
	}
	return len(b), nil
}

func TestStartServerNoBinary(t *testing.T) {
	_, err := StartServer(context.Background(), Options{Binary: "/nonexistent/redis-server"})
	if !errors.Is(err, ErrNotInstalled) {
		t.Errorf("have %v, want ErrNotInstalled", err)
	}
}

// fakeTB records what Start does when redis-server is missing.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestStartMissingBinary: without redis-server, Start skips, except with
// CI=true, where it fails the test: CI must never silently skip.
func TestStartMissingBinary(t *testing.T) {
	t.Setenv("REDIS_SERVER", "/nonexistent/redis-server")
	for _, ci := range []string{"", "false", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Start(f)
			t.Errorf("CI=%q: Start returned without redis-server", ci)
		}()
		<-done
		if ci == "true" {
			if f.fatal == "" || f.skip != "" {
				t.Errorf("CI=true: fatal %q, skip %q: want a failure, not a skip", f.fatal, f.skip)
			}
		} else if f.skip == "" || f.fatal != "" {
			t.Errorf("CI=%q: fatal %q, skip %q: want a skip", ci, f.fatal, f.skip)
		}
	}
}

func TestFreeAddr(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("FreeAddr() = %q, %v", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on FreeAddr's %s: %v", addr, err)
	}
	ln.Close()
}
