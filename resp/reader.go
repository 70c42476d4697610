package resp

import (
	"bufio"
	"errors"
	"io"
	"sync"
)

// Limits bound what a Reader accepts, like bufio.Scanner's maximum token
// size. A value over a limit is a *ProtocolError, never an allocation.
type Limits struct {
	MaxBulk   int64 // longest bulk string ($, !, =); Redis: 512 MiB
	MaxCount  int64 // most elements in one aggregate or command; Redis: 2^31-1
	MaxLine   int   // longest line (inline command, header, simple string); Redis: 64 KiB
	MaxArgBuf int   // longest argument Arg returns whole (others stream)

	// Unauthenticated selects Redis's wording for the two limits it lowers
	// before a client has authenticated ("unauthenticated bulk length").
	Unauthenticated bool
}

// Redis 7's limits, and the lower ones it applies before authentication.
var (
	DefaultLimits = Limits{
		MaxBulk:   512 << 20,
		MaxCount:  1<<31 - 1,
		MaxLine:   64 << 10,
		MaxArgBuf: 64 << 10,
	}
	UnauthenticatedLimits = Limits{
		MaxBulk:         16 << 10,
		MaxCount:        10,
		MaxLine:         64 << 10,
		MaxArgBuf:       16 << 10,
		Unauthenticated: true,
	}
)

// ProtocolError is malformed input. Its text is Redis's own wording, so a
// proxy can answer it as Redis does: "-ERR " + err.Error().
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Reason }

func protoErr(reason string) error { return &ProtocolError{Reason: reason} }

// ErrArgTooLong is returned by Arg for an argument longer than
// Limits.MaxArgBuf; the argument is still unread and can be streamed with
// CopyArg or skipped.
var ErrArgTooLong = errors.New("resp: argument too long to inspect")

// errNoArg is returned when a command has no arguments left.
var errNoArg = errors.New("resp: no argument left in command")

// Reader reads RESP values one at a time from a bufio.Reader.
//
// Slices returned by its methods point into the bufio.Reader's buffer (or
// the Reader's own scratch space) and are valid only until the next call,
// as with bufio.Reader.ReadSlice. A bulk payload that is not consumed is
// drained automatically before the next value is read.
type Reader struct {
	br  *bufio.Reader
	lim Limits

	skip    int   // bytes of a peeked argument to discard before the next read
	body    int64 // unread payload bytes of the current bulk
	bodyEnd bool  // the current bulk's CRLF is still unread

	args    int      // arguments left in the current command
	held    bool     // Arg refused the current argument (ErrArgTooLong): its header is read, not its payload
	heldLen int64    // that argument's payload length
	inline  [][]byte // the current inline command's arguments (left to read)
	inlines [][]byte // inline's backing array: inline is sliced from the front
	line    []byte   // scratch for lines longer than the bufio buffer
	scratch []byte   // scratch for inline unquoting and long arguments

	// whole is the current command when it was read whole (whole.go):
	// already taken from the buffer, its arguments read from here, the
	// next at wpos, until the next ReadCommand (or SkipArgs).
	whole []byte
	wpos  int

	lineByLine bool // tests: never the fast path, to check one against the other
}

// NewReader returns a Reader over br with DefaultLimits.
func NewReader(br *bufio.Reader) *Reader {
	return &Reader{br: br, lim: DefaultLimits}
}

// SetLimits replaces the limits for the values read from now on.
func (r *Reader) SetLimits(l Limits) { r.lim = l }

// Buffered reports how many bytes can be read without blocking. A proxy
// flushes its output when this is 0: nothing more of the batch is waiting.
// Bytes of the current value or argument that are still to be drained
// (a payload left unread) do not count: they are not a next value.
func (r *Reader) Buffered() int {
	if r.br == nil {
		return 0 // detached
	}
	n := int64(r.br.Buffered() - r.skip)
	pending := r.body
	if r.bodyEnd {
		pending += 2
	}
	if r.held {
		pending += r.heldLen + 2
	}
	if r.whole != nil {
		n += int64(len(r.whole) - r.wpos) // taken from br, not yet read
	}
	if pending >= n {
		return 0
	}
	return int(n - pending)
}

// Reset discards all state and reads from br from now on.
func (r *Reader) Reset(br *bufio.Reader) {
	r.br = br
	r.skip, r.body, r.bodyEnd, r.args, r.inline = 0, 0, false, 0, nil
	r.held, r.heldLen = false, 0
	r.whole = nil
}

// settle finishes what the previous call left: a peeked argument, an
// argument Arg refused (ErrArgTooLong) and nobody streamed, an unread bulk
// payload and its CRLF.
func (r *Reader) settle() error {
	if r.held {
		r.held = false
		r.args--
		r.body, r.bodyEnd = r.heldLen, true
	}
	if r.skip > 0 {
		n := r.skip
		r.skip = 0
		if _, err := r.br.Discard(n); err != nil {
			return err
		}
	}
	if r.body > 0 {
		if err := r.copyBody(nil, r.body); err != nil {
			return err
		}
	}
	if r.bodyEnd {
		return r.readCRLF(nil)
	}
	return nil
}

// readLine reads one line ending in "\n" and returns it whole (with its
// line ending). Lines longer than MaxLine give tooLong.
func (r *Reader) readLine(tooLong string) ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == nil {
		if len(line) > r.lim.MaxLine+2 {
			return nil, protoErr(tooLong)
		}
		return line, nil
	}
	if err != bufio.ErrBufferFull {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	// Longer than the buffer: gather into scratch, bounded by MaxLine.
	r.line = append(r.line[:0], line...)
	for {
		if len(r.line) > r.lim.MaxLine+2 {
			return nil, protoErr(tooLong)
		}
		line, err = r.br.ReadSlice('\n')
		r.line = append(r.line, line...)
		switch err {
		case nil:
			if len(r.line) > r.lim.MaxLine+2 {
				return nil, protoErr(tooLong)
			}
			return r.line, nil
		case bufio.ErrBufferFull:
		case io.EOF:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// header splits a RESP line into its content, requiring "\r\n".
func header(line []byte) ([]byte, bool) {
	n := len(line)
	if n < 3 || line[n-2] != '\r' {
		return nil, false
	}
	return line[1 : n-2], true
}

// parseInt parses a decimal int64 with an optional '-', rejecting empty
// input, other characters and overflow.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	// Like Redis's string2ll: no sign but '-', no leading zero, no "-0".
	if len(b) == 0 || b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<63-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if !neg && n > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// copyBody moves n payload bytes from the buffer to w (nil: discard)
// through the bufio.Reader's own buffer: a constant few KiB whatever n is.
func (r *Reader) copyBody(w io.Writer, n int64) error {
	for n > 0 {
		if r.br.Buffered() == 0 && w != nil && n > int64(r.br.Size()) {
			return r.copyBig(w, n)
		}
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				r.body = n
				return err
			}
		}
		k := r.br.Buffered()
		if int64(k) > n {
			k = int(n)
		}
		if w != nil {
			p, _ := r.br.Peek(k)
			if _, err := w.Write(p); err != nil {
				r.body = n
				return &WriteError{Err: err}
			}
		}
		r.br.Discard(k)
		n -= int64(k)
	}
	r.body = 0
	return nil
}

// bigCopy is the size of the pooled transfer buffer through which
// copyBody moves a payload larger than the bufio buffer: reads
// and writes then bypass both bufio buffers (they do for a buffer larger
// than theirs), which cuts the system calls for a 1 MiB value from about
// 500 to about 70. Memory stays constant: one buffer per copy in progress.
const bigCopy = 32 << 10

var copyPool = sync.Pool{New: func() any { b := make([]byte, bigCopy); return &b }}

// copyBig is copyBody for a large payload, once the bufio buffer is empty.
func (r *Reader) copyBig(w io.Writer, n int64) error {
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	buf := *bp
	for n > 0 {
		k, err := r.br.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				r.body = n - int64(k)
				return &WriteError{Err: werr}
			}
			n -= int64(k)
		}
		if err != nil && n > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.body = n
			return err
		}
	}
	r.body = 0
	return nil
}

// readCRLF consumes the "\r\n" after a bulk payload, copying it to w.
func (r *Reader) readCRLF(w io.Writer) error {
	p, err := r.br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if p[0] != '\r' || p[1] != '\n' {
		return protoErr("expected '\\r\\n' after bulk data")
	}
	if w != nil {
		if _, err := w.Write(p); err != nil {
			return &WriteError{Err: err}
		}
	}
	r.br.Discard(2)
	r.bodyEnd = false
	return nil
}

// WriteError wraps a failure to write to the destination of Forward or
// CopyArg, so that a proxy can tell which side of it failed.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "resp: write: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }
