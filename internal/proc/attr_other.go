//go:build !linux

package proc

import "syscall"

// sysProcAttr: only Linux gets the process group and the parent-death
// signal here.
func sysProcAttr() *syscall.SysProcAttr { return nil }
