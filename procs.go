package main

import (
	"os"
	"runtime"
)

// setProcs sets how many threads run Go code at once, unless GOMAXPROCS
// says: half of what the runtime would take (the CPUs, or the container's
// CPU limit), at least one. The proxy spends its time in system calls and
// in waking the goroutines of its sessions; with every core given to it,
// the scheduler's idle threads spin looking for work and take CPU from
// Redis and the clients on the same host (doc/performance.md, Threads).
// It returns the number in force.
func setProcs() int {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/2))
	}
	return runtime.GOMAXPROCS(0)
}
