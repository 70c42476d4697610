package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// Readers over the same input in the shapes a network gives it: whole, one
// byte at a time under bufio's smallest buffer, and through a tiny buffer.
var readerShapes = []struct {
	name string
	new  func(in []byte) *bufio.Reader
}{
	{"whole", func(in []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(in)) }},
	{"onebyte", func(in []byte) *bufio.Reader {
		return bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(in)), 16)
	}},
	{"tiny", func(in []byte) *bufio.Reader {
		return bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(in)), 16)
	}},
}

// newTestReader reads in with the default limits and a 4 KiB buffer.
func newTestReader(in string) *Reader {
	return NewReader(bufio.NewReader(strings.NewReader(in)))
}

// show renders a Value compactly for have/want messages.
func show(v Value) string {
	var b strings.Builder
	showTo(&b, v)
	return b.String()
}

func showTo(b *strings.Builder, v Value) {
	if len(v.Attrs) > 0 {
		b.WriteString("|{")
		for i, a := range v.Attrs {
			if i > 0 {
				b.WriteByte(' ')
			}
			showTo(b, a)
		}
		b.WriteString("} ")
	}
	switch v.Type {
	case '*', '%', '~', '>':
		if v.Null {
			fmt.Fprintf(b, "%cnil", v.Type)
			return
		}
		fmt.Fprintf(b, "%c[", v.Type)
		for i, e := range v.Elems {
			if i > 0 {
				b.WriteByte(' ')
			}
			showTo(b, e)
		}
		b.WriteByte(']')
	case '$':
		if v.Null {
			fmt.Fprintf(b, "$nil(%d)", v.Int)
			return
		}
		fmt.Fprintf(b, "$%q(%d)", v.Str, v.Int)
	case ':':
		fmt.Fprintf(b, ":%d(%q)", v.Int, v.Str)
	case '_':
		b.WriteString("_")
	default:
		fmt.Fprintf(b, "%c%q", v.Type, v.Str)
	}
}

// encode writes v back in RESP. The reader accepts only canonical lengths,
// so encode(ReadValue(x)) is x byte for byte.
func encode(b []byte, v Value) []byte {
	if len(v.Attrs) > 0 {
		b = fmt.Appendf(b, "|%d\r\n", len(v.Attrs)/2)
		for _, a := range v.Attrs {
			b = encode(b, a)
		}
	}
	switch v.Type {
	case '*', '%', '~', '>':
		n := len(v.Elems)
		if v.Null {
			n = -1
		} else if v.Type == '%' {
			n /= 2
		}
		b = fmt.Appendf(b, "%c%d\r\n", v.Type, n)
		for _, e := range v.Elems {
			b = encode(b, e)
		}
	case '$', '!', '=':
		if v.Null {
			return append(b, "$-1\r\n"...)
		}
		b = fmt.Appendf(b, "%c%d\r\n", v.Type, len(v.Str))
		b = append(b, v.Str...)
		b = append(b, "\r\n"...)
	default:
		b = append(b, v.Type)
		b = append(b, v.Str...)
		b = append(b, "\r\n"...)
	}
	return b
}

// wantProtoErr fails unless err is a *ProtocolError with Redis's text want.
func wantProtoErr(tb testing.TB, err error, want string) {
	tb.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		tb.Fatalf("have error %v (%T), want *ProtocolError %q", err, err, want)
	}
	if have := pe.Error(); have != want {
		tb.Fatalf("have error %q, want %q", have, want)
	}
}

// forwardAll forwards every value of br's stream to a buffer and returns
// what was written, each value's Reply and the error that ended the
// stream (io.EOF at a clean end).
func forwardAll(tb testing.TB, r *Reader) ([]byte, []Reply, error) {
	tb.Helper()
	var out bytes.Buffer
	var reps []Reply
	for {
		rep, err := r.Forward(&out)
		if err != nil {
			return out.Bytes(), reps, err
		}
		rep.Line = bytes.Clone(rep.Line)
		reps = append(reps, rep)
	}
}

// readCommands reads every command with Arg (streaming an argument Arg
// refuses through CopyArg) and returns the arguments and the error that
// ended the stream.
func readCommands(tb testing.TB, r *Reader) ([][]string, error) {
	tb.Helper()
	var cmds [][]string
	for {
		cmd, err := readCommand(tb, r)
		if err != nil {
			return cmds, err
		}
		cmds = append(cmds, cmd)
	}
}

// readCommand reads one command with ReadCommand and Arg (CopyArg for an
// argument too long for Arg).
func readCommand(tb testing.TB, r *Reader) ([]string, error) {
	tb.Helper()
	n, err := r.ReadCommand()
	if err != nil {
		return nil, err
	}
	if n < 1 || n != r.Args() {
		tb.Fatalf("ReadCommand: have argc %d and Args() %d, want equal and >= 1", n, r.Args())
	}
	cmd := make([]string, 0, min(n, 64))
	for range n {
		a, err := r.Arg()
		if err == ErrArgTooLong {
			var buf bytes.Buffer
			if err := r.CopyArg(&buf); err != nil {
				return nil, err
			}
			v, err := NewReader(bufio.NewReader(&buf)).ReadValue()
			if err != nil {
				tb.Fatalf("CopyArg wrote a bad bulk %q: %v", buf.Bytes(), err)
			}
			cmd = append(cmd, string(v.Str))
			continue
		}
		if err != nil {
			return nil, err
		}
		cmd = append(cmd, string(a))
	}
	if r.Args() != 0 {
		tb.Fatalf("Args() after the last Arg: have %d, want 0", r.Args())
	}
	return cmd, nil
}

// readCommandRuns reads the commands as the proxy reads a pipeline: the
// runs CommandAt accepts (each checked against the line-by-line reader,
// its name against its first argument), the rest with ReadCommand.
func readCommandRuns(tb testing.TB, r *Reader) ([][]string, error) {
	tb.Helper()
	var cmds [][]string
	for {
		buf := r.Pending()
		pos := 0
		for {
			n, name, ok := r.CommandAt(buf, pos)
			if !ok {
				break
			}
			one := NewReader(bufio.NewReaderSize(bytes.NewReader(buf[pos:pos+n]), 16))
			one.lineByLine = true
			got, err := readCommands(tb, one)
			if err != io.EOF || len(got) != 1 || got[0][0] != string(name) {
				tb.Fatalf("CommandAt took %q as %d bytes named %q; line by line it is %q, %v", buf[pos:], n, name, got, err)
			}
			cmds = append(cmds, got[0])
			pos += n
		}
		r.Consume(pos)
		if pos > 0 {
			continue
		}
		cmd, err := readCommand(tb, r)
		if err != nil {
			return cmds, err
		}
		cmds = append(cmds, cmd)
	}
}

// copyCommands re-encodes every command as a multibulk with ReadCommand,
// AppendArray and CopyArg; the proxy's way (proxyWay), the name is read
// with Arg (a name too long for it is streamed), the header taken from
// Taken or encoded, and the rest written with CopyRest. It returns the
// output, the length of the output up to the last complete command, and
// the error that ended the stream.
func copyCommands(r *Reader) ([]byte, int, error) { return copyCommandsWith(r, false) }

func copyCommandsWith(r *Reader, proxyWay bool) ([]byte, int, error) {
	var out bytes.Buffer
	var hdr []byte
	for {
		complete := out.Len()
		n, err := r.ReadCommand()
		if err != nil {
			return out.Bytes(), complete, err
		}
		hdr = AppendArray(hdr[:0], n)
		if proxyWay {
			name, err := r.Arg()
			switch {
			case err == ErrArgTooLong:
			case err != nil:
				return out.Bytes(), complete, err
			default:
				if taken, ok := r.Taken(); ok {
					hdr = append(hdr[:0], taken...)
				} else {
					hdr = AppendBulk(hdr, name)
				}
			}
		}
		out.Write(hdr)
		if err := copyArgs(r, &out, proxyWay); err != nil {
			return out.Bytes(), complete, err
		}
	}
}

// copyArgs writes what is left of the command: with CopyRest, or with
// CopyArg one by one.
func copyArgs(r *Reader, w io.Writer, rest bool) error {
	if rest {
		return r.CopyRest(w)
	}
	for r.Args() > 0 {
		if err := r.CopyArg(w); err != nil {
			return err
		}
	}
	return nil
}

// multibulk encodes commands as a client library does.
func multibulk(cmds ...[]string) []byte {
	var b []byte
	for _, c := range cmds {
		b = AppendCommand(b, c...)
	}
	return b
}

// genReply appends one random valid reply value (attributes, nesting,
// every RESP2 and RESP3 type) and returns the extended stream.
func genReply(rnd *rand.Rand, b []byte, depth int) []byte {
	if rnd.IntN(10) == 0 {
		// Not "|0": ReadValue drops an empty attribute, and encode could
		// not give it back.
		n := 1 + rnd.IntN(2)
		b = fmt.Appendf(b, "|%d\r\n", n)
		for range 2 * n {
			b = genReply(rnd, b, depth+1)
		}
	}
	types := "+-:$*_,#!=(%~>"
	if depth >= 4 {
		types = "+-:$_,#!=("
	}
	switch t := types[rnd.IntN(len(types))]; t {
	case '+', '-':
		b = append(b, t)
		b = append(b, genLine(rnd)...)
	case ':':
		b = append(b, ':')
		b = strconv.AppendInt(b, genInt(rnd), 10)
	case '_':
		b = append(b, '_')
	case ',':
		b = append(b, ',')
		b = append(b, []string{"1.5", "inf", "-inf", "nan", "0", "-3.25e10"}[rnd.IntN(6)]...)
	case '#':
		b = append(b, '#', "tf"[rnd.IntN(2)])
	case '(':
		b = append(b, '(')
		b = append(b, "-3492890328409238509324850943850943825024385"[rnd.IntN(2):1+rnd.IntN(44)]...)
	case '$', '!', '=':
		if t == '$' && rnd.IntN(8) == 0 {
			return append(b, "$-1\r\n"...)
		}
		p := genPayload(rnd)
		if t == '=' {
			p = append([]byte("txt:"), p...)
		}
		b = fmt.Appendf(b, "%c%d\r\n", t, len(p))
		b = append(b, p...)
	default: // * % ~ >
		if t == '*' && rnd.IntN(8) == 0 {
			return append(b, "*-1\r\n"...)
		}
		n := rnd.IntN(5)
		b = fmt.Appendf(b, "%c%d\r\n", t, n)
		if t == '%' {
			n *= 2
		}
		for range n {
			b = genReply(rnd, b, depth+1)
		}
		return b
	}
	return append(b, "\r\n"...)
}

// genLine is a simple-string body: no CR or LF.
func genLine(rnd *rand.Rand) []byte {
	p := make([]byte, rnd.IntN(40))
	for i := range p {
		for p[i] = byte(rnd.IntN(256)); p[i] == '\r' || p[i] == '\n'; p[i] = byte(rnd.IntN(256)) {
		}
	}
	return p
}

func genInt(rnd *rand.Rand) int64 {
	switch rnd.IntN(4) {
	case 0:
		return 0
	case 1:
		return rnd.Int64()
	case 2:
		return -rnd.Int64() - 1
	}
	return rnd.Int64N(1000) - 500
}

// genPayload is bulk data: any bytes, CRLF included, sometimes longer than
// a small buffer.
func genPayload(rnd *rand.Rand) []byte {
	n := rnd.IntN(20)
	if rnd.IntN(6) == 0 {
		n = rnd.IntN(3000)
	}
	p := make([]byte, n)
	for i := range p {
		p[i] = "ab\r\n\x00\xff*$"[rnd.IntN(8)]
	}
	return p
}

// genCommand is a random command as a client sends it.
func genCommand(rnd *rand.Rand) []string {
	cmd := make([]string, 1+rnd.IntN(5))
	for i := range cmd {
		cmd[i] = string(genPayload(rnd))
	}
	return cmd
}

// zeroBulk yields "<head>" then n zero bytes then "<tail>", without holding
// the payload: a huge value in constant memory.
type zeroBulk struct {
	head, tail []byte
	n          int64
}

func (z *zeroBulk) Read(p []byte) (int, error) {
	switch {
	case len(z.head) > 0:
		k := copy(p, z.head)
		z.head = z.head[k:]
		return k, nil
	case z.n > 0:
		k := len(p)
		if int64(k) > z.n {
			k = int(z.n)
		}
		clear(p[:k])
		z.n -= int64(k)
		return k, nil
	case len(z.tail) > 0:
		k := copy(p, z.tail)
		z.tail = z.tail[k:]
		return k, nil
	}
	return 0, io.EOF
}

// cycle repeats data forever: an input that costs the benchmark nothing.
type cycle struct {
	data []byte
	off  int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.data[c.off:])
		n += k
		c.off = (c.off + k) % len(c.data)
	}
	return n, nil
}
