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
	"time"
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
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the redis-proxy module: run from the repository, or give -proxy")
	}
	bin := filepath.Join(dir, "redis-proxy")
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", bin, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), cmd.Dir, err, out)
	}
	return bin, nil
}

// proxyProc is one redis-proxy process started by this program. Its log
// (structured, one JSON object a line) goes to a file; the "started" line
// is the readiness signal.
type proxyProc struct {
	cmd     *exec.Cmd
	started chan struct{} // closed at the "started" log line
	exited  chan struct{} // closed once the process is reaped

	mu        sync.Mutex
	tail      []string // last log lines
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
	cmd := exec.Command(bin, "-f", cfgPath, "--log-format", "structured", "--nocolor")
	cmd.Stdout = logf
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proxyProc{cmd: cmd, started: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		p.readLog(stderr, logf, verbose)
		_ = cmd.Wait() // the exit status is read from ProcessState
		logf.Close()
		close(p.exited)
	}()

	t := time.NewTimer(proxyStartDeadline)
	defer t.Stop()
	select {
	case <-p.started:
		return p, nil
	case <-p.exited:
		tail := p.logTail()
		if strings.Contains(tail, "address already in use") {
			return nil, fmt.Errorf("proxy: %w:\n%s", errAddrInUse, tail)
		}
		return nil, fmt.Errorf("proxy exited before it started (%v); log:\n%s", cmd.ProcessState, tail)
	case <-t.C:
		p.kill()
		return nil, fmt.Errorf("proxy did not log \"started\" within %v; log:\n%s", proxyStartDeadline, p.logTail())
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

// logLine is the part of a structured log line switchtest reads.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// readLog copies the proxy's stderr to logf (and verbose) until EOF,
// closing p.started at the "started" line and keeping the warnings.
func (p *proxyProc) readLog(r io.Reader, logf io.Writer, verbose io.Writer) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			_, _ = logf.Write(line)
			if verbose != nil {
				_, _ = fmt.Fprintf(verbose, "proxy: %s", line)
			}
			text := string(bytes.TrimRight(line, "\r\n"))
			var l logLine
			_ = json.Unmarshal(line, &l) // a non-JSON line is kept as text
			p.mu.Lock()
			if len(p.tail) == logTailLines {
				p.tail = append(p.tail[:0], p.tail[1:]...)
			}
			p.tail = append(p.tail, text)
			if l.Level == "WARN" || l.Level == "ERROR" {
				p.nWarnings++
				if len(p.warnings) < maxWarnings {
					p.warnings = append(p.warnings, text)
				}
			}
			p.mu.Unlock()
			if l.Msg == "started" {
				select {
				case <-p.started:
				default:
					close(p.started)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxyProc) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// logWarnings returns the number of WARN and ERROR lines and the first of
// them.
func (p *proxyProc) logWarnings() (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nWarnings, append([]string(nil), p.warnings...)
}

func (p *proxyProc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM (a graceful stop, doc/operations.md), waits up to grace,
// then SIGKILLs. It returns the exit code and whether it had to kill. It
// is idempotent.
func (p *proxyProc) stop(grace time.Duration) (exitCode int, forced bool) {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(grace)
			select {
			case <-p.exited:
			case <-t.C:
				p.forced = true
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
			t.Stop()
		}
		p.exitCode = p.cmd.ProcessState.ExitCode()
	})
	return p.exitCode, p.forced
}

// kill SIGKILLs the process and reaps it.
func (p *proxyProc) kill() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.forced = true
		p.exitCode = p.cmd.ProcessState.ExitCode()
	})
}
