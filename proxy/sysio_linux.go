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
	return rawCall(syscall.SYS_READ, fd, unsafe.Pointer(unsafe.SliceData(b)), len(b))
}
func sysWrite(fd int, b []byte) (int, error) {
	return rawCall(syscall.SYS_WRITE, fd, unsafe.Pointer(unsafe.SliceData(b)), len(b))
}

// epollPoll collects the events ready now (timeout 0: never waits).
func epollPoll(epfd int, evs []syscall.EpollEvent) (int, error) {
	return rawCall(syscall.SYS_EPOLL_PWAIT, epfd, unsafe.Pointer(unsafe.SliceData(evs)), len(evs))
}

// rawCall makes trap(fd, p, n[, 0, 0, 0]) and returns its errno as an error.
func rawCall(trap uintptr, fd int, p unsafe.Pointer, n int) (int, error) {
	r, _, e := syscall.RawSyscall6(trap, uintptr(fd), uintptr(p), uintptr(n), 0, 0, 0)
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}
