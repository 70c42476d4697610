package proc

import "syscall"

// sysProcAttr gives the child a process group of its own (a Ctrl-C at the
// terminal reaches only the program that started it) and makes the
// kernel SIGKILL it if that program dies without stopping it. Pdeathsig
// is tied to the OS thread that forked; Go ends a thread only when a
// goroutine exits while locked to it with runtime.LockOSThread, which
// nothing that starts processes does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
