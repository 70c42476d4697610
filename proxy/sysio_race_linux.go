//go:build linux && race

package proxy

import "syscall"

// Under the race detector the syscall package's calls are used: they carry
// its happens-before edges between a write and the read that sees it
// (sysio_linux.go has the calls used otherwise).

func sysRead(fd int, b []byte) (int, error)  { return syscall.Read(fd, b) }
func sysWrite(fd int, b []byte) (int, error) { return syscall.Write(fd, b) }

func epollPoll(epfd int, evs []syscall.EpollEvent) (int, error) {
	return syscall.EpollWait(epfd, evs, 0)
}
