package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// Idle connections hold no buffer. A session takes its bufio buffers from
// these pools for the length of a batch and gives them back when the batch
// is over; while it waits for the next one it holds nothing: it waits for
// the socket to be readable and reads what arrived into a pooled slab, which
// the next bufio.Reader then consumes. This is how thousands of idle
// clients, each with a goroutine pair and an uplink connection, cost a few
// KiB each.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, ioBufSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, ioBufSize) }}
	slabPool   = sync.Pool{New: func() any { b := make([]byte, ioBufSize); return &b }}
)

func getReader(r io.Reader) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

func getWriter(w io.Writer) *bufio.Writer {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writerPool.Put(bw)
}

// sockWait waits for a plain TCP socket to be readable, holding no
// buffer, then reads what is there into a pooled slab. It is made once per
// connection so that a wait allocates nothing.
type sockWait struct {
	pc   *pconn // served by the proxy's poller (poll_linux.go)
	raw  syscall.RawConn
	fn   func(uintptr) bool
	slab *[]byte
	n    int
	err  error
}

// newSockWait returns nil for anything but a plain TCP connection (a TLS
// connection keeps its own buffers: it has state of its own).
func newSockWait(c net.Conn) *sockWait {
	if pc, ok := c.(*pconn); ok {
		return &sockWait{pc: pc}
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &sockWait{raw: raw}
	w.fn = w.ready
	return w
}

func (w *sockWait) ready(fd uintptr) bool {
	w.slab = slabPool.Get().(*[]byte)
	for {
		w.n, w.err = syscall.Read(int(fd), *w.slab)
		if w.err != syscall.EINTR {
			break
		}
	}
	if w.err == syscall.EAGAIN {
		slabPool.Put(w.slab)
		w.slab = nil
		return false // not readable yet: wait, holding nothing
	}
	return true
}

// pollRead is ready for a socket of the proxy's poller: it waits for an
// event without a buffer, then reads once. A read that finds nothing (the
// event's data was taken by the read before) leaves w.slab nil, and
// returns errNothing: the caller waits again (or parks).
func (w *sockWait) pollRead(parkable bool) error {
	if err := w.pc.readable(parkable); err != nil {
		return err
	}
	w.slab = slabPool.Get().(*[]byte)
	w.n, w.err = w.pc.sysRead(*w.slab)
	switch w.err.(type) {
	case nil:
		return nil
	case *net.OpError: // closed
		slabPool.Put(w.slab)
		w.slab = nil
		return w.err
	}
	if w.err == syscall.EAGAIN {
		slabPool.Put(w.slab)
		w.slab = nil
		return errNothing
	}
	return nil
}

var errNothing = errors.New("nothing to read")

// preload is the source of a bufio.Reader taken after an idle wait: first
// the bytes that ended the wait, then the connection itself.
type preload struct {
	slab *[]byte
	buf  []byte
	next io.Reader
}

func (p *preload) set(slab *[]byte, n int, next io.Reader) {
	p.slab, p.buf, p.next = slab, (*slab)[:n], next
}

func (p *preload) Read(b []byte) (int, error) {
	if p.slab == nil {
		return p.next.Read(b)
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	if len(p.buf) == 0 {
		slabPool.Put(p.slab)
		p.slab, p.buf = nil, nil
	}
	return n, nil
}

// release gives back a slab not yet consumed (the session ended).
func (p *preload) release() {
	if p.slab != nil {
		slabPool.Put(p.slab)
		p.slab, p.buf = nil, nil
	}
}

// read waits until the socket is readable, then reads what is there into
// a pooled slab. Deadlines set on the connection apply; on one, timedOut
// decides: nil waits on (it has moved the deadline), an error ends the wait.
// With resume (a socket of the proxy's poller), a wait the sweeper finds
// long (park.go) ends the goroutine: read returns errParked, and resume
// runs in a new goroutine at the socket's next event, deadline or close.
func (w *sockWait) read(timedOut func() error, resume func()) (*[]byte, int, error) {
	for {
		var err error
		if w.pc != nil {
			err = w.pollRead(resume != nil)
			if err == errParkNow {
				if w.pc.parkRead(resume) {
					return nil, 0, errParked
				}
				continue
			}
		} else {
			err = w.raw.Read(w.fn)
		}
		slab, n, rerr := w.slab, w.n, w.err
		w.slab = nil
		switch {
		case err == errNothing:
			continue
		case err != nil:
			if slab != nil {
				slabPool.Put(slab)
			}
			if isTimeout(err) {
				if terr := timedOut(); terr != nil {
					return nil, 0, terr
				}
				continue
			}
			return nil, 0, err
		case rerr != nil:
			slabPool.Put(slab)
			return nil, 0, &net.OpError{Op: "read", Net: "tcp", Err: rerr}
		case n == 0:
			slabPool.Put(slab)
			return nil, 0, io.EOF
		}
		return slab, n, nil
	}
}
