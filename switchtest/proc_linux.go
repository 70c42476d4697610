package main

import "syscall"

// childAttr puts the proxy in its own process group, so that a Ctrl-C on
// the terminal reaches only switchtest (which then stops the run in order)
// and not the proxy directly, and makes the kernel SIGKILL it if
// switchtest dies without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
