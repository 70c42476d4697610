package resp

import (
	"bytes"
	"io"
)

// The fast path: a command or a reply that is already whole in the bufio
// buffer is checked in one pass over the buffered bytes and moved with one
// write, instead of a read, a check and a write per line. Everything it
// accepts the line-by-line path accepts too, with the same result; for
// anything else (a value not yet whole, longer than the buffer, or
// malformed) it steps aside without consuming a byte, and the
// line-by-line path reads it, with its errors and its streaming.

// settled reports whether nothing of an earlier value is pending.
func (r *Reader) settled() bool {
	return r.skip == 0 && r.body == 0 && !r.bodyEnd && !r.held && len(r.inline) == 0
}

// lineAt returns the line starting at buf[pos] (through its '\n') when it is
// whole in buf and no longer than MaxLine allows. Most lines are a few
// bytes: those are looked at byte by byte, the rest with IndexByte.
func (r *Reader) lineAt(buf []byte, pos int) ([]byte, bool) {
	for i := pos; i < len(buf) && i < pos+32; i++ {
		if buf[i] == '\n' {
			return buf[pos : i+1], i+1-pos <= r.lim.MaxLine+2
		}
	}
	i := bytes.IndexByte(buf[pos:], '\n')
	if i < 0 || i+1 > r.lim.MaxLine+2 {
		return nil, false
	}
	return buf[pos : pos+i+1], true
}

// lengthAt reads the length line at buf[pos] (its type byte, then a
// length in the one spelling parseInt accepts, or -1) and returns the
// length and where the next line starts. It reports false for anything
// else, which the caller then reads the long way.
func (r *Reader) lengthAt(buf []byte, pos int) (n int64, next int, ok bool) {
	i := pos + 1
	switch {
	case i+3 < len(buf) && buf[i] == '-' && buf[i+1] == '1':
		n, i = -1, i+2
	case i < len(buf) && buf[i] == '0':
		i++
	default:
		// No leading zero: a '0' first is the case above.
		for start := i; i < len(buf) && i-start < 18 && '0' <= buf[i] && buf[i] <= '9'; i++ {
			n = n*10 + int64(buf[i]-'0')
		}
		if i == pos+1 {
			return 0, 0, false
		}
	}
	if i+1 >= len(buf) || buf[i] != '\r' || buf[i+1] != '\n' || i+2-pos > r.lim.MaxLine+2 {
		return 0, 0, false
	}
	return n, i + 2, true
}

// headerAt checks the reply line at buf[pos] as checkHeader does, bulk
// and aggregate lengths the short way.
func (r *Reader) headerAt(buf []byte, pos int) (h replyHeader, next int, ok bool) {
	if t := buf[pos]; t == '$' || t == '*' {
		if n, next, ok := r.lengthAt(buf, pos); ok {
			if t == '$' {
				return replyHeader{typ: t, n: n}, next, n <= r.lim.MaxBulk
			}
			return replyHeader{typ: t, n: n}, next, n <= r.lim.MaxCount
		}
	}
	line, ok := r.lineAt(buf, pos)
	if !ok {
		return h, 0, false
	}
	h, err := r.checkHeader(line)
	return h, pos + len(line), err == nil
}

// wholeCommand: the multibulk command at the start of buf, if all of it is
// there and ReadCommand would accept it with every argument short enough
// for Arg. It returns its length, its argument count and where its first
// argument starts.
func (r *Reader) wholeCommand(buf []byte) (n, argc, first int, ok bool) {
	count, pos, ok := r.lengthAt(buf, 0)
	if !ok || count <= 0 || count > r.lim.MaxCount || count > maxCommandArgs {
		return 0, 0, 0, false
	}
	first = pos
	hard := min(r.lim.MaxBulk, int64(r.lim.MaxArgBuf))
	for range count {
		if pos >= len(buf) || buf[pos] != '$' {
			return 0, 0, 0, false
		}
		size, next, ok := r.lengthAt(buf, pos)
		if !ok || size < 0 || size > hard || size+2 > int64(len(buf)-next) {
			return 0, 0, 0, false
		}
		end := next + int(size)
		if buf[end] != '\r' || buf[end+1] != '\n' {
			return 0, 0, 0, false
		}
		pos = end + 2
	}
	return pos, int(count), first, true
}

// wholeArg returns the argument whose header starts at r.whole[r.wpos]
// (checked by wholeCommand) and moves past it.
func (r *Reader) wholeArg() (arg, encoded []byte) {
	start := r.wpos
	arg, r.wpos = argAt(r.whole, start)
	r.args--
	return arg, r.whole[start:r.wpos]
}

// argAt returns the argument whose header starts at buf[pos], checked by
// wholeCommand, and where the next one starts.
func argAt(buf []byte, pos int) (arg []byte, next int) {
	i := pos + 1
	size := 0
	for ; buf[i] != '\r'; i++ {
		size = size*10 + int(buf[i]-'0')
	}
	return buf[i+2 : i+2+size], i + 2 + size + 2
}

// Taken returns the bytes of the current command read so far (its header
// and the arguments Arg gave) when it was read whole: what re-encoding
// them would give, since a length is only accepted in its canonical
// spelling.
func (r *Reader) Taken() ([]byte, bool) {
	if r.whole == nil {
		return nil, false
	}
	return r.whole[:r.wpos], true
}

// CopyRest writes the rest of the current command to w, as CopyArg for
// each argument left would; for a command read whole, in one write.
func (r *Reader) CopyRest(w io.Writer) error {
	if r.whole != nil && r.args > 0 {
		rest := r.whole[r.wpos:]
		r.args, r.whole = 0, nil
		if _, err := w.Write(rest); err != nil {
			return &WriteError{Err: err}
		}
		return nil
	}
	for r.args > 0 {
		if err := r.CopyArg(w); err != nil {
			return err
		}
	}
	return nil
}

// wholeValue: the reply value at the start of buf, if all of it is there
// and Forward would accept it. It returns its length and what Forward
// returns for it.
func (r *Reader) wholeValue(buf []byte) (rep Reply, ok bool) {
	due := int64(1)
	seen := false
	pos := 0
	for {
		if pos >= len(buf) {
			return rep, false
		}
		h, next, ok := r.headerAt(buf, pos)
		if !ok {
			return rep, false
		}
		if !seen && due == 1 && h.typ != '|' {
			seen = true
			rep.Type, rep.Len, rep.Line = h.typ, h.n, h.line
		}
		pos = next
		if h.bulk() {
			if h.n+2 > int64(len(buf)-pos) {
				return rep, false
			}
			end := pos + int(h.n)
			if buf[end] != '\r' || buf[end+1] != '\n' {
				return rep, false
			}
			pos = end + 2
		}
		if h.typ != '|' {
			due--
		}
		if n := h.elems(); n > 0 {
			if n > int64(len(buf)) {
				return rep, false // not all here (and due cannot overflow)
			}
			due += n
			if due > int64(len(buf)-pos) {
				return rep, false // each value takes 3 bytes at least: not all here
			}
		} else if due == 0 {
			rep.N = int64(pos)
			return rep, true
		}
	}
}

// Runs: a caller that moves many whole values at once (the proxy, for a
// pipeline of plain commands and their replies) looks at the buffered
// bytes with Pending, checks one value after the other with CommandAt or
// ValueAt, and takes the ones it moved with Consume. Each check accepts
// exactly what ReadCommand or Forward would read whole, with the same
// result.

// Pending returns the buffered bytes when nothing of an earlier value is
// pending (nil otherwise, or when nothing is buffered). They are valid
// until the next read.
func (r *Reader) Pending() []byte {
	n := r.br.Buffered()
	if n == 0 || r.args > 0 || !r.settled() || r.lineByLine {
		return nil
	}
	buf, _ := r.br.Peek(n)
	return buf
}

// CommandAt checks the command at buf[off:] (buf from Pending): when it
// is whole there and ReadCommand would read it whole, it returns its
// length and its name, as Arg would give it.
func (r *Reader) CommandAt(buf []byte, off int) (n int, name []byte, ok bool) {
	if off >= len(buf) || buf[off] != '*' {
		return 0, nil, false
	}
	n, _, first, ok := r.wholeCommand(buf[off:])
	if !ok {
		return 0, nil, false
	}
	name, _ = argAt(buf, off+first)
	return n, name, true
}

// ValueAt checks the reply value at buf[off:] (buf from Pending): when it
// is whole there it returns what Forward would return for it (N its
// length), whatever its type.
func (r *Reader) ValueAt(buf []byte, off int) (Reply, bool) {
	if off >= len(buf) {
		return Reply{}, false
	}
	return r.wholeValue(buf[off:])
}

// Consume takes the first n bytes of Pending's, which the caller has
// checked and moved.
func (r *Reader) Consume(n int) {
	r.br.Discard(n)
	r.whole, r.wpos = nil, 0
}
