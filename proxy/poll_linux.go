//go:build linux

package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Readiness of our own for plain TCP sockets (client and uplink
// connections of sessions). Go's netpoller reads a socket until EAGAIN
// before it parks a goroutine: with one command at a time, that is one
// read in three that finds nothing. Here a socket is read when an event
// says it is readable, and not again until the next event, unless the last
// read filled its buffer (what was left is not announced again).
//
// The sockets are registered edge-triggered with one proxy-wide epoll
// instance. An event is queued for every arrival of data after the events
// were last collected, so data that arrives between a read and the wait is
// never missed: its event is collected later and wakes the waiter (at
// worst for a read that finds nothing, when the earlier read took it).
// The readiness flag is cleared before each read, never after, so an event
// that lands during the read is kept.
//
// The epoll instance itself is watched by Go's netpoller (an epoll file
// descriptor is readable when it has events), so the goroutine that
// collects events parks like any other: no thread is kept in a blocking
// epoll_wait. It collects without blocking (timeout 0), and only again
// when the netpoller says there are more.

type poller struct {
	epfd  int
	mu    sync.Mutex // slots, free
	slots []*pconn
	gens  []int32 // each slot's generation, one more at each new owner
	free  []int32
	seen  chan struct{} // the start-up check's event
}

var (
	pollOnce  sync.Once
	thePoller *poller // nil: not available; Go's netpoller serves every socket
	pollErr   error
)

// getPoller returns the proxy-wide poller, started on first use, or nil
// when it cannot work here.
func getPoller() *poller {
	pollOnce.Do(func() { thePoller, pollErr = newPoller() })
	return thePoller
}

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &poller{epfd: fd, seen: make(chan struct{}, 1)}
	go p.run(f, rc)
	if err := p.check(); err != nil {
		return nil, err // the instance stays open, unused: this happens once
	}
	return p, nil
}

// check proves the chain (event, netpoller, collector) once: a pipe
// written to must be seen within a second.
func (p *poller) check() error {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		return err
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollET, Fd: -1}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fds[0], &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	defer syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fds[0], nil)
	syscall.Write(fds[1], []byte{1})
	select {
	case <-p.seen:
		return nil
	case <-time.After(time.Second):
		return errors.New("epoll: no event through the netpoller")
	}
}

const epollET = 1 << 31 // EPOLLET: syscall.EPOLLET is negative

// run collects events for as long as the process lives. It stays inside
// one RawConn.Read: its wait keeps a readiness that arrives while events
// are being handed out (a new RawConn.Read would reset it).
func (p *poller) run(f *os.File, rc syscall.RawConn) {
	defer f.Close()
	evs := make([]syscall.EpollEvent, 256)
	rc.Read(func(fd uintptr) bool {
		for {
			n, err := epollPoll(p.epfd, evs)
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 {
				return false
			}
			p.dispatch(evs[:n])
			if n < len(evs) {
				return false
			}
		}
	})
}

const (
	evRead  = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
	evWrite = syscall.EPOLLOUT | syscall.EPOLLHUP | syscall.EPOLLERR
	evHup   = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
)

func (p *poller) dispatch(evs []syscall.EpollEvent) {
	p.mu.Lock()
	for i := range evs {
		e := &evs[i]
		if e.Fd < 0 {
			select {
			case p.seen <- struct{}{}:
			default:
			}
			continue
		}
		if int(e.Fd) >= len(p.slots) {
			continue
		}
		c := p.slots[e.Fd]
		if c == nil || c.gen != e.Pad {
			continue // closed since: its slot may be someone else's now
		}
		if e.Events&evRead != 0 {
			if e.Events&evHup != 0 {
				// The end of the input (or an error) comes after the data
				// before it, in a read of its own: no later event will say
				// so, so reads go on until they find it.
				c.hup.Store(true)
			}
			c.rd.ready.Store(true)
			c.rd.wakeUp()
		}
		if e.Events&evWrite != 0 {
			c.wr.ready.Store(true)
			c.wr.wakeUp()
		}
	}
	p.mu.Unlock()
}

// add registers c's socket; its events name its slot and generation.
func (p *poller) add(c *pconn) error {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c.slot = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		c.slot = int32(len(p.slots))
		p.slots = append(p.slots, nil)
		p.gens = append(p.gens, 0)
	}
	// Events still queued for the slot's last owner are told apart by
	// the generation.
	p.gens[c.slot]++
	c.gen = p.gens[c.slot]
	p.slots[c.slot] = c
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET, Fd: c.slot, Pad: c.gen}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		p.remove(c)
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// remove unregisters c (its socket is still open) and frees its slot.
func (p *poller) remove(c *pconn) {
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	p.mu.Lock()
	if p.slots[c.slot] == c {
		p.slots[c.slot] = nil
		p.free = append(p.free, c.slot)
	}
	p.mu.Unlock()
}

// adopt moves a plain TCP connection's socket from Go's netpoller to
// ours: a duplicate of its descriptor is registered here and the original
// closed (the socket lives on in the duplicate). Anything else, or any
// failure, leaves c as it is.
func adopt(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	p := getPoller()
	if p == nil {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	nfd := -1
	raw.Control(func(fd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno == 0 {
			nfd = int(r)
		}
	})
	if nfd < 0 {
		return c
	}
	pc := newPconn(nfd, tc.LocalAddr(), tc.RemoteAddr())
	pc.p = p
	if err := p.add(pc); err != nil {
		syscall.Close(nfd)
		return c
	}
	tc.Close()
	return pc
}
