package resp

import (
	"io"
	"slices"
)

// The in-memory side of the reader, for the tests: the data path never
// builds a value, Forward streams it.

// maxValueDepth bounds the nesting ReadValue builds (Forward needs none).
const maxValueDepth = 256

// Next reads the next value's header. For a bulk value the payload
// follows: read it with Body, or leave it to be drained by the next call.
// Elements of an aggregate are read with further calls to Next.
func (r *Reader) Next() (replyHeader, error) {
	if err := r.settle(); err != nil {
		return replyHeader{}, err
	}
	line, err := r.readLine("too big reply line")
	if err != nil {
		return replyHeader{}, err
	}
	return r.parseHeader(line)
}

// Body returns the payload of the bulk value Next just returned, as a
// stream valid until the next call. Whatever is not read is drained.
func (r *Reader) Body() io.Reader { return bodyReader{r} }

// bodyReader streams the current bulk payload (see Body).
type bodyReader struct{ r *Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	r := b.r
	if r.body == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.body {
		p = p[:r.body]
	}
	n, err := r.br.Read(p)
	r.body -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Value is a whole RESP value in memory.
type Value struct {
	Type  byte
	Str   []byte  // + - , ( $ ! = # and the text of :
	Int   int64   // : and the length of $ (-1 for null)
	Null  bool    // _ $-1 *-1
	Elems []Value // * % ~ > (pairs flattened for % and |)
	Attrs []Value // a | preceding the value, flattened
}

// ReadValue reads one complete value into memory, at most maxValueDepth
// deep.
func (r *Reader) ReadValue() (Value, error) { return r.readValue(0) }

func (r *Reader) readValue(depth int) (Value, error) {
	if depth > maxValueDepth {
		return Value{}, protoErr("reply nesting too deep")
	}
	h, err := r.Next()
	if err != nil {
		return Value{}, err
	}
	// Attributes before the value, in a loop: a recursion at the same
	// depth would let a stream of "|0\r\n" grow the goroutine stack
	// without bound, out of maxValueDepth's reach.
	var attrs []Value
	for h.typ == '|' {
		for i := int64(0); i < h.elems(); i++ {
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
	v := Value{Type: h.typ, Int: h.n, Attrs: attrs, Null: h.typ == '_' || h.n == -1 && (h.typ == '$' || h.typ == '*')}
	switch {
	case h.typ == '*' || h.typ == '%' || h.typ == '~' || h.typ == '>':
		v.Int = 0
		for i := int64(0); i < h.elems(); i++ {
			e, err := r.readValue(depth + 1)
			if err != nil {
				// The stream ending between two elements cuts this
				// value: not the clean io.EOF of an element's own Next.
				return Value{}, unexpected(err)
			}
			v.Elems = append(v.Elems, e)
		}
	case r.bodyEnd:
		if v.Str, err = readBody(r.Body(), h.n); err != nil {
			return Value{}, err
		}
		if err := r.readCRLF(nil); err != nil {
			return Value{}, err
		}
	default:
		v.Str = append([]byte(nil), h.line...)
		if h.typ != ':' && h.typ != '$' { // $-1 keeps Int -1, as documented
			v.Int = 0
		}
	}
	return v, nil
}

// readBody reads an n-byte payload, growing the slice with the data that
// arrives rather than with the declared length: "$536870912\r\n" followed
// by nothing must not allocate 512 MiB.
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
