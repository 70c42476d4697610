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
	// Not yet known to be empty: the first read tries.
	c.rd.ready.Store(true)
	c.wr.ready.Store(true)
	return c
}

// pwait is one direction's readiness, deadline and waiter. Its wake
// channel and its timer are made when a waiter first needs them: most
// directions of an idle session never wait (they park, or never block).
type pwait struct {
	ready atomic.Bool                   // an event arrived since the last attempt began
	wake  atomic.Pointer[chan struct{}] // one token: something to look at (event, deadline, close)
	dl    atomic.Int64                  // deadline on the poll clock; 0: none
	timed atomic.Bool                   // timer made
	mu    sync.Mutex                    // timer
	timer *time.Timer

	// A parked waiter has no goroutine: the next wake runs resume in a
	// new one (parkRead).
	parked atomic.Bool
	resume func()

	// A waiter that may park instead (its session is idle) says since
	// when it waits; the sweeper asks it to park when that is long ago.
	idleSince atomic.Int64 // parkTick when it began to wait, plus 1; 0: no such waiter
	parkReq   atomic.Bool
}

// askPark asks the read side's waiter to park if it has waited since
// before cutoff (park.go).
func (c *pconn) askPark(cutoff int64) bool { return c.rd.askPark(cutoff) }

// parkTick counts the sweeper's rounds: a waiter notes it instead of the
// time (no clock read per wait), and has waited a whole round once it
// has moved on by two (parkCutoff).
var parkTick atomic.Int64

// parkCutoff starts a sweeper round: the waiters noted at or before the
// cutoff it returns began to wait before the last round, parkEvery ago
// at least.
func parkCutoff() int64 { return parkTick.Add(1) - 1 }

// askPark asks w's waiter to park if it has waited since before cutoff
// (parkCutoff); it reports whether it asked.
func (w *pwait) askPark(cutoff int64) bool {
	if since := w.idleSince.Load(); since == 0 || since > cutoff {
		return false
	}
	w.parkReq.Store(true)
	w.wakeUp()
	return true
}

func (w *pwait) wakeUp() {
	if w.parked.Load() && w.parked.CompareAndSwap(true, false) {
		go w.resume()
		return
	}
	if ch := w.wake.Load(); ch != nil {
		select {
		case *ch <- struct{}{}:
		default:
		}
	}
}

// waitCh is the wake channel, made on first use: a waiter makes it before
// it looks at the readiness, a waker looks for it after setting it.
func (w *pwait) waitCh() chan struct{} {
	if ch := w.wake.Load(); ch != nil {
		return *ch
	}
	ch := make(chan struct{}, 1)
	if w.wake.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *w.wake.Load()
}

// armTimer makes the deadline's timer for a waiter, when there is a
// deadline and no timer yet (set keeps an existing one in step).
func (w *pwait) armTimer() {
	if w.timed.Load() || w.dl.Load() == 0 {
		return
	}
	w.mu.Lock()
	if w.timer == nil {
		if dl := w.dl.Load(); dl != 0 {
			w.newTimer(time.Duration(dl - pollNow()))
		}
	}
	w.mu.Unlock()
}

func (w *pwait) newTimer(d time.Duration) { // under mu
	w.timer = time.AfterFunc(d, w.wakeUp)
	w.timed.Store(true)
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
	switch {
	case w.timer != nil:
		w.timer.Reset(d)
	case w.wake.Load() != nil || w.parked.Load():
		// A waiter may be waiting without a timer (it had no deadline):
		// one is made for it. Without a waiter, the next one makes it.
		w.newTimer(d)
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

// wait blocks until w is ready, its deadline passes or c closes; a
// parkable waiter also returns errParkNow when the sweeper asks it to.
func (c *pconn) wait(w *pwait, op string, parkable bool) error {
	// The deadline is looked at on the way in (a past one fails even a
	// ready socket, as Go's connections do) and after a wake that brought
	// no readiness (a timer, a deadline moved, a close): not after an
	// event, which is most wakes. Each look reads the clock.
	if w.expired() {
		return c.opErr(op, os.ErrDeadlineExceeded)
	}
	ch := w.waitCh()
	w.armTimer()
	if parkable {
		w.idleSince.Store(parkTick.Load() + 1)
	}
	var err error
	for !w.ready.Load() {
		if c.closed() {
			err = c.opErr(op, net.ErrClosed)
			break
		}
		if parkable && w.parkReq.Swap(false) {
			err = errParkNow
			break
		}
		<-ch
		if !w.ready.Load() && w.expired() {
			err = c.opErr(op, os.ErrDeadlineExceeded)
			break
		}
	}
	if parkable {
		w.idleSince.Store(0)
	}
	return err
}

// parkRead arranges for resume to run in a new goroutine at the read
// side's next wake (an event, its deadline, Close) and reports true: the
// caller's goroutine may end, holding nothing. It reports false, and
// arranges nothing, when a read is due already: the caller goes on.
// resume is written before parked is set and read after it is taken, so
// the new goroutine sees everything the parked one did.
func (c *pconn) parkRead(resume func()) bool {
	w := &c.rd
	if c.more {
		return false // the reader's own: not to be read once parked
	}
	w.resume = resume
	w.parked.Store(true)
	w.armTimer()
	due := w.ready.Load() || c.hup.Load() || c.closed() || w.expired()
	if due && w.parked.CompareAndSwap(true, false) {
		return false
	}
	return true // parked, or a wake has just taken it and started resume
}

// readable returns when a read may find data: an event came, or the last
// read filled its buffer. A deadline already past fails it, as in Go's
// own connections, data or not.
func (c *pconn) readable(parkable bool) error {
	if c.closed() {
		return c.opErr("read", net.ErrClosed)
	}
	if c.more || c.hup.Load() {
		if c.rd.expired() {
			return c.opErr("read", os.ErrDeadlineExceeded)
		}
		return nil
	}
	return c.wait(&c.rd, "read", parkable) // looks at the deadline itself
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
		n, err = sysRead(c.fd, b)
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
		if err := c.readable(false); err != nil {
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
		n, err := sysWrite(c.fd, b[done:])
		c.decref()
		if n > 0 {
			done += n
		}
		switch err {
		case nil, syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if err := c.wait(&c.wr, "write", false); err != nil {
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
