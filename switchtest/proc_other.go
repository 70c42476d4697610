//go:build !linux

package main

import "syscall"

// childAttr: only Linux gets a process group of its own and a parent-death
// signal here.
func childAttr() *syscall.SysProcAttr { return nil }
