package redistest

import "syscall"

// sysProcAttr makes the kernel SIGKILL the server if the process that
// started it dies without stopping it (a test binary killed by -timeout),
// so that no redis-server outlives its test run. Pdeathsig is tied to the
// OS thread that forked; Go only ends a thread when a goroutine exits while
// locked to it with runtime.LockOSThread, which nothing here does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL,
		// Its own process group: a Ctrl-C at the terminal stops the program
		// driving it, which then stops the server itself, by PID.
		Setpgid: true}
}
