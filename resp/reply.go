package resp

import (
	"io"
	"math"
)

// replyHeader is one RESP value's first line.
type replyHeader struct {
	typ byte // the type byte: + - : $ * _ , # ! = ( % ~ > |
	// n is the payload length of $ ! =, the element count of * ~ >, the
	// pair count of % |, and the value of :. It is -1 for a RESP2 null
	// ($-1, *-1).
	n int64
	// line is the content of a one-line value (+ - : _ , # () without its
	// type byte and CRLF; valid until the next read.
	line []byte
}

// elems is the number of values that follow h: pairs count twice.
func (h replyHeader) elems() int64 {
	if h.n <= 0 {
		return 0
	}
	switch h.typ {
	case '*', '~', '>':
		return h.n
	case '%', '|':
		return 2 * min(h.n, math.MaxInt64/2) // never overflows
	}
	return 0
}

// parseHeader checks one reply line. A bulk header leaves its payload
// pending, to be copied or drained by the caller.
func (r *Reader) parseHeader(line []byte) (replyHeader, error) {
	h, err := r.checkHeader(line)
	if err == nil && h.bulk() {
		r.body, r.bodyEnd = h.n, true
	}
	return h, err
}

// bulk reports whether a payload of h.n bytes and a CRLF follow h.
func (h replyHeader) bulk() bool {
	return (h.typ == '$' || h.typ == '!' || h.typ == '=') && h.n >= 0
}

// checkHeader checks one reply line.
func (r *Reader) checkHeader(line []byte) (h replyHeader, err error) {
	content, ok := header(line)
	if !ok {
		return replyHeader{}, protoErr("expected '\\r\\n' at end of line")
	}
	h = replyHeader{typ: line[0], line: content}
	switch h.typ {
	case '+', '-', ',', '(':
		return h, nil
	case ':':
		if h.n, ok = parseInt(content); !ok {
			return replyHeader{}, protoErr("invalid integer")
		}
		return h, nil
	case '#':
		if len(content) != 1 || (content[0] != 't' && content[0] != 'f') {
			return replyHeader{}, protoErr("invalid boolean")
		}
		return h, nil
	case '_':
		if len(content) != 0 {
			return replyHeader{}, protoErr("invalid null")
		}
		return h, nil
	case '$', '!', '=':
		h.line = nil
		n, ok := parseInt(content)
		if ok && n == -1 && h.typ == '$' {
			h.n = -1
			return h, nil
		}
		if !ok || n < 0 || n > r.lim.MaxBulk {
			return replyHeader{}, protoErr("invalid bulk length")
		}
		h.n = n
		return h, nil
	case '*', '%', '~', '>', '|':
		h.line = nil
		n, ok := parseInt(content)
		if ok && n == -1 && h.typ == '*' {
			h.n = -1
			return h, nil
		}
		if !ok || n < 0 || n > r.lim.MaxCount {
			return replyHeader{}, protoErr("invalid multibulk length")
		}
		h.n = n
		return h, nil
	}
	return replyHeader{}, protoErr("unknown type byte " + quoteByte(line[0]))
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	const hex = "0123456789abcdef"
	return "'\\x" + string([]byte{hex[c>>4], hex[c&15]}) + "'"
}

// Reply describes the value Forward moved.
type Reply struct {
	Type byte   // the top-level type, after any attributes
	Len  int64  // the top-level length, count or integer (-1 for $-1, *-1)
	Line []byte // a one-line top-level value's content; valid until the next call
	N    int64  // bytes consumed; N > 0 with an error means the value was cut
}

// IsError reports whether the reply is an error (- or !).
func (rp Reply) IsError() bool { return rp.Type == '-' || rp.Type == '!' }

// Forward reads one complete value (attributes, nesting and all) and
// writes its exact bytes to w as they arrive; nil w skips the value.
// Payloads pass through the bufio.Reader's buffer, and nesting costs
// nothing: memory stays constant whatever the size or depth of the value.
// A failure to write is a *WriteError.
func (r *Reader) Forward(w io.Writer) (Reply, error) {
	if err := r.settle(); err != nil {
		return Reply{}, err
	}
	// Peek fills an empty buffer, as reading the first line would: the
	// value may then be whole in it. A one-line value moves in one write
	// either way: the long way is the shorter for it.
	b, err := r.br.Peek(1)
	if err != nil {
		return Reply{}, err
	}
	if b[0] != '+' && b[0] != ':' && !r.lineByLine {
		if rep, ok, err := r.forwardWhole(w); ok {
			return rep, err
		}
	}
	return r.forwardLines(w)
}

// forwardWhole is Forward for a value whole in the buffer (ok), in one
// write; it consumes nothing when the value is not whole there.
func (r *Reader) forwardWhole(w io.Writer) (Reply, bool, error) {
	buf, _ := r.br.Peek(r.br.Buffered())
	rep, ok := r.wholeValue(buf)
	if !ok {
		return rep, false, nil
	}
	r.br.Discard(int(rep.N))
	if w != nil {
		if _, err := w.Write(buf[:rep.N]); err != nil {
			return rep, true, &WriteError{Err: err}
		}
	}
	return rep, true, nil
}

// forwardLines is Forward line by line, for any value.
func (r *Reader) forwardLines(w io.Writer) (Reply, error) {
	var rep Reply
	// due counts the values still to come: an aggregate adds its
	// elements, an attribute its keys and values (it precedes a value
	// and is not one itself). A count, not a stack, so that no depth of
	// nesting needs memory. Until the top-level value is seen, due is 1
	// exactly between top-level attributes: inside one, its own
	// elements are due as well.
	due := int64(1)
	seen := false
	for {
		line, err := r.readLine("too big reply line")
		if err != nil {
			if err == io.EOF && rep.N > 0 {
				err = io.ErrUnexpectedEOF
			}
			return rep, err
		}
		rep.N += int64(len(line))
		h, err := r.checkHeader(line) // parseHeader, without a call more per line
		if err != nil {
			return rep, err
		}
		if h.bulk() {
			r.body, r.bodyEnd = h.n, true
		}
		if !seen && due == 1 && h.typ != '|' {
			seen = true
			rep.Type, rep.Len, rep.Line = h.typ, h.n, h.line
		}
		if w != nil {
			if _, err := w.Write(line); err != nil {
				return rep, &WriteError{Err: err}
			}
		}
		if r.bodyEnd {
			if err := r.copyBody(w, r.body); err != nil {
				return rep, err
			}
			if err := r.readCRLF(w); err != nil {
				return rep, err
			}
			rep.N += h.n + 2
		}
		if h.typ != '|' {
			due--
		}
		if n := h.elems(); n > 0 {
			if n > math.MaxInt64-due {
				return rep, protoErr("too many elements in reply")
			}
			due += n
		} else if due == 0 {
			return rep, nil
		}
	}
}

// ForwardHeader reads the header of the next value and writes it to w as
// it is. For an array of n elements (Type '*', Len n >= 0) the elements
// are left to read, one Forward each: that is how a caller learns the
// outcome of each. Any other value (an attribute first, a null, an
// error...) is forwarded whole, as Forward does, and Len is -1.
func (r *Reader) ForwardHeader(w io.Writer) (Reply, error) {
	if err := r.settle(); err != nil {
		return Reply{}, err
	}
	b, err := r.br.Peek(1)
	if err != nil {
		return Reply{}, err
	}
	if b[0] != '*' {
		rep, err := r.Forward(w)
		rep.Len = -1
		return rep, err
	}
	line, err := r.readLine("too big reply line")
	if err != nil {
		return Reply{}, err
	}
	h, err := r.parseHeader(line)
	if err != nil {
		return Reply{}, err
	}
	rep := Reply{Type: h.typ, Len: h.n, N: int64(len(line))}
	if w != nil {
		if _, err := w.Write(line); err != nil {
			return rep, &WriteError{Err: err}
		}
	}
	return rep, nil
}
