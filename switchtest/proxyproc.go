package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"redis-proxy/internal/proc"
)

const (
	// proxyStartDeadline bounds the wait for the proxy's "started" log line.
	proxyStartDeadline = 30 * time.Second
	// buildDeadline bounds go build of the proxy (a cold cache on a busy
	// machine is slow).
	buildDeadline = 5 * time.Minute
	// logTailLines is how many lines of the proxy's log are kept for error
	// messages; maxWarnings how many WARN/ERROR lines for the report.
	logTailLines = 40
	maxWarnings  = 20
)

// errAddrInUse marks a proxy start that failed because a port was taken
// between picking it and binding it.
var errAddrInUse = errors.New("address already in use")

// buildProxy builds the proxy from the module this program belongs to into
// dir and returns the binary's path.
func buildProxy(ctx context.Context, dir string, flags []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildDeadline)
	defer cancel()
	bin := filepath.Join(dir, "redis-proxy")
	if err := proc.Build(ctx, bin, flags...); err != nil {
		return "", fmt.Errorf("%w (or give -proxy)", err)
	}
	return bin, nil
}

// proxyProc is one redis-proxy process started by this program. Its log
// (structured, one JSON object a line) goes to a file; the "started" line
// is the readiness signal.
type proxyProc struct {
	p       *proc.Process
	log     *proc.Output  // its last lines
	started chan struct{} // closed at the "started" log line

	mu        sync.Mutex
	warnings  []string // first WARN/ERROR lines
	nWarnings int

	stopOnce sync.Once
	exitCode int
	forced   bool
}

// startProxy runs bin -f cfgPath and returns once it logged "started", or
// with an error carrying the end of its log. verbose, if not nil, gets a
// copy of the log.
func startProxy(ctx context.Context, bin, cfgPath, logPath string, verbose io.Writer) (*proxyProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	px := &proxyProc{started: make(chan struct{})}
	px.log = &proc.Output{Keep: logTailLines, OnLine: func(line string) { px.logLine(line, logf, verbose) }}
	args := []string{"-f", cfgPath, "--log-format", "structured", "--nocolor"}
	p, err := proc.Start(bin, args, proc.Options{Stdout: px.log, Stderr: px.log})
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	px.p = p
	go func() {
		<-p.Done() // no more lines
		logf.Close()
	}()

	t := time.NewTimer(proxyStartDeadline)
	defer t.Stop()
	select {
	case <-px.started:
		return px, nil
	case <-p.Done():
		tail := px.log.String()
		if strings.Contains(tail, "address already in use") {
			return nil, fmt.Errorf("proxy: %w:\n%s", errAddrInUse, tail)
		}
		return nil, fmt.Errorf("proxy exited before it started (%v); log:\n%s", p.State(), tail)
	case <-t.C:
		px.kill()
		return nil, fmt.Errorf("proxy did not log \"started\" within %v; log:\n%s", proxyStartDeadline, px.log)
	case <-ctx.Done():
		px.kill()
		return nil, ctx.Err()
	}
}

// logLine is the part of a structured log line switchtest reads.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// logLine copies one line of the proxy's log to logf (and verbose),
// keeps it if it is a warning, and closes px.started at the "started"
// line. It runs on the goroutine that reads the log.
func (px *proxyProc) logLine(line string, logf, verbose io.Writer) {
	_, _ = io.WriteString(logf, line+"\n")
	if verbose != nil {
		_, _ = fmt.Fprintf(verbose, "proxy: %s\n", line)
	}
	var l logLine
	_ = json.Unmarshal([]byte(line), &l) // a non-JSON line is kept as text
	if l.Level == "WARN" || l.Level == "ERROR" {
		px.mu.Lock()
		px.nWarnings++
		if len(px.warnings) < maxWarnings {
			px.warnings = append(px.warnings, line)
		}
		px.mu.Unlock()
	}
	if l.Msg == "started" {
		select {
		case <-px.started:
		default:
			close(px.started)
		}
	}
}

func (px *proxyProc) logTail() string { return px.log.String() }

// logWarnings returns the number of WARN and ERROR lines and the first of
// them.
func (px *proxyProc) logWarnings() (int, []string) {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.nWarnings, append([]string(nil), px.warnings...)
}

func (px *proxyProc) pid() int { return px.p.PID() }

// exited is closed once the proxy has exited and its log is complete.
func (px *proxyProc) exited() <-chan struct{} { return px.p.Done() }

// stop sends SIGTERM (a graceful stop, doc/operations.md), waits up to
// grace, then SIGKILLs. It returns the exit code and whether it had to
// kill. It is idempotent.
func (px *proxyProc) stop(grace time.Duration) (exitCode int, forced bool) {
	px.stopOnce.Do(func() {
		px.forced = px.p.Stop(grace)
		px.exitCode = px.p.ExitCode()
	})
	return px.exitCode, px.forced
}

// kill SIGKILLs the process and reaps it.
func (px *proxyProc) kill() {
	px.stopOnce.Do(func() {
		px.p.Kill()
		px.forced = true
		px.exitCode = px.p.ExitCode()
	})
}
