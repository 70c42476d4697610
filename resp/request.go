package resp

import (
	"bytes"
	"io"
	"strconv"
)

// maxCommandArgs is Redis's absolute limit on a multibulk count (INT_MAX),
// whatever the Limits say.
const maxCommandArgs = 1<<31 - 1

// ReadCommand starts the next client command and returns its argument
// count, the command name included (always at least 1). Any argument of
// the previous command left unread is skipped first. A request that does
// not start with '*' is an inline command, split as Redis splits it; empty
// commands ("*0", "*-1", blank lines) are skipped, as Redis skips them. An
// inline request with a NUL byte is never run: as in Redis, its input is
// dropped until more than MaxLine bytes give "too big inline request".
// The arguments are then read in order with Arg, CopyArg or SkipArgs.
//
// After an error from any of these, other than ErrArgTooLong and a
// *WriteError from CopyArg, the position in the stream is lost: answer a
// *ProtocolError ("-ERR " + its text) and close, as Redis does.
func (r *Reader) ReadCommand() (int, error) {
	for {
		if err := r.SkipArgs(); err != nil {
			return 0, err
		}
		b, err := r.br.Peek(1)
		if err != nil {
			return 0, err
		}
		if b[0] == '*' && r.settled() && !r.lineByLine {
			buf, _ := r.br.Peek(r.br.Buffered())
			if n, argc, first, ok := r.wholeCommand(buf); ok {
				r.br.Discard(n)
				r.whole, r.wpos, r.args = buf[:n], first, argc
				return argc, nil
			}
		}
		if b[0] != '*' {
			n, err := r.readInline()
			if err != nil || n > 0 {
				return n, err
			}
			continue
		}
		line, err := r.readLine("too big mbulk count string")
		if err != nil {
			return 0, unexpected(err)
		}
		content, ok := header(line)
		var n int64
		if ok {
			n, ok = parseInt(content)
		}
		switch {
		case !ok || n > maxCommandArgs:
			return 0, protoErr("invalid multibulk length")
		case n > r.lim.MaxCount && r.lim.Unauthenticated:
			return 0, protoErr("unauthenticated multibulk length")
		case n > r.lim.MaxCount:
			return 0, protoErr("invalid multibulk length")
		case n <= 0:
			continue
		}
		r.args = int(n)
		return int(n), nil
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Args reports how many arguments of the current command are left.
func (r *Reader) Args() int { return r.args }

// Arg reads the current command's next argument whole. The slice is valid
// until the next call. An argument longer than Limits.MaxArgBuf gives
// ErrArgTooLong and stays the current argument, unread: CopyArg streams it
// (its "$<len>" header included), SkipArgs or the next ReadCommand skips
// it, and Arg gives ErrArgTooLong again.
func (r *Reader) Arg() ([]byte, error) {
	if r.args == 0 {
		return nil, errNoArg
	}
	if r.whole != nil {
		a, _ := r.wholeArg()
		return a, nil
	}
	if r.held {
		return nil, ErrArgTooLong
	}
	if err := r.settle(); err != nil {
		return nil, err
	}
	r.args--
	if len(r.inline) > 0 {
		a := r.inline[0]
		r.inline = r.inline[1:]
		return a, nil
	}
	n, _, err := r.bulkHeader()
	if err != nil {
		return nil, err
	}
	if n > int64(r.lim.MaxArgBuf) {
		// Keep it current, as ErrArgTooLong promises: the proxy can still
		// forward it with CopyArg, and a CopyArg after ErrArgTooLong
		// sends this argument, not the next one.
		r.args++
		r.held, r.heldLen = true, n
		return nil, ErrArgTooLong
	}
	if int(n)+2 <= r.br.Size() {
		p, err := r.br.Peek(int(n) + 2)
		if err != nil {
			return nil, unexpected(err)
		}
		if p[n] != '\r' || p[n+1] != '\n' {
			return nil, protoErr("expected '\\r\\n' after bulk data")
		}
		r.skip = int(n) + 2
		return p[:n], nil
	}
	if cap(r.scratch) < int(n) {
		r.scratch = make([]byte, n)
	}
	buf := r.scratch[:n]
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return nil, unexpected(err)
	}
	r.bodyEnd = true
	if err := r.readCRLF(nil); err != nil {
		return nil, err
	}
	return buf, nil
}

// CopyArg writes the current command's next argument to w as a RESP bulk
// string, streaming its payload through the buffer: a 512 MiB argument
// costs no more memory than a small one. Inline arguments are encoded.
func (r *Reader) CopyArg(w io.Writer) error {
	if r.args == 0 {
		return errNoArg
	}
	if r.whole != nil {
		_, enc := r.wholeArg()
		if _, err := w.Write(enc); err != nil {
			return &WriteError{Err: err}
		}
		return nil
	}
	var line []byte
	if r.held {
		// Arg refused this argument (ErrArgTooLong) after reading its
		// header: write the header again. parseInt accepts only the
		// canonical spelling of a length, so these are the bytes that
		// came in.
		r.held = false
		r.args--
		r.line = append(formatInt(append(r.line[:0], '$'), r.heldLen), '\r', '\n')
		line = r.line
		r.body, r.bodyEnd = r.heldLen, true
	} else {
		if err := r.settle(); err != nil {
			return err
		}
		r.args--
		if len(r.inline) > 0 {
			a := r.inline[0]
			r.inline = r.inline[1:]
			r.line = AppendBulk(r.line[:0], a)
			if _, err := w.Write(r.line); err != nil {
				return &WriteError{Err: err}
			}
			return nil
		}
		n, l, err := r.bulkHeader()
		if err != nil {
			return err
		}
		// The payload is pending before anything is written: after a
		// write failure the next call drains it and the reader stays in
		// step with the stream, never taking the payload for the next
		// header.
		line = l
		r.body, r.bodyEnd = n, true
	}
	if _, err := w.Write(line); err != nil {
		return &WriteError{Err: err}
	}
	if err := r.copyBody(w, r.body); err != nil {
		return err
	}
	return r.readCRLF(w)
}

// SkipArgs reads and drops what is left of the current command.
func (r *Reader) SkipArgs() error {
	if r.whole != nil {
		r.whole, r.args = nil, 0
		return nil
	}
	if len(r.inline) > 0 {
		r.inline = r.inline[:0]
		r.args = 0
	}
	// settle first: it also skips an argument Arg refused, which counts
	// in r.args.
	if err := r.settle(); err != nil {
		return err
	}
	for r.args > 0 {
		r.args--
		n, _, err := r.bulkHeader()
		if err != nil {
			return err
		}
		r.body, r.bodyEnd = n, true
		if err := r.settle(); err != nil {
			return err
		}
	}
	return nil
}

// bulkHeader reads a request argument's "$<len>\r\n" line, with Redis's
// checks and wording.
func (r *Reader) bulkHeader() (int64, []byte, error) {
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, nil, unexpected(err)
	}
	if b[0] != '$' {
		return 0, nil, protoErr("expected '$', got '" + string(b[:1]) + "'")
	}
	line, err := r.readLine("too big bulk count string")
	if err != nil {
		return 0, nil, unexpected(err)
	}
	content, ok := header(line)
	var n int64
	if ok {
		n, ok = parseInt(content)
	}
	hard := r.lim.MaxBulk
	if r.lim.Unauthenticated {
		hard = DefaultLimits.MaxBulk
	}
	switch {
	case !ok || n < 0 || n > hard:
		return 0, nil, protoErr("invalid bulk length")
	case n > r.lim.MaxBulk:
		return 0, nil, protoErr("unauthenticated bulk length")
	}
	return n, line, nil
}

// readInline reads an inline command line and splits it into arguments.
func (r *Reader) readInline() (int, error) {
	line, err := r.readLine("too big inline request")
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			// A last line without "\n" is not a command (Redis waits for it).
			return 0, io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return 0, r.discardInline(len(line))
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if err := r.splitInline(line); err != nil {
		return 0, err
	}
	r.args = len(r.inline)
	return r.args, nil
}

// discardInline handles an inline request with a NUL byte before its
// "\n". Redis finds the end of an inline request with strchr, which stops
// at the NUL: it never sees this line end, nor anything sent after it, and
// waits until more than 64 KiB are pending, then answers "too big inline
// request" (checked against redis-server 7.0). A proxy must not run a
// command Redis would never run, so it does the same: it drops the input,
// in constant memory, until that limit or the end of the stream. seen is
// what the request already took.
func (r *Reader) discardInline(seen int) error {
	for seen <= r.lim.MaxLine {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				return unexpected(err)
			}
		}
		k := min(r.br.Buffered(), r.lim.MaxLine+1-seen)
		r.br.Discard(k)
		seen += k
	}
	return protoErr("too big inline request")
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// splitInline splits line into r.inline the way Redis's sdssplitargs does:
// blanks separate arguments; "double quotes" take \n \r \t \b \a \\ \" and
// \xHH escapes; 'single quotes' take \'; a closing quote must be followed
// by a blank or the end of the line.
func (r *Reader) splitInline(line []byte) error {
	// line holds no NUL byte: readInline dealt with those.
	if cap(r.scratch) < len(line) {
		r.scratch = make([]byte, 0, len(line))
	}
	buf := r.scratch[:0] // never grows: unquoting only shrinks
	// Append to the kept backing array: reading arguments slices r.inline
	// from the front, and reusing that slice lost a little capacity with
	// every inline command (an allocation every few commands).
	r.inlines, r.inline = r.inlines[:0], nil
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			r.inline = r.inlines
			return nil
		}
		start := len(buf)
		inDouble, inSingle := false, false
	token:
		for ; ; i++ {
			if i == len(line) {
				if inDouble || inSingle {
					return protoErr("unbalanced quotes in request")
				}
				break
			}
			c := line[i]
			switch {
			case inDouble:
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x':
					hi, ok1 := unhex(line[i+2])
					lo, ok2 := unhex(line[i+3])
					if ok1 && ok2 {
						buf = append(buf, hi<<4|lo)
						i += 3
						continue
					}
					buf = append(buf, 'x')
					i++
				case c == '\\' && i+1 < len(line):
					i++
					switch line[i] {
					case 'n':
						buf = append(buf, '\n')
					case 'r':
						buf = append(buf, '\r')
					case 't':
						buf = append(buf, '\t')
					case 'b':
						buf = append(buf, '\b')
					case 'a':
						buf = append(buf, '\a')
					default:
						buf = append(buf, line[i])
					}
				case c == '"':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return protoErr("unbalanced quotes in request")
					}
					i++
					break token
				default:
					buf = append(buf, c)
				}
			case inSingle:
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					buf = append(buf, '\'')
					i++
				case c == '\'':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return protoErr("unbalanced quotes in request")
					}
					i++
					break token
				default:
					buf = append(buf, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t':
					break token
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					buf = append(buf, c)
				}
			}
		}
		r.inlines = append(r.inlines, buf[start:len(buf):len(buf)])
	}
}

// Lookup-free helpers for the proxy's command inspection.

// Equal reports whether arg equals the upper-case ASCII word, ignoring
// case, without allocating.
func Equal(arg []byte, word string) bool {
	if len(arg) != len(word) {
		return false
	}
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != word[i] {
			return false
		}
	}
	return true
}

// ParseInt parses a request argument as Redis's string2ll does.
func ParseInt(arg []byte) (int64, bool) { return parseInt(arg) }

// formatInt appends n in decimal, for the writer helpers.
func formatInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }
