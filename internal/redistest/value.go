package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits of the reply parser. They are Redis's own (bulk length) or far
// above anything Redis sends; they exist so that a broken proxy makes a
// test fail rather than exhaust memory.
const (
	maxBulk  = 512 << 20 // bytes in one bulk, blob error or verbatim string
	maxLine  = 1 << 20   // bytes in one simple line
	maxElems = 1 << 28   // elements in one aggregate
	maxDepth = 128       // nesting of aggregates and attributes
)

// Value is one RESP2 or RESP3 reply.
//
// Type is the reply's type byte. Which fields are set depends on it:
//
//	'+' simple string   Str
//	'-' error           Str (the whole line, e.g. "ERR unknown command ...")
//	':' integer         Int
//	'$' bulk string     Str, or Null for $-1
//	'*' array           Elems, or Null for *-1
//	'_' null            Null
//	',' double          Float (as sent: "3.141", "inf", "-nan"...)
//	'#' boolean         Int: 1 for true, 0 for false
//	'!' blob error      Str
//	'=' verbatim string Str, with its format prefix ("txt:Some text")
//	'(' big number      Str (the digits as sent)
//	'%' map             Elems: key, value, key, value...
//	'~' set             Elems
//	'>' push            Elems
//
// An attribute ('|') is not a value of its own: its key, value pairs are in
// the Attrs of the value that follows it.
type Value struct {
	Type  byte
	Str   string
	Int   int64
	Float string
	Elems []Value
	Null  bool
	Attrs []Value
}

// ReplyError is the error of an error reply ('-' or '!').
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

// Err returns the reply as a ReplyError if it is an error reply ('-' or
// '!'), else nil.
func (v Value) Err() error {
	if v.Type == '-' || v.Type == '!' {
		return ReplyError(v.Str)
	}
	return nil
}

// String renders v as redis-cli does on a terminal (--no-raw): OK,
// (integer) 1, "bulk", (nil), (error) ERR ..., (double) 3.14, (true),
// (big number) 123, numbered nested lists, maps as "1# key => value", sets
// as "1~ member", empty aggregates as "(empty array)" and so on. Verbatim
// strings are shown without their format prefix. Attributes, which
// redis-cli cannot show, come first as "(attributes)" followed by the
// rendering of their map.
func (v Value) String() string {
	var b strings.Builder
	v.format(&b, "")
	return strings.TrimSuffix(b.String(), "\n")
}

func (v Value) format(b *strings.Builder, prefix string) {
	if len(v.Attrs) > 0 {
		b.WriteString("(attributes) ")
		Value{Type: '%', Elems: v.Attrs}.format(b, prefix+"             ")
		b.WriteString(prefix)
		v.Attrs = nil
	}
	switch v.Type {
	case '+':
		b.WriteString(v.Str)
	case '-', '!':
		b.WriteString("(error) ")
		b.WriteString(v.Str)
	case ':':
		fmt.Fprintf(b, "(integer) %d", v.Int)
	case '$':
		if v.Null {
			b.WriteString("(nil)")
		} else {
			b.WriteString(quote(v.Str))
		}
	case '=':
		s := v.Str
		if len(s) >= 4 && s[3] == ':' {
			s = s[4:]
		}
		b.WriteString(s)
	case '_':
		b.WriteString("(nil)")
	case ',':
		b.WriteString("(double) ")
		b.WriteString(v.Float)
	case '#':
		if v.Int != 0 {
			b.WriteString("(true)")
		} else {
			b.WriteString("(false)")
		}
	case '(':
		b.WriteString("(big number) ")
		b.WriteString(v.Str)
	case '*', '~', '%', '>':
		v.formatAggregate(b, prefix)
		return // formatAggregate ends every line itself
	default:
		fmt.Fprintf(b, "(unknown type %q)", v.Type)
	}
	b.WriteByte('\n')
}

func (v Value) formatAggregate(b *strings.Builder, prefix string) {
	if v.Null {
		b.WriteString("(nil)\n")
		return
	}
	if len(v.Elems) == 0 {
		switch v.Type {
		case '%':
			b.WriteString("(empty hash)\n")
		case '~':
			b.WriteString("(empty set)\n")
		case '>':
			b.WriteString("(empty push)\n")
		default:
			b.WriteString("(empty array)\n")
		}
		return
	}
	n, step, sep := len(v.Elems), 1, ')'
	switch v.Type {
	case '%':
		n, step, sep = len(v.Elems)/2, 2, '#'
	case '~':
		sep = '~'
	}
	width := len(strconv.Itoa(n))
	inner := prefix + strings.Repeat(" ", width+2)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(prefix)
		}
		fmt.Fprintf(b, "%*d%c ", width, i+1, sep)
		if step == 1 {
			v.Elems[i].format(b, inner)
			continue
		}
		var k strings.Builder
		v.Elems[2*i].format(&k, inner)
		b.WriteString(strings.TrimSuffix(k.String(), "\n"))
		b.WriteString(" => ")
		if 2*i+1 >= len(v.Elems) {
			b.WriteString("(missing)\n")
			continue
		}
		val := v.Elems[2*i+1]
		if val.multiline() {
			// as redis-cli: a value of several lines starts on its own
			b.WriteByte('\n')
			b.WriteString(inner)
		}
		val.format(b, inner)
	}
}

// multiline reports whether v renders as several lines (attributes aside).
func (v Value) multiline() bool {
	switch v.Type {
	case '*', '~', '>':
		return len(v.Elems) > 1 || len(v.Elems) == 1 && v.Elems[0].multiline()
	case '%':
		return len(v.Elems) > 2 || len(v.Elems) == 2 && v.Elems[1].multiline()
	}
	return false
}

// quote is redis-cli's sdscatrepr: a double-quoted string with \\ \" \n
// \r \t \a \b escaped and other bytes outside printable ASCII as \xhh.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		default:
			if c >= 0x20 && c <= 0x7e {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ProtocolError is a reply that is not valid RESP. The connection it came
// from is out of step and should be closed.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "redistest: protocol error: " + e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// ReadValue reads one complete reply from br, strictly: every line must
// end in \r\n, lengths and numbers must be well formed, and a reply type
// Redis does not send (streamed strings and aggregates included) is a
// ProtocolError. An EOF before the first byte is io.EOF; within a reply it
// is io.ErrUnexpectedEOF.
func ReadValue(br *bufio.Reader) (Value, error) {
	return readValue(br, 0)
}

func readValue(br *bufio.Reader, depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, protoErr("nesting deeper than %d", maxDepth)
	}
	line, err := readLine(br)
	if err != nil {
		if depth > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Value{}, err
	}
	if line == "" {
		return Value{}, protoErr("empty line")
	}
	v := Value{Type: line[0]}
	rest := line[1:]
	switch v.Type {
	case '+', '-':
		v.Str = rest
	case ':':
		if v.Int, err = parseInt(rest); err != nil {
			return Value{}, err
		}
	case '_':
		if rest != "" {
			return Value{}, protoErr("null with payload %q", rest)
		}
		v.Null = true
	case ',':
		if _, err := strconv.ParseFloat(rest, 64); err != nil && !isRangeErr(err) {
			return Value{}, protoErr("bad double %q", rest)
		}
		v.Float = rest
	case '#':
		switch rest {
		case "t":
			v.Int = 1
		case "f":
		default:
			return Value{}, protoErr("bad boolean %q", rest)
		}
	case '(':
		if !isBigNumber(rest) {
			return Value{}, protoErr("bad big number %q", rest)
		}
		v.Str = rest
	case '$', '!', '=':
		n, err := parseLen(rest, maxBulk, v.Type == '$')
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			v.Null = true
			break
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return Value{}, unexpected(err)
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Value{}, protoErr("%c%d payload not followed by CRLF", v.Type, n)
		}
		v.Str = string(buf[:n])
		if v.Type == '=' && (n < 4 || v.Str[3] != ':') {
			return Value{}, protoErr("verbatim string without a format prefix")
		}
	case '*', '~', '>', '%', '|':
		n, err := parseLen(rest, maxElems, v.Type == '*')
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			v.Null = true
			break
		}
		if v.Type == '%' || v.Type == '|' {
			if n > maxElems/2 {
				return Value{}, protoErr("%c%d too long", v.Type, n)
			}
			n *= 2
		}
		v.Elems = make([]Value, 0, min(n, 1024))
		for range n {
			e, err := readValue(br, depth+1)
			if err != nil {
				return Value{}, unexpected(err)
			}
			v.Elems = append(v.Elems, e)
		}
		if v.Type == '|' {
			next, err := readValue(br, depth+1)
			if err != nil {
				return Value{}, unexpected(err)
			}
			next.Attrs = append(v.Elems, next.Attrs...)
			return next, nil
		}
	default:
		return Value{}, protoErr("unexpected reply type %q", v.Type)
	}
	return v, nil
}

// readLine returns one line without its \r\n.
func readLine(br *bufio.Reader) (string, error) {
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, chunk...)
			if len(long) > maxLine {
				return "", protoErr("line longer than %d bytes", maxLine)
			}
			continue
		}
		if err != nil {
			if len(long)+len(chunk) > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		if long != nil {
			chunk = append(long, chunk...)
			if len(chunk) > maxLine {
				return "", protoErr("line longer than %d bytes", maxLine)
			}
		}
		if len(chunk) < 2 || chunk[len(chunk)-2] != '\r' {
			return "", protoErr("line not terminated by CRLF: %q", truncate(chunk))
		}
		return string(chunk[:len(chunk)-2]), nil
	}
}

func parseInt(s string) (int64, error) {
	if s == "" || s[0] == '+' {
		return 0, protoErr("bad integer %q", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, protoErr("bad integer %q", s)
	}
	return n, nil
}

// parseLen parses a length; -1 is allowed only when nullable and returned
// as -1.
func parseLen(s string, limit int, nullable bool) (int, error) {
	n, err := parseInt(s)
	if err != nil {
		return 0, protoErr("bad length %q", s)
	}
	switch {
	case n == -1 && nullable:
		return -1, nil
	case n < 0:
		return 0, protoErr("bad length %q", s)
	case n > int64(limit):
		return 0, protoErr("length %d over the limit %d", n, limit)
	}
	return int(n), nil
}

func isBigNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isRangeErr(err error) bool {
	var ne *strconv.NumError
	return errors.As(err, &ne) && ne.Err == strconv.ErrRange
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
