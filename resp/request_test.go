package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// commandTests are valid requests and the commands they hold. The inline
// cases were checked against redis-server 7.0 (ECHO and EVAL "return ARGV"
// show how Redis split them).
var commandTests = []struct {
	name string
	in   string
	want [][]string
}{
	{"multibulk", "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n", [][]string{{"SET", "a", "b"}}},
	{"multibulk binary", "*2\r\n$4\r\nECHO\r\n$6\r\na\r\nb\x00c\r\n", [][]string{{"ECHO", "a\r\nb\x00c"}}},
	{"multibulk empty arg", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", [][]string{{"ECHO", ""}}},
	{"multibulk pipeline", "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", [][]string{{"PING"}, {"GET", "k"}}},
	{"inline", "PING\r\n", [][]string{{"PING"}}},
	{"inline args", "SET a b\r\n", [][]string{{"SET", "a", "b"}}},
	{"inline LF only", "SET a b\nGET a\n", [][]string{{"SET", "a", "b"}, {"GET", "a"}}},
	{"inline blanks", "  SET \t a   b  \r\n", [][]string{{"SET", "a", "b"}}},
	{"inline CR inside", "ECHO a\rb\r\n", [][]string{{"ECHO", "a", "b"}}},
	{"inline VT not a separator", "ECHO x\vy\r\n", [][]string{{"ECHO", "x\vy"}}},
	{"inline VT leading is blank", "\vECHO\fx\r\n", [][]string{{"ECHO\fx"}}},
	{"inline double quotes", `SET "a b" "c"` + "\r\n", [][]string{{"SET", "a b", "c"}}},
	{"inline escapes", `ECHO "\x41\n"` + "\r\n", [][]string{{"ECHO", "A\n"}}},
	{"inline all escapes", `ECHO "\n\r\t\b\a\\\"\q\x7a\x7Z"` + "\r\n", [][]string{{"ECHO", "\n\r\t\b\a\\\"qzx7Z"}}},
	{"inline short hex", `ECHO "\x4"` + "\r\n", [][]string{{"ECHO", "x4"}}},
	{"inline bad hex", `ECHO "\xZZ"` + "\r\n", [][]string{{"ECHO", "xZZ"}}},
	{"inline single quotes", `ECHO 'it\'s'` + "\r\n", [][]string{{"ECHO", "it's"}}},
	{"inline single no escapes", `ECHO 'a\nb\\c'` + "\r\n", [][]string{{"ECHO", `a\nb\\c`}}},
	{"inline quote mid token", `ECHO foo"bar"` + "\r\n", [][]string{{"ECHO", "foobar"}}},
	{"inline empty quotes", `ECHO "" ''` + "\r\n", [][]string{{"ECHO", "", ""}}},
	{"inline quote then VT", "ECHO \"x\"\vy\r\n", [][]string{{"ECHO", "x", "y"}}},
	{"inline not multibulk", "$-5\r\n", [][]string{{"$-5"}}},
	{"inline bulk-like", "$3\r\nfoo\r\n", [][]string{{"$3"}, {"foo"}}},
	{"inline high bytes", "ECHO \xff\xfe\r\n", [][]string{{"ECHO", "\xff\xfe"}}},
	{"blank lines skipped", "\r\n\n   \r\n\t\nPING\r\n", [][]string{{"PING"}}},
	{"empty multibulk skipped", "*0\r\n*-1\r\n*-5\r\nPING\r\n", [][]string{{"PING"}}},
	{"mixed", "PING\r\n*1\r\n$4\r\nPING\r\nECHO x\n", [][]string{{"PING"}, {"PING"}, {"ECHO", "x"}}},
	{"only blanks", "\r\n\r\n*0\r\n", nil},
	{"empty", "", nil},
}

func TestReadCommand(t *testing.T) {
	for _, tt := range commandTests {
		for _, shape := range readerShapes {
			t.Run(tt.name+"/"+shape.name, func(t *testing.T) {
				cmds, err := readCommands(t, NewReader(shape.new([]byte(tt.in))))
				if err != io.EOF {
					t.Fatalf("ReadCommand(%q): have error %v, want io.EOF at the end", tt.in, err)
				}
				if !equalCommands(cmds, tt.want) {
					t.Errorf("ReadCommand(%q):\nhave %q\nwant %q", tt.in, cmds, tt.want)
				}
				// CopyArg re-encodes the same commands as multibulks.
				out, _, err := copyCommands(NewReader(shape.new([]byte(tt.in))))
				if err != io.EOF {
					t.Fatalf("CopyArg(%q): %v", tt.in, err)
				}
				if want := multibulk(tt.want...); !bytes.Equal(out, want) {
					t.Errorf("CopyArg(%q):\nhave %q\nwant %q", tt.in, out, want)
				}
			})
		}
	}
}

func equalCommands(a, b [][]string) bool {
	return slices.EqualFunc(a, b, slices.Equal)
}

// badCommands are malformed requests: the commands before the error and
// the error, in Redis's wording (checked against redis-server 7.0 where
// Redis has one).
var badCommands = []struct {
	name   string
	in     string
	before [][]string
	want   string
}{
	{"count letters", "*x\r\n", nil, "Protocol error: invalid multibulk length"},
	{"count plus", "*+1\r\n$4\r\nPING\r\n", nil, "Protocol error: invalid multibulk length"},
	{"count leading zero", "*01\r\n$4\r\nPING\r\n", nil, "Protocol error: invalid multibulk length"},
	{"count over INT_MAX", "*2147483648\r\n", nil, "Protocol error: invalid multibulk length"},
	{"count overflow", "*99999999999999999999\r\n", nil, "Protocol error: invalid multibulk length"},
	{"count LF only", "*1\n$4\r\nPING\r\n", nil, "Protocol error: invalid multibulk length"},
	{"count empty", "*\r\n", nil, "Protocol error: invalid multibulk length"},
	{"not a bulk", "*1\r\n:4\r\nPING\r\n", nil, "Protocol error: expected '$', got ':'"},
	{"inline inside multibulk", "*2\r\n$4\r\nECHO\r\nhello\r\n", nil, "Protocol error: expected '$', got 'h'"},
	{"bulk negative", "*1\r\n$-1\r\n", nil, "Protocol error: invalid bulk length"},
	{"bulk -5", "*1\r\n$-5\r\n", nil, "Protocol error: invalid bulk length"},
	{"bulk plus", "*1\r\n$+4\r\nPING\r\n", nil, "Protocol error: invalid bulk length"},
	{"bulk leading zero", "*1\r\n$04\r\nPING\r\n", nil, "Protocol error: invalid bulk length"},
	{"bulk over 512 MiB", "*1\r\n$536870913\r\n", nil, "Protocol error: invalid bulk length"},
	{"bulk max int64", "*1\r\n$9223372036854775807\r\n", nil, "Protocol error: invalid bulk length"},
	{"bulk overflow", "*1\r\n$99999999999999999999\r\n", nil, "Protocol error: invalid bulk length"},
	{"bulk no CRLF after data", "*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n", nil, `Protocol error: expected '\r\n' after bulk data`},
	{"after a good command", "PING\r\n*1\r\n$x\r\n", [][]string{{"PING"}}, "Protocol error: invalid bulk length"},
	{"unbalanced double", "ECHO \"abc\r\n", nil, "Protocol error: unbalanced quotes in request"},
	{"unbalanced single", "ECHO 'abc\r\n", nil, "Protocol error: unbalanced quotes in request"},
	{"closing double then text", "ECHO \"abc\"def\r\n", nil, "Protocol error: unbalanced quotes in request"},
	{"closing single then text", "ECHO 'abc'def\r\n", nil, "Protocol error: unbalanced quotes in request"},
	{"closing quote then quote", "ECHO \"a\"b\"\r\n", nil, "Protocol error: unbalanced quotes in request"},
	{"escaped quote at end", `ECHO 'a\\'` + "\r\n", nil, "Protocol error: unbalanced quotes in request"},
	{"backslash at end", "ECHO \"\\\r\n", nil, "Protocol error: unbalanced quotes in request"},
	{"inline over 64 KiB", "ECHO " + strings.Repeat("y", 64<<10) + "\r\n", nil, "Protocol error: too big inline request"},
	{"inline over 64 KiB no end", "ECHO " + strings.Repeat("y", 100<<10), nil, "Protocol error: too big inline request"},
	{"count line over 64 KiB", "*" + strings.Repeat("1", 70000), nil, "Protocol error: too big mbulk count string"},
	{"bulk line over 64 KiB", "*1\r\n$" + strings.Repeat("1", 70000), nil, "Protocol error: too big bulk count string"},
	// Redis finds an inline line's end with strchr: a NUL hides it, and
	// what follows, until 64 KiB are pending.
	{"NUL in inline", "ECHO a\x00b\r\nPING\r\n" + strings.Repeat("x", 65530), nil, "Protocol error: too big inline request"},
	{"NUL after a good command", "PING\r\n\x00\n" + strings.Repeat("PING\r\n", 11000), [][]string{{"PING"}}, "Protocol error: too big inline request"},
}

func TestBadCommands(t *testing.T) {
	for _, tt := range badCommands {
		for _, shape := range readerShapes {
			t.Run(tt.name+"/"+shape.name, func(t *testing.T) {
				cmds, err := readCommands(t, NewReader(shape.new([]byte(tt.in))))
				wantProtoErr(t, err, tt.want)
				if !equalCommands(cmds, tt.before) {
					t.Errorf("commands before the error: have %q, want %q", cmds, tt.before)
				}
				_, _, err = copyCommands(NewReader(shape.new([]byte(tt.in))))
				wantProtoErr(t, err, tt.want)
			})
		}
	}
}

// TestInlineNUL: a NUL byte hides the end of an inline request, as in
// Redis: nothing runs, and the stream's end is an unexpected one.
func TestInlineNUL(t *testing.T) {
	for _, in := range []string{"ECHO a\x00b\r\nPING\r\n", "\x00\n", "PING \x00\r\n*1\r\n$4\r\nPING\r\n"} {
		cmds, err := readCommands(t, newTestReader(in))
		if err != io.ErrUnexpectedEOF || len(cmds) != 0 {
			t.Errorf("ReadCommand(%q): have %q, %v; want no command, io.ErrUnexpectedEOF", in, cmds, err)
		}
	}
	// Exactly 64 KiB is still waiting; one byte more is the error.
	in := "ECHO a\x00b\r\n"
	in += strings.Repeat("x", 64<<10-len(in))
	if _, err := newTestReader(in).ReadCommand(); err != io.ErrUnexpectedEOF {
		t.Errorf("64 KiB with a NUL: have %v, want io.ErrUnexpectedEOF", err)
	}
	_, err := newTestReader(in + "x").ReadCommand()
	wantProtoErr(t, err, "Protocol error: too big inline request")
}

// TestTruncatedCommands cuts valid request streams at every byte: the
// complete commands come out, then io.EOF at a boundary, otherwise
// io.ErrUnexpectedEOF.
func TestTruncatedCommands(t *testing.T) {
	var streams [][]byte
	for _, tt := range commandTests {
		streams = append(streams, []byte(tt.in))
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	for range 10 {
		streams = append(streams, multibulk(genCommand(rnd), genCommand(rnd)))
	}
	for _, in := range streams {
		// Boundaries: where each command ends, skipped blanks included.
		all, err := readCommands(t, NewReader(bufio.NewReader(bytes.NewReader(in))))
		if err != io.EOF {
			t.Fatalf("%q: %v", in, err)
		}
		for cut := range len(in) {
			prefix := in[:cut]
			cmds, err := readCommands(t, NewReader(bufio.NewReaderSize(bytes.NewReader(prefix), 16)))
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("ReadCommand(%q): have %v, want io.EOF or io.ErrUnexpectedEOF", prefix, err)
			}
			if !equalCommands(cmds, all[:len(cmds)]) {
				t.Fatalf("ReadCommand(%q): have %q, want a prefix of %q", prefix, cmds, all)
			}
			// io.EOF only where the next byte starts a new command.
			if err == io.EOF {
				rest, err := readCommands(t, NewReader(bufio.NewReader(bytes.NewReader(in[cut:]))))
				if err != io.EOF || !equalCommands(append(cmds, rest...), all) {
					t.Fatalf("io.EOF at %d in %q is not a boundary", cut, in)
				}
			}
			out, complete, err := copyCommands(NewReader(bufio.NewReaderSize(bytes.NewReader(prefix), 16)))
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("CopyArg(%q): have %v", prefix, err)
			}
			if !bytes.HasPrefix(multibulk(all...), out[:complete]) {
				t.Fatalf("CopyArg(%q) wrote %q", prefix, out)
			}
		}
	}
}

// TestRoundTripCommands: ReadCommand + CopyArg re-encodes random
// multibulk streams byte for byte, however they arrive.
func TestRoundTripCommands(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, 12))
	for i := range 200 {
		var cmds [][]string
		for range 1 + rnd.IntN(6) {
			cmds = append(cmds, genCommand(rnd))
		}
		in := multibulk(cmds...)
		for _, shape := range readerShapes {
			out, _, err := copyCommands(NewReader(shape.new(in)))
			if err != io.EOF {
				t.Fatalf("stream %d %s: %v", i, shape.name, err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("stream %d %s: CopyArg wrote\n%q\nwant\n%q", i, shape.name, out, in)
			}
			have, err := readCommands(t, NewReader(shape.new(in)))
			if err != io.EOF || !equalCommands(have, cmds) {
				t.Fatalf("stream %d %s: Arg gave %q, %v; want %q", i, shape.name, have, err, cmds)
			}
		}
	}
}

// TestUnauthenticatedLimits: Redis's limits and wording before AUTH.
func TestUnauthenticatedLimits(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = fine
	}{
		{"*10\r\n" + strings.Repeat("$1\r\nx\r\n", 10), ""},
		{"*11\r\n", "Protocol error: unauthenticated multibulk length"},
		{"*2147483648\r\n", "Protocol error: invalid multibulk length"},
		{"*1\r\n$16384\r\n" + strings.Repeat("x", 16384) + "\r\n", ""},
		{"*1\r\n$16385\r\n", "Protocol error: unauthenticated bulk length"},
		{"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"},
		{"*1\r\n$-3\r\n", "Protocol error: invalid bulk length"},
		// Redis does not limit inline commands before AUTH.
		{"PING a b c d e f g h i j k l m\r\n", ""},
	}
	for _, tt := range tests {
		r := newTestReader(tt.in)
		r.SetLimits(UnauthenticatedLimits)
		_, err := readCommands(t, r)
		if tt.want == "" {
			if err != io.EOF {
				t.Errorf("%.20q: have %v, want no error", tt.in, err)
			}
			continue
		}
		wantProtoErr(t, err, tt.want)
	}
	// The same with the default limits: fine.
	r := newTestReader("*11\r\n" + strings.Repeat("$1\r\nx\r\n", 11) + "*1\r\n$16385\r\n" + strings.Repeat("x", 16385) + "\r\n")
	if cmds, err := readCommands(t, r); err != io.EOF || len(cmds) != 2 {
		t.Errorf("default limits: have %d commands, %v", len(cmds), err)
	}
	// Lower custom limits use the ordinary wording.
	r = newTestReader("*3\r\n")
	r.SetLimits(Limits{MaxBulk: 10, MaxCount: 2, MaxLine: 100, MaxArgBuf: 10})
	_, err := r.ReadCommand()
	wantProtoErr(t, err, "Protocol error: invalid multibulk length")
}

// TestArgTooLong: an argument over MaxArgBuf is refused but stays current:
// CopyArg streams it, header and all; otherwise it is skipped, and the
// stream goes on with the next command.
func TestArgTooLong(t *testing.T) {
	big := strings.Repeat("v", 100<<10)
	in := string(multibulk([]string{"SET", big, "x"}, []string{"GET", "k"}, []string{"SET", "k", big}))
	for _, shape := range readerShapes {
		t.Run(shape.name, func(t *testing.T) {
			r := NewReader(shape.new([]byte(in)))
			// Arg refuses, again and again; CopyArg then streams it.
			if n, err := r.ReadCommand(); n != 3 || err != nil {
				t.Fatalf("ReadCommand: have %d, %v", n, err)
			}
			if a, err := r.Arg(); string(a) != "SET" || err != nil {
				t.Fatalf("Arg: have %q, %v", a, err)
			}
			for range 2 {
				if _, err := r.Arg(); err != ErrArgTooLong {
					t.Fatalf("Arg: have %v, want ErrArgTooLong", err)
				}
				if r.Args() != 2 {
					t.Fatalf("Args after ErrArgTooLong: have %d, want 2", r.Args())
				}
			}
			if r.Buffered() != 0 && shape.name != "whole" {
				t.Errorf("Buffered counts the refused argument: %d", r.Buffered())
			}
			var out bytes.Buffer
			if err := r.CopyArg(&out); err != nil {
				t.Fatal(err)
			}
			if want := string(AppendBulkString(nil, big)); out.String() != want {
				t.Fatalf("CopyArg after ErrArgTooLong: have %.30q (%d bytes), want %.30q (%d)", out.String(), out.Len(), want, len(want))
			}
			if a, err := r.Arg(); string(a) != "x" || err != nil {
				t.Fatalf("Arg after CopyArg: have %q, %v; want x", a, err)
			}
			// The next command parses.
			if n, err := r.ReadCommand(); n != 2 || err != nil {
				t.Fatalf("ReadCommand: have %d, %v", n, err)
			}
			if a, err := r.Arg(); string(a) != "GET" || err != nil {
				t.Fatalf("Arg: have %q, %v", a, err)
			}
			// A refused last argument left to ReadCommand is skipped.
			if n, err := r.ReadCommand(); n != 3 || err != nil {
				t.Fatalf("ReadCommand: have %d, %v", n, err)
			}
			r.Arg()
			r.Arg()
			if _, err := r.Arg(); err != ErrArgTooLong {
				t.Fatalf("Arg: have %v, want ErrArgTooLong", err)
			}
			if _, err := r.ReadCommand(); err != io.EOF {
				t.Fatalf("ReadCommand at the end: have %v, want io.EOF", err)
			}
		})
	}
	// SkipArgs skips a refused argument too, and what follows it.
	r := newTestReader(in)
	r.ReadCommand()
	r.Arg()
	r.Arg()
	if err := r.SkipArgs(); err != nil || r.Args() != 0 {
		t.Fatalf("SkipArgs: have %v, Args %d", err, r.Args())
	}
	if n, err := r.ReadCommand(); n != 2 || err != nil {
		t.Fatalf("ReadCommand after SkipArgs: have %d, %v", n, err)
	}
}

// TestArgLongerThanBuffer: an argument longer than the bufio buffer but
// within MaxArgBuf comes whole.
func TestArgLongerThanBuffer(t *testing.T) {
	arg := strings.Repeat("ab", 30<<10)
	r := NewReader(bufio.NewReaderSize(strings.NewReader(string(multibulk([]string{"ECHO", arg}))), 16))
	cmds, err := readCommands(t, r)
	if err != io.EOF || len(cmds) != 1 || cmds[0][1] != arg {
		t.Fatalf("have %d commands, %v", len(cmds), err)
	}
}

// TestCopyArg1MiB: a 1 MiB argument streams byte for byte, whatever the
// buffer.
func TestCopyArg1MiB(t *testing.T) {
	arg := make([]byte, 1<<20)
	for i := range arg {
		arg[i] = byte(i * 7)
	}
	in := multibulk([]string{"SET", "k", string(arg)}, []string{"PING"})
	for _, shape := range readerShapes[:2] {
		out, _, err := copyCommands(NewReader(shape.new(in)))
		if err != io.EOF || !bytes.Equal(out, in) {
			t.Errorf("%s: CopyArg of 1 MiB: have %d bytes, %v; want the %d of the input", shape.name, len(out), err, len(in))
		}
	}
}

// TestCopyArgInline: inline arguments come out as bulks.
func TestCopyArgInline(t *testing.T) {
	r := newTestReader("SET k \"a b\\r\\n\"\r\n")
	n, err := r.ReadCommand()
	if n != 3 || err != nil {
		t.Fatalf("ReadCommand: have %d, %v", n, err)
	}
	var out bytes.Buffer
	for range n {
		if err := r.CopyArg(&out); err != nil {
			t.Fatal(err)
		}
	}
	if want := "$3\r\nSET\r\n$1\r\nk\r\n$5\r\na b\r\n\r\n"; out.String() != want {
		t.Errorf("have %q, want %q", out.String(), want)
	}
	if err := r.CopyArg(&out); err == nil {
		t.Error("CopyArg past the last argument: no error")
	}
	if _, err := r.Arg(); err == nil {
		t.Error("Arg past the last argument: no error")
	}
}

// TestCopyArgWriteError: a failed write is a *WriteError, and the reader
// stays in step with the stream.
func TestCopyArgWriteError(t *testing.T) {
	in := string(multibulk([]string{"SET", "k", "value"}, []string{"PING"}))
	for _, failAt := range []int{0, 2, 6} {
		r := newTestReader(in)
		r.ReadCommand()
		r.Arg()
		r.Arg()
		err := r.CopyArg(&failWriter{n: failAt})
		var we *WriteError
		if !errors.As(err, &we) {
			t.Fatalf("fail at %d: have %v, want a *WriteError", failAt, err)
		}
		cmds, err := readCommands(t, r)
		if err != io.EOF || !equalCommands(cmds, [][]string{{"PING"}}) {
			t.Errorf("fail at %d: then have %q, %v; want PING", failAt, cmds, err)
		}
	}
}

// TestSkipArgs: the rest of a command is dropped, inline or not.
func TestSkipArgs(t *testing.T) {
	r := newTestReader("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nbig\r\nSET a b\r\nPING\r\n")
	for _, want := range []int{3, 3, 1} {
		n, err := r.ReadCommand()
		if n != want || err != nil {
			t.Fatalf("ReadCommand: have %d, %v; want %d", n, err, want)
		}
		r.Arg()
		if err := r.SkipArgs(); err != nil || r.Args() != 0 {
			t.Fatalf("SkipArgs: %v, Args %d", err, r.Args())
		}
	}
}

// TestBufferedRequests: after a command read whole, Buffered counts only
// what follows it.
func TestBufferedRequests(t *testing.T) {
	r := newTestReader("*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n")
	r.ReadCommand()
	r.Arg()
	r.Arg()
	if have := r.Buffered(); have != 6 {
		t.Errorf("have Buffered %d, want 6", have)
	}
	r.ReadCommand()
	r.Arg()
	if have := r.Buffered(); have != 0 {
		t.Errorf("have Buffered %d, want 0", have)
	}
}

func TestEqualParseInt(t *testing.T) {
	for _, tt := range []struct {
		arg, word string
		want      bool
	}{{"auth", "AUTH", true}, {"AuTh", "AUTH", true}, {"AUTHX", "AUTH", false}, {"", "", true}, {"aut", "AUTH", false}, {"select", "SELECT", true}, {"{elect", "[ELECT", false}} {
		if have := Equal([]byte(tt.arg), tt.word); have != tt.want {
			t.Errorf("Equal(%q, %q): have %v, want %v", tt.arg, tt.word, have, tt.want)
		}
	}
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"15", 15, true}, {"-1", -1, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"99999999999999999999", 0, false}, {"", 0, false}, {"-", 0, false}, {"-0", 0, false},
		{"01", 0, false}, {"+1", 0, false}, {" 1", 0, false}, {"1 ", 0, false}, {"1a", 0, false},
		{"000000000000000000001", 0, false},
	} {
		have, ok := ParseInt([]byte(tt.in))
		if have != tt.want || ok != tt.ok {
			t.Errorf("ParseInt(%q): have %d, %v; want %d, %v", tt.in, have, ok, tt.want, tt.ok)
		}
	}
}

// refSplitArgs is Redis's sdssplitargs (sds.c), transcribed as literally
// as Go allows, over a NUL-terminated copy of line. nil, false is Redis's
// NULL ("unbalanced quotes").
func refSplitArgs(line []byte) ([]string, bool) {
	s := append(bytes.Clone(line), 0)
	isspace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' }
	ishex := func(c byte) bool { _, ok := unhex(c); return ok }
	p := 0
	var vector []string
	for {
		for s[p] != 0 && isspace(s[p]) {
			p++
		}
		if s[p] == 0 {
			return vector, true
		}
		inq, insq, done := false, false, false
		var current []byte
		for !done {
			switch {
			case inq:
				switch {
				case s[p] == '\\' && s[p+1] == 'x' && ishex(s[p+2]) && ishex(s[p+3]):
					hi, _ := unhex(s[p+2])
					lo, _ := unhex(s[p+3])
					current = append(current, hi*16+lo)
					p += 3
				case s[p] == '\\' && s[p+1] != 0:
					p++
					c := s[p]
					switch s[p] {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					}
					current = append(current, c)
				case s[p] == '"':
					if s[p+1] != 0 && !isspace(s[p+1]) {
						return nil, false
					}
					done = true
				case s[p] == 0:
					return nil, false
				default:
					current = append(current, s[p])
				}
			case insq:
				switch {
				case s[p] == '\\' && s[p+1] == '\'':
					p++
					current = append(current, '\'')
				case s[p] == '\'':
					if s[p+1] != 0 && !isspace(s[p+1]) {
						return nil, false
					}
					done = true
				case s[p] == 0:
					return nil, false
				default:
					current = append(current, s[p])
				}
			default:
				switch s[p] {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					current = append(current, s[p])
				}
			}
			if s[p] != 0 {
				p++
			}
		}
		vector = append(vector, string(current))
	}
}

// genInlineLine is a random inline request line (no LF, no NUL) drawn
// from the characters sdssplitargs cares about.
func genInlineLine(rnd *rand.Rand) []byte {
	const alphabet = "ab x41Z  \t\v\f\r\"'\\\\xnrtq\xff"
	p := make([]byte, rnd.IntN(24))
	for i := range p {
		p[i] = alphabet[rnd.IntN(len(alphabet))]
	}
	return p
}

// TestInlineSplitMatchesRedis compares the splitter with the transcribed
// sdssplitargs on random lines.
func TestInlineSplitMatchesRedis(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	r := newTestReader("")
	for range 100_000 {
		line := genInlineLine(rnd)
		checkSplit(t, r, line)
	}
}

func checkSplit(tb testing.TB, r *Reader, line []byte) {
	tb.Helper()
	want, ok := refSplitArgs(line)
	err := r.splitInline(line)
	if !ok {
		if err == nil {
			tb.Fatalf("split %q: have %q, want unbalanced quotes", line, r.inline)
		}
		wantProtoErr(tb, err, "Protocol error: unbalanced quotes in request")
		return
	}
	if err != nil {
		tb.Fatalf("split %q: have %v, want %q", line, err, want)
	}
	have := make([]string, len(r.inline))
	for i, a := range r.inline {
		have[i] = string(a)
	}
	if !slices.Equal(have, want) {
		tb.Fatalf("split %q:\nhave %q\nwant %q", line, have, want)
	}
}

// TestInlineAgainstRedis sends random inline requests to a real
// redis-server as EVAL "return ARGV" 0 <line> and compares its split with
// ours. Skipped without redis-server or with -short.
func TestInlineAgainstRedis(t *testing.T) {
	conn := startRedis(t)
	rnd := rand.New(rand.NewPCG(8, 9))
	br := bufio.NewReader(conn)
	var split, refused int
	defer func() {
		t.Logf("%d lines split as Redis splits them, %d refused as Redis refuses them", split, refused)
	}()
	for range 1000 {
		line := append([]byte(`EVAL "return ARGV" 0 `), genInlineLine(rnd)...)
		r := newTestReader(string(line) + "\r\n")
		cmds, err := readCommands(t, r)
		var pe *ProtocolError
		if errors.As(err, &pe) {
			// Redis answers and closes: use a connection of its own.
			c2 := dialRedis(t, conn.RemoteAddr().String())
			fmt.Fprintf(c2, "%s\r\n", line)
			reply, _ := io.ReadAll(c2)
			c2.Close()
			if want := "-ERR " + pe.Error() + "\r\n"; string(reply) != want {
				t.Fatalf("%q: Redis said %q, we say %q", line, reply, want)
			}
			refused++
			continue
		}
		if err != io.EOF || len(cmds) != 1 {
			t.Fatalf("%q: have %q, %v", line, cmds, err)
		}
		fmt.Fprintf(conn, "%s\r\n", line)
		v, err := NewReader(br).ReadValue()
		if err != nil {
			t.Fatalf("%q: reading Redis's reply: %v", line, err)
		}
		var redis []string
		for _, e := range v.Elems {
			redis = append(redis, string(e.Str))
		}
		if v.Type != '*' || !slices.Equal(redis, cmds[0][3:]) {
			t.Fatalf("%q: Redis split %s, we split %q", line, show(v), cmds[0][3:])
		}
		split++
	}
}
