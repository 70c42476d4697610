package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"redis-proxy/internal/proc"
	"redis-proxy/internal/redistest"
)

func TestVersion(t *testing.T) {
	for _, flag := range []string{"-version", "--version"} {
		stdout, stderr, code := runBinary(t, flag)
		if code != 0 || stderr != "" || !regexp.MustCompile(`^redis-proxy \S+\n$`).MatchString(stdout) {
			t.Errorf("redis-proxy %s: have code %d, stdout %q, stderr %q; want 0, \"redis-proxy <version>\\n\", \"\"", flag, code, stdout, stderr)
		}
	}
}

// TestVersionStamped: a binary built as the README says, with
// -ldflags "-X main.version=...", prints that version (whether or not Go
// stamped VCS information into it).
func TestVersionStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds another binary")
	}
	const v = "v1.4.0-3-g7eb6253-dirty" // what git describe --always --dirty gives
	bin := filepath.Join(t.TempDir(), "redis-proxy")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := proc.Build(ctx, bin, "-ldflags", "-X main.version="+v); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runProgram(t, bin, "-version")
	if want := "redis-proxy " + v + "\n"; code != 0 || stdout != want || stderr != "" {
		t.Errorf("-version: have code %d, stdout %q, stderr %q; want 0, %q, nothing", code, stdout, stderr, want)
	}
}

func TestBadFlags(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	writeConfig(t, cfg, newConfig(t, "127.0.0.1:6379"))
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-f", cfg, "--log-format", "xml"}, `invalid value "xml" for flag -log-format: must be text or structured`},
		{[]string{"-f", cfg, "--log-output=file"}, `invalid value "file" for flag -log-output: must be stderr or stdout`},
		{[]string{"-f", cfg, "-log-level", "verbose"}, `invalid value "verbose" for flag -log-level: must be debug or info or warn or error`},
		{[]string{}, "flag -f is required"},
		{[]string{"-t"}, "flag -f is required"},
		{[]string{"--log-format", "structured"}, "flag -f is required"},
		{[]string{"-f", cfg, "extra"}, `unexpected argument "extra"`},
		{[]string{"-f"}, "flag needs an argument: -f"},
	}
	for _, tt := range tests {
		stdout, stderr, code := runBinary(t, tt.args...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) || stdout != "" {
			t.Errorf("redis-proxy %q: have code %d, stderr %q, stdout %q; want code 2, stderr with %q, no stdout",
				tt.args, code, stderr, stdout, tt.want)
		}
		if !strings.Contains(stderr, "usage:") {
			t.Errorf("redis-proxy %q: no usage on stderr: %q", tt.args, stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	stdout, stderr, code := runBinary(t, "-h")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "-log-format") {
		t.Errorf("redis-proxy -h: have code %d, stdout %q, stderr %q; want 0, the usage on stderr", code, stdout, stderr)
	}
}

// badConfig has two problems: an unknown key and a value of the wrong type.
const badConfig = `{
  "uplink": {"addr": "127.0.0.1:6379", "adr": "x"},
  "listen": {"addr": "127.0.0.1:7010"},
  "admin": {"addr": "127.0.0.1:7012"},
  "max_clients": "many"
}`

func TestBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	writeFile(t, path, badConfig)
	want := []string{
		path + ": uplink.adr: unknown key",
		path + ": max_clients: must be a number, not a string",
	}

	t.Run("text", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, "-f", path)
		if code != exitFailure || stdout != "" {
			t.Fatalf("have code %d, stdout %q; want 1, nothing on stdout", code, stdout)
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, stderr)
			}
		}
	})
	t.Run("structured", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, "-f", path, "--log-format", "structured", "--log-output", "stdout")
		if code != exitFailure || stderr != "" {
			t.Fatalf("have code %d, stderr %q; want 1, nothing on stderr", code, stderr)
		}
		var errs []string
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			e := mustEntry(t, line)
			if e.str("level") != "ERROR" {
				t.Errorf("level: have %q, want ERROR: %s", e.str("level"), line)
			}
			errs = append(errs, e.str("err"))
		}
		if fmt.Sprint(errs) != fmt.Sprint(want) {
			t.Errorf("err fields:\nhave %q\nwant %q", errs, want)
		}
	})
	t.Run("check", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, "-f", path, "-t")
		if have := strings.Split(strings.TrimSpace(stderr), "\n"); code != exitFailure || stdout != "" || fmt.Sprint(have) != fmt.Sprint(want) {
			t.Errorf("-t: have code %d, stdout %q, stderr lines %q; want 1, nothing, %q", code, stdout, have, want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.json")
		_, stderr, code := runBinary(t, "-f", missing)
		if code != exitFailure || !strings.Contains(stderr, "no such file or directory") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("have code %d, stderr %q; want 1 and the reason on one line", code, stderr)
		}
	})
}

// TestCheck covers -t against a real Redis: a good config, a wrong uplink
// password, an uplink that is down.
func TestCheck(t *testing.T) {
	const pass = "uplink-secret-1"
	srv := redistest.Start(t, "--requirepass", pass)
	dir := t.TempDir()

	cfg := newConfig(t, srv.Addr)
	cfg.Uplink.Pass = pass
	good := filepath.Join(dir, "good.json")
	writeConfig(t, good, cfg)
	stdout, stderr, code := runBinary(t, "-f", good, "-t")
	if code != 0 || stdout != "config ok\n" || stderr != "" {
		t.Errorf("good config: have code %d, stdout %q, stderr %q; want 0, \"config ok\\n\", \"\"", code, stdout, stderr)
	}

	cfg.Uplink.Pass = "not-the-password"
	wrongPass := filepath.Join(dir, "wrongpass.json")
	writeConfig(t, wrongPass, cfg)
	stdout, stderr, code = runBinary(t, "-f", wrongPass, "-t")
	if code != exitFailure || stdout != "" || !strings.Contains(stderr, "WRONGPASS") || !strings.HasPrefix(stderr, wrongPass+": ") {
		t.Errorf("wrong password: have code %d, stdout %q, stderr %q; want 1, the file and WRONGPASS on stderr", code, stdout, stderr)
	}
	if strings.Contains(stderr, "not-the-password") {
		t.Errorf("wrong password: the password is in the output: %q", stderr)
	}

	cfg = newConfig(t, freeAddr(t)) // nothing listens there
	down := filepath.Join(dir, "down.json")
	writeConfig(t, down, cfg)
	stdout, stderr, code = runBinary(t, "-f", down, "-t")
	if code != exitFailure || stdout != "" || !strings.Contains(stderr, "connection refused") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("uplink down: have code %d, stdout %q, stderr %q; want 1, one line with \"connection refused\"", code, stdout, stderr)
	}
}

func mustEntry(t *testing.T, line string) logEntry {
	t.Helper()
	e, err := parseEntry(line)
	if err != nil {
		t.Fatalf("not a JSON log line: %q: %v", line, err)
	}
	for _, k := range []string{"time", "level", "msg"} {
		if e.str(k) == "" {
			t.Errorf("log line without %q: %s", k, line)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, e.str("time")); err != nil {
		t.Errorf("log line time %q: %v", e.str("time"), err)
	}
	return e
}

// traffic connects to the proxy, sends PING, a wrong AUTH, the right AUTH
// and GET, disconnects, and waits until the proxy logged the disconnect.
func traffic(t *testing.T, r *running, pass string) {
	t.Helper()
	from := len(r.logs.Lines())
	c := redistest.MustDial(t, r.listen)
	want := []struct {
		args []any
		want string
	}{
		{[]any{"PING"}, "(error) NOAUTH Authentication required."},
		{[]any{"AUTH", "wrong-password"}, "(error) WRONGPASS invalid username-password pair or user is disabled."},
		{[]any{"AUTH", pass}, "OK"},
		{[]any{"PING"}, "PONG"},
	}
	for _, w := range want {
		v, err := c.Do(w.args...)
		if err != nil {
			t.Fatalf("%v: %v", w.args[0], err)
		}
		if v.String() != w.want {
			t.Errorf("%v: have %q, want %q", w.args[0], v.String(), w.want)
		}
	}
	c.Close()
	r.waitLog(from, "client disconnected")
}

// TestLogOutput checks that every line on the chosen output is a log line
// of the chosen format, and that nothing at all goes to the other.
func TestLogOutput(t *testing.T) {
	srv := redistest.Start(t)
	textLine := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) (DEBUG|INFO|WARN|ERROR) +\S`)
	for _, tt := range []struct {
		name  string
		flags []string
	}{
		{"structured stdout", []string{"--log-format", "structured", "--log-output", "stdout"}},
		{"structured stderr", []string{"-log-format=structured", "-log-output=stderr"}},
		{"text stdout", []string{"--log-output", "stdout"}},
		{"text stderr", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newConfig(t, srv.Addr)
			cfg.Listen.Pass = "listen-pw"
			r := startProxy(t, cfg, append(tt.flags, "--log-level", "debug")...)
			traffic(t, r, "listen-pw")
			r.stop()

			other := r.stdout
			if r.logs == r.stdout {
				other = r.stderr
			}
			if lines := other.Lines(); len(lines) > 0 {
				t.Errorf("the other output is not empty: %q", lines)
			}
			lines := r.logs.Lines()
			if len(lines) < 6 {
				t.Fatalf("only %d log lines:\n%s", len(lines), r.logs)
			}
			msgs := map[string]bool{}
			for _, line := range lines {
				if strings.Contains(tt.name, "structured") {
					msgs[mustEntry(t, line).str("msg")] = true
					continue
				}
				if !textLine.MatchString(line) {
					t.Errorf("not a text log line: %q", line)
				}
				if strings.Contains(line, "\x1b") {
					t.Errorf("colour in a pipe: %q", line)
				}
			}
			if strings.Contains(tt.name, "structured") {
				for _, m := range []string{"started", "client connected", "client disconnected", "stopping", "stopped"} {
					if !msgs[m] {
						t.Errorf("no %q line in:\n%s", m, r.logs)
					}
				}
			}
		})
	}
}

// wantProcs is the GOMAXPROCS the proxy takes (procs.go): the
// environment's, else half the runtime's default, at least one.
func wantProcs() int {
	if v, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && v > 0 {
		return v
	}
	return max(1, defaultProcs/2)
}

// defaultProcs is the runtime's own GOMAXPROCS, before any in-process run
// sets it.
var defaultProcs = runtime.GOMAXPROCS(0)

// TestStartupLine checks the start-up line's fields and the start-up time.
// The uplink accepts connections but never answers: neither start-up nor
// the stop may wait for it.
func TestStartupLine(t *testing.T) {
	cfg := newConfig(t, silentServer(t))
	binary(t) // built beforehand, not timed
	begin := time.Now()
	r := startProxy(t, cfg, "--log-format", "structured")
	wall := time.Since(begin)
	e := mustEntry(t, r.started)
	for k, want := range map[string]any{
		"listen":     cfg.Listen.Addr,
		"admin":      cfg.Admin.Addr,
		"uplink":     cfg.Uplink.Addr,
		"uplink_tls": false,
		"config":     r.cfgPath,
		"version":    versionStringOf(t),
		"pid":        float64(r.p.PID()),
		"level":      "INFO",
		"gomaxprocs": float64(wantProcs()),
	} {
		if e[k] != want {
			t.Errorf("started line: %s: have %v, want %v", k, e[k], want)
		}
	}
	ms, ok := e["startup_ms"].(float64)
	if !ok || ms < 0 || ms >= 100 {
		t.Errorf("startup_ms: have %v, want a number < 100 (< 50 without -race)", e["startup_ms"])
	}
	t.Logf("startup_ms %.3f; from exec to the started line %v (race: %v)", ms, wall, proc.Race)
	// The admin server answers at once.
	res, err := http.Get("http://" + r.admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("/healthz: have %d, want 200", res.StatusCode)
	}
	stop := time.Now()
	r.stop()
	if d := time.Since(stop); d > 2*time.Second {
		t.Errorf("the stop took %v: it waited for the uplink check", d)
	}
}

// silentServer listens on a loopback port, accepts connections and never
// answers; it returns the address.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// versionStringOf is what the binary under test prints for -version.
func versionStringOf(t *testing.T) string {
	stdout, _, _ := runBinary(t, "-version")
	return strings.TrimSpace(strings.TrimPrefix(stdout, "redis-proxy "))
}

func TestStartupFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, taken := range []string{"listen", "admin"} {
		cfg := newConfig(t, "127.0.0.1:6379")
		if taken == "listen" {
			cfg.Listen.Addr = ln.Addr().String()
		} else {
			cfg.Admin.Addr = ln.Addr().String()
		}
		path := filepath.Join(t.TempDir(), "config.json")
		writeConfig(t, path, cfg)
		stdout, stderr, code := runBinary(t, "-f", path, "--log-format", "structured", "--log-output", "stdout")
		if code != exitFailure || stderr != "" {
			t.Fatalf("%s address taken: have code %d, stderr %q; want 1, nothing", taken, code, stderr)
		}
		var found bool
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			e := mustEntry(t, line)
			if e.str("msg") == "cannot start" && strings.Contains(e.str("err"), "address already in use") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s address taken: no \"cannot start\" line with the reason:\n%s", taken, stdout)
		}
	}
}

// TestNoSecretsInLogs sets every password, logs every message at debug
// level, and checks that no password appears anywhere in the output after
// AUTH, HELLO AUTH, wrong AUTHs, admin requests and a reload that changes
// the uplink password.
func TestNoSecretsInLogs(t *testing.T) {
	const (
		listenPass    = "Listen-Secret-7f3a"
		uplinkPass    = "Uplink-Secret-91bc"
		newUplinkPass = "Uplink-Secret-Rotated-5d2e"
		adminPass     = "Admin-Secret-c0de"
		wrongPass     = "Wrong-Guess-0a1b"
	)
	secrets := []string{listenPass, uplinkPass, newUplinkPass, adminPass, wrongPass}
	for _, format := range []string{"text", "structured"} {
		t.Run(format, func(t *testing.T) {
			srv := redistest.Start(t, "--requirepass", uplinkPass)
			cfg := newConfig(t, srv.Addr)
			cfg.Listen.Pass = listenPass
			cfg.Uplink.Pass = uplinkPass
			cfg.Admin.User, cfg.Admin.Pass = "ops", adminPass
			cfg.LogMessages = true
			r := startProxy(t, cfg, "--log-format", format, "--log-level", "debug")

			c := redistest.MustDial(t, r.listen)
			for _, cmd := range []struct {
				args []any
				want string // prefix of the rendered reply
			}{
				{[]any{"AUTH", wrongPass}, "(error) WRONGPASS"},
				{[]any{"AUTH", uplinkPass}, "(error) WRONGPASS"},
				{[]any{"AUTH", "default", adminPass}, "(error) WRONGPASS"},
				{[]any{"AUTH", listenPass}, "OK"},
				{[]any{"HELLO", "3", "AUTH", "default", listenPass}, "1# "},
				{[]any{"HELLO", "2", "AUTH", "default", wrongPass}, "(error) WRONGPASS"},
				{[]any{"SET", "k", "v"}, "OK"},
				{[]any{"GET", "k"}, `"v"`},
			} {
				v, err := c.Do(cmd.args...)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(v.String(), cmd.want) {
					t.Errorf("%v: have %q, want %q...", cmd.args[0], v.String(), cmd.want)
				}
			}
			for _, auth := range [][2]string{{"ops", adminPass}, {"ops", wrongPass}, {"ops", listenPass}} {
				req, _ := http.NewRequest("GET", "http://"+r.admin+"/info.json", nil)
				req.SetBasicAuth(auth[0], auth[1])
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}

			// Rotate the uplink password: Redis first, then the file, then SIGHUP.
			admin := redistest.MustDial(t, srv.Addr)
			for _, cmd := range [][]any{{"AUTH", uplinkPass}, {"CONFIG", "SET", "requirepass", newUplinkPass}} {
				if v, err := admin.Do(cmd...); err != nil || v.Err() != nil {
					t.Fatalf("%v: %v %v", cmd[0], v, err)
				}
			}
			from := len(r.logs.Lines())
			cfg.Uplink.Pass = newUplinkPass
			cfg.MaxClients = 500
			writeConfig(t, r.cfgPath, cfg)
			r.signal(syscall.SIGHUP)
			r.waitLog(from, "reloaded")
			if v, err := c.Do("GET", "k"); err != nil || v.String() != `"v"` {
				t.Errorf("GET after the reload: have %q, %v; want \"v\"", v.String(), err)
			}
			c.Close()
			r.stop()

			out := r.stdout.String() + "\n" + r.stderr.String()
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%q appears in the output:\n%s", s, out)
				}
			}
			// The test means something only if the commands were logged.
			for _, want := range []string{"AUTH", "HELLO", "uplink.pass", "max_clients"} {
				if !strings.Contains(out, want) {
					t.Errorf("%q is not in the log: log_messages or the reload diff did not log:\n%s", want, out)
				}
			}
		})
	}
}

// waitRedisBusy waits until Redis is blocked in a command (DEBUG SLEEP):
// it no longer answers PING on a new connection within 50 ms. Redis is
// an outside process, so polling it is the only way to know.
func waitRedisBusy(t *testing.T, addr string) {
	t.Helper()
	err := proc.WaitFor(t.Context(), waitTimeout, time.Millisecond, func() (bool, string, error) {
		c, err := redistest.Dial(addr, time.Second)
		if err != nil {
			return false, "", err
		}
		defer c.Close()
		c.SetTimeout(50 * time.Millisecond)
		_, err = c.Do("PING")
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return true, "", nil
		}
		return false, "PING answered", err
	})
	if err != nil {
		t.Fatalf("redis %s never got busy: %v", addr, err)
	}
}

// TestStopWithCommandInFlight: SIGTERM while a command runs; its reply
// still arrives, new connections are refused, and the exit code is 0.
func TestStopWithCommandInFlight(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	r := startProxy(t, newConfig(t, srv.Addr), "--log-format", "structured")
	c := redistest.MustDial(t, r.listen)
	if v, err := c.Do("PING"); err != nil || v.String() != "PONG" {
		t.Fatalf("PING: %v %v", v, err)
	}
	if err := c.Send("DEBUG", "SLEEP", "0.5"); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	waitRedisBusy(t, srv.Addr)
	sent := time.Now()
	r.signal(syscall.SIGTERM)
	stopping := func(line string) bool {
		e, err := parseEntry(line)
		return err == nil && e.str("msg") == "state changed" && e.str("state") == "stopping"
	}
	if _, _, ok := r.logs.Next(0, waitTimeout, stopping); !ok { // the listener is closed
		t.Fatalf("no state change to stopping:\n%s", r.logs)
	}
	// A client arriving now is not served: refused, or (when the kernel
	// completed the handshake just before the listener closed) closed
	// without a reply.
	if late, err := redistest.Dial(r.listen, time.Second); err == nil {
		late.SetTimeout(5 * time.Second)
		v, err := late.Do("PING")
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a client connecting during the stop: have %q, %v; want the connection closed", v.String(), err)
		}
		late.Close()
	}
	v, err := c.Receive()
	if err != nil || v.String() != "OK" {
		t.Errorf("DEBUG SLEEP during the stop: have %q, %v; want OK", v.String(), err)
	}
	if code := r.wait(); code != 0 {
		t.Errorf("exit code: have %d, want 0", code)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(sent))
}

// TestSecondSignalForcesStop: a second SIGINT during a graceful stop that
// waits for a command ends the process at once, with exit code 1.
func TestSecondSignalForcesStop(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	r := startProxy(t, newConfig(t, srv.Addr), "--log-format", "structured")
	c := redistest.MustDial(t, r.listen)
	if err := c.Send("DEBUG", "SLEEP", "3"); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	waitRedisBusy(t, srv.Addr)
	r.signal(syscall.SIGINT)
	r.waitLog(0, "stopping")
	sent := time.Now()
	r.signal(syscall.SIGINT)
	if code := r.wait(); code != exitFailure {
		t.Errorf("exit code: have %d, want 1", code)
	}
	if d := time.Since(sent); d > 2*time.Second {
		t.Errorf("the forced stop took %v; the command in flight was waited for", d)
	}
	e, _ := r.waitEntry(0, "second signal: forcing the stop without waiting for commands in flight")
	if e.str("level") != "ERROR" || e.str("signal") != "interrupt" {
		t.Errorf("forced stop line: %v", e)
	}
}

// TestReloadOnSIGHUP: SIGHUP moves the next command to the new uplink; a
// broken file is refused with the reason, and the old uplink keeps serving.
func TestReloadOnSIGHUP(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	for _, s := range []*redistest.Server{a, b} {
		if v, err := s.Client(t).Do("SET", "who", s.Addr); err != nil || v.Err() != nil {
			t.Fatalf("SET: %v %v", v, err)
		}
	}
	cfg := newConfig(t, a.Addr)
	r := startProxy(t, cfg, "--log-format", "structured")
	c := redistest.MustDial(t, r.listen)
	who := func() string {
		t.Helper()
		v, err := c.Do("GET", "who")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		return v.Str
	}
	if have := who(); have != a.Addr {
		t.Fatalf("before the reload: have %q, want %q", have, a.Addr)
	}

	cfg.Uplink.Addr = b.Addr
	writeConfig(t, r.cfgPath, cfg)
	from := len(r.logs.Lines())
	r.signal(syscall.SIGHUP)
	e, _ := r.waitEntry(from, "reloaded")
	if e.str("uplink") != b.Addr || !strings.Contains(fmt.Sprint(e["changed"]), "uplink.addr: "+a.Addr+" -> "+b.Addr) {
		t.Errorf("reloaded line: %v", e)
	}
	if have := who(); have != b.Addr {
		t.Errorf("after the reload: have %q, want %q", have, b.Addr)
	}

	writeFile(t, r.cfgPath, `{"uplink": {"addr": "`+a.Addr+`"}, "oops": 1}`)
	from = len(r.logs.Lines())
	r.signal(syscall.SIGHUP)
	e, _ = r.waitEntry(from, "reload refused; the running configuration stays")
	if e.str("level") != "ERROR" || !strings.Contains(e.str("err"), "oops: unknown key") {
		t.Errorf("refused line: %v", e)
	}
	if have := who(); have != b.Addr {
		t.Errorf("after the refused reload: have %q, want %q", have, b.Addr)
	}
	r.stop()
}

// TestDialFailureLogIsRateLimited: with the uplink down, 200 clients each
// get the real cause, while the log gets a bounded number of lines that
// count the failures.
func TestDialFailureLogIsRateLimited(t *testing.T) {
	const clients = 200
	cfg := newConfig(t, freeAddr(t)) // nothing listens there
	r := startProxy(t, cfg, "--log-format", "structured")

	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c, err := redistest.Dial(r.listen, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			v, err := c.Do("PING")
			if err != nil {
				t.Error(err)
				return
			}
			if s := v.String(); !strings.HasPrefix(s, "(error) ERR proxy: uplink unavailable: ") || !strings.Contains(s, "connection refused") {
				t.Errorf("PING: have %q, want the uplink unavailable error with its cause", s)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	first, _ := r.waitEntry(0, "uplink dial failed")
	if first.num("failures_since_last_log") != 1 || !strings.Contains(first.str("err"), "connection refused") || first.str("uplink") != cfg.Uplink.Addr {
		t.Errorf("first dial failure line: %v", first)
	}
	// The limiter lets one line through a second: one more failure a
	// second after the burst is logged with the count of the others. Its
	// line is the last of them in the pipe, so once it is read, all are.
	time.Sleep(time.Second + 50*time.Millisecond)
	sent := time.Now()
	c := redistest.MustDial(t, r.listen)
	if v, err := c.Do("PING"); err != nil || v.Err() == nil {
		t.Fatalf("PING: %v %v", v, err)
	}
	last, _, ok := r.logs.Next(0, waitTimeout, func(line string) bool {
		e, err := parseEntry(line)
		if err != nil || e.str("msg") != "uplink dial failed" {
			return false
		}
		at, err := time.Parse(time.RFC3339Nano, e.str("time"))
		return err == nil && !at.Before(sent)
	})
	if !ok {
		t.Fatalf("no dial failure line for the PING a second after the burst:\n%s", r.logs)
	}
	if n := mustEntry(t, last).num("failures_since_last_log"); n < 2 {
		t.Errorf("the line after the burst counts %v failures, want those of the burst too", n)
	}
	var lines []logEntry
	var total float64
	for _, line := range r.logs.Lines() {
		if e := mustEntry(t, line); e.str("msg") == "uplink dial failed" {
			lines = append(lines, e)
			total += e.num("failures_since_last_log")
		}
	}
	if len(lines) > 10 {
		t.Errorf("%d dial failure lines for %d failures; want at most 10", len(lines), clients+1)
	}
	if total < clients+1 {
		t.Errorf("the dial failure lines count %v failures, want %d", total, clients+1)
	}

	res, err := http.Get("http://" + r.admin + "/info.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var info struct {
		Counters struct {
			UplinkDialErrors float64 `json:"uplink_dial_errors"`
		} `json:"counters"`
	}
	if err := json.NewDecoder(res.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.Counters.UplinkDialErrors < clients+1 {
		t.Errorf("uplink_dial_errors: have %v, want >= %d", info.Counters.UplinkDialErrors, clients+1)
	}
	r.stop()
}
