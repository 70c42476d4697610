//go:build linux

// Command floor is a bare TCP relay, the least a Go program can do per
// request between a client and Redis: it parses nothing, keeps no records
// and enforces nothing. doc/floor.sh measures its process CPU per request
// beside redis-proxy's and HAProxy's, to show what share of the proxy's
// cost is Go's own and what share is the proxy's work.
//
//	floor pair|loop LISTEN UPSTREAM
//
// pair: a goroutine per direction, as redis-proxy has, each living inside
// one RawConn.Read (Go's netpoller; one read per readiness, no read that
// finds nothing). loop: one goroutine on one thread, one epoll instance,
// non-blocking reads and writes without the scheduler: no goroutine
// switch per request, as in HAProxy. It is a measuring tool: in loop, a
// write that would block ends the connection.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

func main() {
	if len(os.Args) != 4 || (os.Args[1] != "pair" && os.Args[1] != "loop") {
		fmt.Fprintln(os.Stderr, "usage: floor pair|loop LISTEN UPSTREAM")
		os.Exit(2)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/2)) // as redis-proxy (procs.go)
	}
	ln, err := net.Listen("tcp", os.Args[2])
	if err == nil {
		err = serve(os.Args[1], ln, os.Args[3])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(1)
}

// serve relays the connections accepted on ln to upstream, each with a
// connection of its own; it returns only when it cannot start.
func serve(mode string, ln net.Listener, upstream string) error {
	conns := make(chan [2]*net.TCPConn)
	go accept(ln, upstream, conns)
	if mode == "pair" {
		for c := range conns {
			go pipe(c[0], c[1])
			go pipe(c[1], c[0])
		}
		return nil
	}
	return loop(conns)
}

func accept(ln net.Listener, upstream string, conns chan<- [2]*net.TCPConn) {
	defer close(conns)
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			c.Close()
			continue
		}
		conns <- [2]*net.TCPConn{c.(*net.TCPConn), u.(*net.TCPConn)}
	}
}

// pipe copies src to dst inside one RawConn.Read: its wait keeps a
// readiness that arrives while it copies. Writes are made as the proxy
// makes them, without the scheduler's system call bookkeeping, inside
// dst's RawConn.Write (which waits when one would block).
func pipe(src, dst *net.TCPConn) {
	defer src.Close()
	defer dst.Close()
	rs, err := src.SyscallConn()
	if err != nil {
		return
	}
	rd, err := dst.SyscallConn()
	if err != nil {
		return
	}
	b := make([]byte, 16384)
	var out []byte // what write has still to write
	var werr syscall.Errno
	write := func(fd uintptr) bool {
		for len(out) > 0 {
			n, errno := rawIO(syscall.SYS_WRITE, int(fd), out)
			switch errno {
			case 0:
				out = out[n:]
			case syscall.EAGAIN:
				return false
			default:
				werr = errno
				return true
			}
		}
		return true
	}
	rs.Read(func(fd uintptr) bool {
		for {
			n, errno := rawIO(syscall.SYS_READ, int(fd), b)
			switch {
			case errno == syscall.EAGAIN:
				return false
			case errno != 0 || n == 0:
				return true
			}
			out = b[:n]
			if rd.Write(write) != nil || werr != 0 {
				return true
			}
			if n < len(b) {
				return false // the next data brings an event
			}
		}
	})
}

// loop serves every connection from one epoll instance (level-triggered).
func loop(conns <-chan [2]*net.TCPConn) error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	var pfd [2]int // a pipe announces new connections to the loop
	if err := syscall.Pipe2(pfd[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	add := func(fd int) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
	}
	add(pfd[0])
	pending := make(chan [2]int, 1024)
	go func() {
		for c := range conns {
			var p [2]int
			for i, tc := range c {
				p[i] = detach(tc)
			}
			if p[0] < 0 || p[1] < 0 {
				syscall.Close(p[0])
				syscall.Close(p[1])
				continue
			}
			pending <- p
			syscall.Write(pfd[1], []byte{1})
		}
	}()
	runtime.LockOSThread()
	peer := map[int]int{}
	evs := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 16384)
	for {
		n, err := syscall.EpollWait(epfd, evs, -1)
		if err != nil {
			continue
		}
		for _, e := range evs[:n] {
			fd := int(e.Fd)
			if fd == pfd[0] {
				syscall.Read(fd, buf)
				for len(pending) > 0 {
					p := <-pending
					a, b := p[0], p[1]
					peer[a], peer[b] = b, a
					add(a)
					add(b)
				}
				continue
			}
			to, ok := peer[fd]
			if !ok {
				continue // an event of a pair closed earlier in this batch
			}
			r, errno := rawIO(syscall.SYS_READ, fd, buf)
			if errno == syscall.EAGAIN {
				continue
			}
			if errno == 0 && r > 0 {
				if w, errno := rawIO(syscall.SYS_WRITE, to, buf[:r]); errno == 0 && w == r {
					continue
				}
			}
			for _, x := range []int{fd, to} {
				syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, x, nil)
				syscall.Close(x)
				delete(peer, x)
			}
		}
	}
}

// detach takes a descriptor of the connection's socket out of Go's
// netpoller (a duplicate, non-blocking as the original) and closes the
// connection; -1 on failure.
func detach(tc *net.TCPConn) int {
	defer tc.Close()
	nfd := -1
	if raw, err := tc.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if d, err := syscall.Dup(int(fd)); err == nil {
				nfd = d
			}
		})
	}
	return nfd
}

// rawIO reads or writes a non-blocking socket without the scheduler's
// system call bookkeeping (it returns at once), as the proxy does.
func rawIO(trap uintptr, fd int, b []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return int(n), errno
}
