// Package proc runs the child processes of the tests and of switchtest:
// it builds redis-proxy, starts a program in a process group of its own,
// reads its output line by line, and stops it by its PID: SIGTERM, then
// SIGKILL once a bound has passed. It only ever signals a process it
// started, and only by that process's PID.
//
// On Linux the kernel also SIGKILLs a child whose parent dies without
// stopping it (a test binary killed by -timeout), so that nothing
// outlives its run. The process group of its own keeps a Ctrl-C at the
// terminal away from the children: the program that started them gets
// it, and stops them in order.
//
// WaitFor is the one polling loop, for state that only polling can
// observe (another process's INFO, a browser's page).
//
// The package imports nothing of the project's own.
package proc

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// OutputGrace bounds the wait, once a process has been reaped, for its
// output to reach its end: a process it forked may still hold the pipe.
// Past it the pipe is closed and what was not read is lost.
const OutputGrace = 2 * time.Second

// outputGrace is OutputGrace; the tests shorten it.
var outputGrace = OutputGrace

// Options configure Start. The zero value runs the program with this
// process's environment and working directory, its output discarded.
type Options struct {
	// Dir is the working directory; "" is this process's.
	Dir string
	// Env is added to this process's environment ("GORACE=...").
	Env []string
	// Stdout and Stderr receive the two streams; nil discards one. The
	// same Output for both reads them from one pipe, in the order written.
	Stdout, Stderr *Output
}

// Process is one running program started by Start. Its methods are safe
// for concurrent use.
type Process struct {
	cmd     *exec.Cmd
	pipes   []*os.File // our read ends
	readers sync.WaitGroup
	grace   time.Duration // outputGrace when it started
	done    chan struct{} // closed once reaped and its output read
	state   *os.ProcessState
}

// Start starts path with args. It returns once the process runs; Done
// says when it has ended.
func Start(path string, args []string, o Options) (*Process, error) {
	cmd := exec.Command(path, args...)
	cmd.Dir = o.Dir
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	cmd.SysProcAttr = sysProcAttr()
	p := &Process{cmd: cmd, grace: outputGrace, done: make(chan struct{})}

	// The child's ends of the pipes are closed here once it holds its own
	// copies, so that its exit is the end of the output.
	var childEnds []*os.File
	closeChildEnds := func() {
		for _, w := range childEnds {
			w.Close()
		}
	}
	pipe := func(out *Output) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		p.pipes = append(p.pipes, r)
		childEnds = append(childEnds, w)
		p.readers.Go(func() { out.read(r) })
		return w, nil
	}
	fail := func(err error) (*Process, error) {
		closeChildEnds() // the readers see the end
		p.readers.Wait()
		for _, r := range p.pipes {
			r.Close()
		}
		return nil, err
	}
	if o.Stdout != nil {
		w, err := pipe(o.Stdout)
		if err != nil {
			return fail(err)
		}
		cmd.Stdout = w
	}
	switch {
	case o.Stderr == nil:
	case o.Stderr == o.Stdout:
		cmd.Stderr = cmd.Stdout
	default:
		w, err := pipe(o.Stderr)
		if err != nil {
			return fail(err)
		}
		cmd.Stderr = w
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	closeChildEnds()
	go p.reap()
	return p, nil
}

// reap waits for the process to exit, then for its output to end
// (bounded by p.grace), then closes done.
func (p *Process) reap() {
	_ = p.cmd.Wait() // the exit status is in ProcessState
	read := make(chan struct{})
	go func() {
		p.readers.Wait()
		close(read)
	}()
	t := time.NewTimer(p.grace)
	select {
	case <-read:
	case <-t.C:
		for _, r := range p.pipes {
			r.Close() // unblocks the readers
		}
		<-read
	}
	t.Stop()
	for _, r := range p.pipes {
		r.Close()
	}
	p.state = p.cmd.ProcessState
	close(p.done)
}

// PID is the process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited, been reaped and its output
// read to the end: every OnLine call has returned.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether Done is closed.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// State is how the process ended; nil before Done.
func (p *Process) State() *os.ProcessState {
	if !p.Exited() {
		return nil
	}
	return p.state
}

// ExitCode is the exit status, -1 when a signal ended the process or it
// has not ended yet.
func (p *Process) ExitCode() int {
	if st := p.State(); st != nil {
		return st.ExitCode()
	}
	return -1
}

// Signal sends sig to the process, by its PID. Once the process has been
// reaped it fails with os.ErrProcessDone (the PID may be another's by
// then).
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.PID(), os.ErrProcessDone)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.PID(), err)
	}
	return nil
}

// Wait waits up to timeout for Done and reports whether it came.
func (p *Process) Wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// Stop ends the process: SIGTERM (with SIGCONT, so that a stopped process
// handles it), then, if it has not exited after grace, SIGKILL. It
// returns once Done, and reports whether SIGKILL was needed. After the
// process has ended it does nothing and returns false.
func (p *Process) Stop(grace time.Duration) (killed bool) {
	if p.Exited() {
		return false
	}
	p.send(syscall.SIGTERM)
	p.send(syscall.SIGCONT)
	if p.Wait(grace) {
		return false
	}
	p.Kill()
	return true
}

// Kill sends SIGKILL and returns once Done.
func (p *Process) Kill() {
	p.send(syscall.SIGKILL)
	<-p.done
}

// send signals the process. An error can only mean that it has just
// exited, and then Done comes anyway.
func (p *Process) send(sig os.Signal) { _ = p.Signal(sig) }
