//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// pconn is a plain TCP connection served by the proxy's own poller
// (poll_linux.go): a net.Conn with deadlines, safe to close while another
// goroutine waits in Read or Write. One goroutine reads and one writes at
// a time (a session's discipline); Close and the deadline setters may be
// called from anywhere.
type pconn struct {
	fd        int
	p         *poller
	slot, gen int32
	ref       atomic.Int64 // operations using fd, plus one until Close; closedBit once closed
	more      bool         // the reader's: the last read filled its buffer, read again without an event
	hup       atomic.Bool  // the peer's end (or an error) was announced: read without events from now on
	rd, wr    pwait
	laddr     net.Addr
	raddr     net.Addr
}

const closedBit = 1 << 62

func newPconn(fd int, laddr, raddr net.Addr) *pconn {
	c := &pconn{fd: fd, laddr: laddr, raddr: raddr}
	c.ref.Store(1)
	c.rd.init()
	c.wr.init()
	// Not yet known to be empty: the first read tries.
	c.rd.ready.Store(true)
	c.wr.ready.Store(true)
	return c
}

// pwait is one direction's readiness, deadline and parked waiter.
type pwait struct {
	ready atomic.Bool   // an event arrived since the last attempt began
	wake  chan struct{} // one token: something to look at (event, deadline, close)
	dl    atomic.Int64  // deadline on the poll clock; 0: none
	mu    sync.Mutex    // timer
	timer *time.Timer
}

func (w *pwait) init() { w.wake = make(chan struct{}, 1) }

func (w *pwait) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// The poll clock: monotonic nanoseconds since the package started, so a
// deadline and the timer that announces it agree whatever the wall clock
// does. 0 means no deadline, so the clock starts at 1.
var pollEpoch = time.Now()

func pollNow() int64 { return int64(time.Since(pollEpoch)) + 1 }

func (w *pwait) set(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.IsZero() {
		w.dl.Store(0)
		if w.timer != nil {
			w.timer.Stop()
		}
		return
	}
	at := int64(t.Sub(pollEpoch)) + 1
	w.dl.Store(max(at, 1))
	d := time.Duration(at - pollNow())
	if d <= 0 {
		if w.timer != nil {
			w.timer.Stop()
		}
		w.wakeUp()
		return
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.wakeUp)
	} else {
		w.timer.Reset(d)
	}
}

func (w *pwait) expired() bool {
	dl := w.dl.Load()
	return dl != 0 && pollNow() >= dl
}

func (w *pwait) stop() {
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

func (c *pconn) incref() bool {
	for {
		v := c.ref.Load()
		if v&closedBit != 0 {
			return false
		}
		if c.ref.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// decref closes the socket when the last user of a closed pconn is done:
// its number can then be reused, and nobody is left to use it.
func (c *pconn) decref() {
	if c.ref.Add(-1) == closedBit {
		syscall.Close(c.fd)
	}
}

func (c *pconn) closed() bool { return c.ref.Load()&closedBit != 0 }

// wait parks until w is ready, its deadline passes or c closes.
func (c *pconn) wait(w *pwait, op string) error {
	for !w.ready.Load() {
		if c.closed() {
			return c.opErr(op, net.ErrClosed)
		}
		if w.expired() {
			return c.opErr(op, os.ErrDeadlineExceeded)
		}
		<-w.wake
	}
	return nil
}

// readable returns when a read may find data: an event came, or the last
// read filled its buffer. A deadline already past fails it, as in Go's
// own connections, data or not.
func (c *pconn) readable() error {
	if c.closed() {
		return c.opErr("read", net.ErrClosed)
	}
	if c.rd.expired() {
		return c.opErr("read", os.ErrDeadlineExceeded)
	}
	if c.more || c.hup.Load() {
		return nil
	}
	return c.wait(&c.rd, "read")
}

// sysRead reads once, clearing the readiness first (an event during the
// read is kept). It returns the system call's errno as it is.
func (c *pconn) sysRead(b []byte) (int, error) {
	if !c.incref() {
		return 0, c.opErr("read", net.ErrClosed)
	}
	c.rd.ready.Store(false)
	c.more = false
	var n int
	var err error
	for {
		n, err = syscall.Read(c.fd, b)
		if err != syscall.EINTR {
			break
		}
	}
	c.decref()
	if err == syscall.EAGAIN {
		return 0, err
	}
	// A full buffer may have left data no event will announce; the end of
	// the input and errors are read again as they are.
	c.more = err != nil || n <= 0 || n == len(b)
	return max(n, 0), err
}

func (c *pconn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if err := c.readable(); err != nil {
			return 0, err
		}
		n, err := c.sysRead(b)
		switch {
		case err == syscall.EAGAIN:
			continue // the data was taken by the read before: wait
		case err != nil:
			if _, ok := err.(*net.OpError); ok {
				return 0, err
			}
			return 0, c.opErr("read", os.NewSyscallError("read", err))
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *pconn) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		if c.wr.expired() {
			return done, c.opErr("write", os.ErrDeadlineExceeded)
		}
		if !c.incref() {
			return done, c.opErr("write", net.ErrClosed)
		}
		c.wr.ready.Store(false)
		n, err := syscall.Write(c.fd, b[done:])
		c.decref()
		if n > 0 {
			done += n
		}
		switch err {
		case nil, syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if err := c.wait(&c.wr, "write"); err != nil {
				return done, err
			}
			continue
		}
		return done, c.opErr("write", os.NewSyscallError("write", err))
	}
	return done, nil
}

// Close unregisters the socket and wakes whoever waits on it; the socket
// itself closes when the last operation using it is done.
func (c *pconn) Close() error {
	for {
		v := c.ref.Load()
		if v&closedBit != 0 {
			return c.opErr("close", net.ErrClosed)
		}
		if c.ref.CompareAndSwap(v, v|closedBit) {
			break
		}
	}
	c.p.remove(c)
	c.rd.stop()
	c.wr.stop()
	c.rd.wakeUp()
	c.wr.wakeUp()
	c.decref()
	return nil
}

func (c *pconn) LocalAddr() net.Addr  { return c.laddr }
func (c *pconn) RemoteAddr() net.Addr { return c.raddr }

func (c *pconn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wr.set(t)
	return nil
}

func (c *pconn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *pconn) SetWriteDeadline(t time.Time) error { c.wr.set(t); return nil }

func (c *pconn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
}

// SyscallConn gives the socket to code that asks the kernel about it
// (peerClosed): Control only.
func (c *pconn) SyscallConn() (syscall.RawConn, error) { return pconnRaw{c}, nil }

type pconnRaw struct{ c *pconn }

func (r pconnRaw) Control(f func(fd uintptr)) error {
	if !r.c.incref() {
		return r.c.opErr("control", net.ErrClosed)
	}
	defer r.c.decref()
	f(uintptr(r.c.fd))
	return nil
}

func (r pconnRaw) Read(func(fd uintptr) bool) error  { return syscall.ENOTSUP }
func (r pconnRaw) Write(func(fd uintptr) bool) error { return syscall.ENOTSUP }
