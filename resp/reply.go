package resp

import (
	"io"
	"math"
	"slices"
)

// Header is one RESP value's first line, as Next returns it.
type Header struct {
	// Type is the type byte: + - : $ * _ , # ! = ( % ~ > |
	Type byte
	// Len is the payload length of $ ! =, the element count of * ~ >, the
	// pair count of % |, and the value of :. It is -1 for a RESP2 null
	// ($-1, *-1).
	Len int64
	// Line is the content of a one-line value (+ - : _ , # () without its
	// type byte and CRLF; valid until the next call.
	Line []byte
}

// IsAggregate reports whether h is followed by elements (* % ~ > |).
func (h Header) IsAggregate() bool {
	switch h.Type {
	case '*', '%', '~', '>', '|':
		return true
	}
	return false
}

// Elems is the number of values that follow h: pairs count twice.
func (h Header) Elems() int64 {
	if !h.IsAggregate() || h.Len <= 0 {
		return 0
	}
	if h.Type == '%' || h.Type == '|' {
		return 2 * min(h.Len, math.MaxInt64/2) // never overflows
	}
	return h.Len
}

// IsError reports whether h is an error reply (- or !).
func (h Header) IsError() bool { return h.Type == '-' || h.Type == '!' }

// parseHeader checks one reply line. A bulk header leaves its payload
// pending, to be streamed with Body or drained by the next call.
func (r *Reader) parseHeader(line []byte) (Header, error) {
	content, ok := header(line)
	if !ok {
		return Header{}, protoErr("expected '\\r\\n' at end of line")
	}
	h := Header{Type: line[0], Line: content}
	switch h.Type {
	case '+', '-', ',', '(':
		return h, nil
	case ':':
		if h.Len, ok = parseInt(content); !ok {
			return Header{}, protoErr("invalid integer")
		}
		return h, nil
	case '#':
		if len(content) != 1 || (content[0] != 't' && content[0] != 'f') {
			return Header{}, protoErr("invalid boolean")
		}
		return h, nil
	case '_':
		if len(content) != 0 {
			return Header{}, protoErr("invalid null")
		}
		return h, nil
	case '$', '!', '=':
		h.Line = nil
		n, ok := parseInt(content)
		if ok && n == -1 && h.Type == '$' {
			h.Len = -1
			return h, nil
		}
		if !ok || n < 0 || n > r.lim.MaxBulk {
			return Header{}, protoErr("invalid bulk length")
		}
		h.Len, r.body, r.bodyEnd = n, n, true
		return h, nil
	case '*', '%', '~', '>', '|':
		h.Line = nil
		n, ok := parseInt(content)
		if ok && n == -1 && h.Type == '*' {
			h.Len = -1
			return h, nil
		}
		if !ok || n < 0 || n > r.lim.MaxCount {
			return Header{}, protoErr("invalid multibulk length")
		}
		h.Len = n
		return h, nil
	}
	return Header{}, protoErr("unknown type byte " + quoteByte(line[0]))
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	const hex = "0123456789abcdef"
	return "'\\x" + string([]byte{hex[c>>4], hex[c&15]}) + "'"
}

// Next reads the next value's header. For a bulk value the payload
// follows: read it with Body, or leave it to be drained by the next call.
// Elements of an aggregate are read with further calls to Next.
func (r *Reader) Next() (Header, error) {
	if err := r.settle(); err != nil {
		return Header{}, err
	}
	line, err := r.readLine("too big reply line")
	if err != nil {
		return Header{}, err
	}
	return r.parseHeader(line)
}

// Reply describes the value Forward moved.
type Reply struct {
	Type byte   // the top-level type, after any attributes
	Len  int64  // the top-level Header.Len
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
	var rep Reply
	if err := r.settle(); err != nil {
		return rep, err
	}
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
		h, err := r.parseHeader(line)
		if err != nil {
			return rep, err
		}
		if !seen && due == 1 && h.Type != '|' {
			seen = true
			rep.Type, rep.Len, rep.Line = h.Type, h.Len, h.Line
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
			rep.N += h.Len + 2
		}
		if h.Type != '|' {
			due--
		}
		if n := h.Elems(); n > 0 {
			if n > math.MaxInt64-due {
				return rep, protoErr("too many elements in reply")
			}
			due += n
		} else if due == 0 {
			return rep, nil
		}
	}
}

// Value is a whole RESP value in memory, for tests, tools and the proxy's
// own small exchanges (AUTH, PING). The data path never builds one.
type Value struct {
	Type  byte
	Str   []byte  // + - , ( $ ! = # and the text of :
	Int   int64   // : and the length of $ (-1 for null)
	Null  bool    // _ $-1 *-1
	Elems []Value // * % ~ > (pairs flattened for % and |)
	Attrs []Value // a | preceding the value, flattened
}

// ReadValue reads one complete value into memory, within the limits.
func (r *Reader) ReadValue() (Value, error) { return r.readValue(0) }

func (r *Reader) readValue(depth int) (Value, error) {
	if depth > r.lim.MaxDepth {
		return Value{}, protoErr("reply nesting too deep")
	}
	h, err := r.Next()
	if err != nil {
		return Value{}, err
	}
	// Attributes before the value, in a loop: a recursion at the same
	// depth let a stream of "|0\r\n" grow the goroutine stack without
	// bound, past MaxDepth's reach.
	var attrs []Value
	for h.Type == '|' {
		for i := int64(0); i < h.Elems(); i++ {
			a, err := r.readValue(depth + 1)
			if err != nil {
				return Value{}, unexpected(err)
			}
			attrs = append(attrs, a)
		}
		if h, err = r.Next(); err != nil {
			return Value{}, unexpected(err)
		}
	}
	v := Value{Type: h.Type, Int: h.Len, Attrs: attrs, Null: h.Type == '_' || h.Len == -1 && (h.Type == '$' || h.Type == '*')}
	switch {
	case h.IsAggregate():
		v.Int = 0
		for i := int64(0); i < h.Elems(); i++ {
			e, err := r.readValue(depth + 1)
			if err != nil {
				// The stream ending between two elements cuts this
				// value: not the clean io.EOF of an element's own Next.
				return Value{}, unexpected(err)
			}
			v.Elems = append(v.Elems, e)
		}
	case r.bodyEnd:
		if v.Str, err = readBody(r.Body(), h.Len); err != nil {
			return Value{}, err
		}
		if err := r.readCRLF(nil); err != nil {
			return Value{}, err
		}
	default:
		v.Str = append([]byte(nil), h.Line...)
		if h.Type != ':' && h.Type != '$' { // $-1 keeps Int -1, as documented
			v.Int = 0
		}
	}
	return v, nil
}

// readBody reads an n-byte payload, growing the slice with the data that
// arrives rather than with the declared length: "$536870912\r\n" followed
// by nothing must not allocate 512 MiB (it used to, at once).
func readBody(src io.Reader, n int64) ([]byte, error) {
	b := make([]byte, 0, min(n, 4096))
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, int(min(n-int64(len(b)), int64(len(b)))))
		}
		end := cap(b)
		if left := n - int64(len(b)); int64(end-len(b)) > left {
			end = len(b) + int(left)
		}
		k, err := src.Read(b[len(b):end])
		b = b[:len(b)+k]
		if err != nil && int64(len(b)) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b, nil
}
