//go:build linux && !race

package proxy

import (
	"syscall"
	"unsafe"
)

// The poller's sockets are non-blocking: a read or write returns at once
// (EAGAIN when it would wait), so it is made without telling the Go
// scheduler it enters a system call. The scheduler would otherwise hand
// the goroutine's processor to another thread when the call outlasts a
// scheduler tick (a loopback write does the receiver's TCP work too),
// and a thread switch follows on the way out. Under the race detector the
// syscall package's calls are kept: they carry its happens-before edges.

func sysRead(fd int, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return int(n), e
	}
	return int(n), nil
}

func sysWrite(fd int, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return int(n), e
	}
	return int(n), nil
}

// epollPoll collects the events ready now (timeout 0: never waits).
func epollPoll(epfd int, evs []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(evs))), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return int(n), e
	}
	return int(n), nil
}
