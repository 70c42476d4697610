package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is also the child: with PROC_TEST_CHILD set, TestMain
// runs the behaviour it names instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("PROC_TEST_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child is the child process's behaviour; it returns its exit code.
func child(mode string) int {
	switch mode {
	case "print": // lines on both streams, the last without a line end
		fmt.Println("out 1")
		fmt.Fprintln(os.Stderr, "err 1")
		fmt.Println("out 2\r")
		fmt.Print("out 3")
		return 3
	case "term": // ready, then exit 0 at SIGTERM
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("ready")
		<-sigs
		fmt.Println("got SIGTERM")
		return 0
	case "stubborn": // ready, then ignores SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Minute) // until killed
		return 0
	case "forks": // leaves a grandchild holding the output pipe, exits
		exe, _ := os.Executable()
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), "PROC_TEST_CHILD=hold")
		cmd.Stdout = os.Stdout // the pipe
		if err := cmd.Start(); err != nil {
			fmt.Println(err)
			return 1
		}
		return 0 // not waited for: it outlives us on purpose, for a moment
	case "hold": // the grandchild: holds the pipe for 3 s, then exits by itself
		time.Sleep(3 * time.Second)
		return 0
	case "env":
		fmt.Println(os.Getenv("PROC_TEST_VALUE"))
		return 0
	}
	return 100
}

func startChild(t *testing.T, mode string, o Options) *Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// GORACE: a child built with -race would wait a second at exit.
	o.Env = append(o.Env, "PROC_TEST_CHILD="+mode, "GORACE=atexit_sleep_ms=0")
	p, err := Start(exe, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	return p
}

func TestOutputAndExitCode(t *testing.T) {
	out, errOut := new(Output), new(Output)
	p := startChild(t, "print", Options{Stdout: out, Stderr: errOut})
	if !p.Wait(10 * time.Second) {
		t.Fatal("not done within 10 s")
	}
	if have, want := out.String(), "out 1\nout 2\nout 3"; have != want {
		t.Errorf("stdout: have %q, want %q", have, want)
	}
	if have, want := out.Text(), "out 1\nout 2\nout 3"; have != want {
		t.Errorf("stdout as text: have %q, want %q", have, want)
	}
	if have, want := errOut.Text(), "err 1\n"; have != want {
		t.Errorf("stderr: have %q, want %q", have, want)
	}
	if p.ExitCode() != 3 || p.State() == nil {
		t.Errorf("exit code %d, state %v; want 3", p.ExitCode(), p.State())
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after the end: have %v, want os.ErrProcessDone", err)
	}
	if p.Stop(time.Second) {
		t.Error("Stop after the end: killed")
	}
}

func TestOneOutputForBoth(t *testing.T) {
	var seen []string
	both := &Output{Keep: 2, OnLine: func(l string) { seen = append(seen, l) }}
	p := startChild(t, "print", Options{Stdout: both, Stderr: both})
	<-p.Done()
	// Every line went through OnLine before Done, in the order written.
	if have, want := strings.Join(seen, "|"), "out 1|err 1|out 2|out 3"; have != want {
		t.Errorf("OnLine: have %q, want %q", have, want)
	}
	if have := both.Lines(); len(have) != 2 || have[1] != "out 3" || both.Len() != 4 {
		t.Errorf("Keep 2: have %q of %d lines", have, both.Len())
	}
	// Lines no longer kept are skipped, not waited for.
	if l, n, ok := both.Next(0, time.Second, func(string) bool { return true }); !ok || n != 2 || l != "out 2" {
		t.Errorf("Next(0): have %q %d %v, want the first kept line, 2", l, n, ok)
	}
	if _, n, ok := both.Next(0, time.Second, func(l string) bool { return l == "out 1" }); ok || n != 4 {
		t.Errorf("Next of a dropped line: have %d %v, want 4 false (the end)", n, ok)
	}
}

func TestStopBySIGTERM(t *testing.T) {
	out := new(Output)
	p := startChild(t, "term", Options{Stdout: out})
	if _, _, ok := out.Next(0, 10*time.Second, func(l string) bool { return l == "ready" }); !ok {
		t.Fatalf("no ready line: %q", out.Lines())
	}
	if killed := p.Stop(10 * time.Second); killed || p.ExitCode() != 0 {
		t.Errorf("Stop: killed %v, exit code %d; want SIGTERM handled, 0", killed, p.ExitCode())
	}
	if have := out.Lines(); have[len(have)-1] != "got SIGTERM" {
		t.Errorf("output after Stop: %q", have)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	out := new(Output)
	p := startChild(t, "stubborn", Options{Stdout: out})
	if _, _, ok := out.Next(0, 10*time.Second, func(l string) bool { return l == "ready" }); !ok {
		t.Fatalf("no ready line: %q", out.Lines())
	}
	start := time.Now()
	if !p.Stop(200 * time.Millisecond) {
		t.Error("Stop of a process ignoring SIGTERM: not killed")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("killed after %v, before the grace", d)
	}
	if st := p.State(); st == nil || st.ExitCode() != -1 {
		t.Errorf("state %v, want killed by a signal", st)
	}
}

// TestGrandchildHoldsOutput: a process that exits while a child of its
// own still holds the pipe is done after outputGrace, not when that child
// exits.
func TestGrandchildHoldsOutput(t *testing.T) {
	old := outputGrace
	outputGrace = 100 * time.Millisecond
	defer func() { outputGrace = old }()
	start := time.Now()
	p := startChild(t, "forks", Options{Stdout: new(Output)})
	if !p.Wait(2 * time.Second) {
		t.Fatal("not done within 2 s while the grandchild holds the pipe (for 3 s)")
	}
	if p.ExitCode() != 0 {
		t.Errorf("exit code %d", p.ExitCode())
	}
	t.Logf("done after %v", time.Since(start))
}

func TestOwnProcessGroupAndEnv(t *testing.T) {
	out := new(Output)
	p := startChild(t, "env", Options{Stdout: out, Env: []string{"PROC_TEST_VALUE=x1"}})
	pid := p.PID()
	pgid, err := syscall.Getpgid(pid)
	<-p.Done()
	if err == nil && pgid != pid { // err: it was quicker than us
		t.Errorf("process group %d, want its own (%d)", pgid, pid)
	}
	if out.String() != "x1" {
		t.Errorf("PROC_TEST_VALUE in the child: %q", out.String())
	}
}

func TestStartFails(t *testing.T) {
	if _, err := Start("/nonexistent/program", nil, Options{Stdout: new(Output), Stderr: new(Output)}); err == nil {
		t.Error("Start of a missing program: nil error")
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	err := WaitFor(context.Background(), 10*time.Second, time.Millisecond, func() (bool, string, error) {
		n++
		return n == 3, "n=" + strconv.Itoa(n), nil
	})
	if err != nil || n != 3 {
		t.Errorf("have %v after %d checks, want nil after 3", err, n)
	}
	err = WaitFor(context.Background(), 20*time.Millisecond, time.Millisecond, func() (bool, string, error) {
		return false, "still not", nil
	})
	if err == nil || !strings.Contains(err.Error(), "not done within 20ms (still not)") {
		t.Errorf("timeout: have %v", err)
	}
	boom := errors.New("boom")
	if err := WaitFor(context.Background(), time.Second, time.Millisecond, func() (bool, string, error) { return false, "", boom }); err != boom {
		t.Errorf("check's error: have %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitFor(ctx, time.Second, time.Millisecond, func() (bool, string, error) { return false, "", nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: have %v", err)
	}
}
