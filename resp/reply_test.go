package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// replyTests are valid replies: one value each, with what ReadValue makes
// of it (see show) and the top-level type and Len that Forward reports.
var replyTests = []struct {
	name string
	in   string
	want string // show(ReadValue())
	typ  byte
	len  int64
}{
	{"simple", "+OK\r\n", `+"OK"`, '+', 0},
	{"simple empty", "+\r\n", `+""`, '+', 0},
	{"error", "-ERR unknown command 'x'\r\n", `-"ERR unknown command 'x'"`, '-', 0},
	{"integer", ":1000\r\n", `:1000("1000")`, ':', 1000},
	{"integer zero", ":0\r\n", `:0("0")`, ':', 0},
	{"integer negative", ":-42\r\n", `:-42("-42")`, ':', -42},
	{"integer max", ":9223372036854775807\r\n", `:9223372036854775807("9223372036854775807")`, ':', 1<<63 - 1},
	{"integer min", ":-9223372036854775808\r\n", `:-9223372036854775808("-9223372036854775808")`, ':', -1 << 63},
	{"bulk", "$3\r\nbar\r\n", `$"bar"(3)`, '$', 3},
	{"bulk empty", "$0\r\n\r\n", `$""(0)`, '$', 0},
	{"bulk binary", "$6\r\na\r\nb\x00c\r\n", `$"a\r\nb\x00c"(6)`, '$', 6},
	{"bulk null", "$-1\r\n", `$nil(-1)`, '$', -1},
	{"array", "*2\r\n$3\r\nfoo\r\n:1\r\n", `*[$"foo"(3) :1("1")]`, '*', 2},
	{"array empty", "*0\r\n", `*[]`, '*', 0},
	{"array null", "*-1\r\n", `*nil`, '*', -1},
	{"array nested", "*2\r\n*1\r\n+a\r\n*0\r\n", `*[*[+"a"] *[]]`, '*', 2},
	{"array of nulls", "*3\r\n$-1\r\n*-1\r\n_\r\n", `*[$nil(-1) *nil _]`, '*', 3},
	{"null", "_\r\n", `_`, '_', 0},
	{"double", ",3.14\r\n", `,"3.14"`, ',', 0},
	{"double inf", ",-inf\r\n", `,"-inf"`, ',', 0},
	{"boolean true", "#t\r\n", `#"t"`, '#', 0},
	{"boolean false", "#f\r\n", `#"f"`, '#', 0},
	{"blob error", "!21\r\nSYNTAX invalid syntax\r\n", `!"SYNTAX invalid syntax"`, '!', 21},
	{"verbatim", "=15\r\ntxt:Some string\r\n", `="txt:Some string"`, '=', 15},
	{"big number", "(3492890328409238509324850943850943825024385\r\n", `("3492890328409238509324850943850943825024385"`, '(', 0},
	{"map", "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", `%[+"first" :1("1") +"second" :2("2")]`, '%', 2},
	{"map empty", "%0\r\n", `%[]`, '%', 0},
	{"map nested", "%1\r\n+m\r\n%1\r\n$1\r\nk\r\n*1\r\n#t\r\n", `%[+"m" %[$"k"(1) *[#"t"]]]`, '%', 1},
	{"set", "~3\r\n+a\r\n:1\r\n_\r\n", `~[+"a" :1("1") _]`, '~', 3},
	{"set empty", "~0\r\n", `~[]`, '~', 0},
	{"push", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", `>[$"message"(7) $"ch"(2) $"hi"(2)]`, '>', 3},
	{"push empty", ">0\r\n", `>[]`, '>', 0},
	{"attribute before", "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
		`|{+"key-popularity" %[$"a"(1) ,"0.1923" $"b"(1) ,"0.0012"]} *[:2039123("2039123") :9543892("9543892")]`, '*', 2},
	{"attribute before simple", "|1\r\n+a\r\n+b\r\n+OK\r\n", `|{+"a" +"b"} +"OK"`, '+', 0},
	{"attribute empty", "|0\r\n:7\r\n", `:7("7")`, ':', 7},
	{"attributes chained", "|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n_\r\n", `|{+"a" +"b" +"c" +"d"} _`, '_', 0},
	{"attribute inside array", "*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n:5\r\n", `*[|{+"ttl" :3600("3600")} $"v"(1) :5("5")]`, '*', 2},
	{"attribute inside map", "%1\r\n|1\r\n+a\r\n+b\r\n+k\r\n+v\r\n", `%[|{+"a" +"b"} +"k" +"v"]`, '%', 1},
	{"attribute nested in attribute", "|1\r\n|1\r\n+x\r\n+y\r\n+a\r\n+b\r\n+OK\r\n", `|{|{+"x" +"y"} +"a" +"b"} +"OK"`, '+', 0},
	{"all types in one", "*14\r\n+s\r\n-e\r\n:1\r\n$1\r\nb\r\n*0\r\n_\r\n,1.5\r\n#t\r\n!1\r\nx\r\n=5\r\ntxt:y\r\n(1\r\n%0\r\n~0\r\n>0\r\n",
		`*[+"s" -"e" :1("1") $"b"(1) *[] _ ,"1.5" #"t" !"x" ="txt:y" ("1" %[] ~[] >[]]`, '*', 14},
}

// lossy replies do not encode back to their input: ReadValue drops empty
// attributes and merges chained ones.
var lossy = map[string]bool{"attribute empty": true, "attributes chained": true}

func TestForwardReplies(t *testing.T) {
	for _, tt := range replyTests {
		for _, shape := range readerShapes {
			t.Run(tt.name+"/"+shape.name, func(t *testing.T) {
				r := NewReader(shape.new([]byte(tt.in)))
				var out bytes.Buffer
				rep, err := r.Forward(&out)
				if err != nil {
					t.Fatalf("Forward(%q): %v", tt.in, err)
				}
				if have := out.String(); have != tt.in {
					t.Errorf("Forward wrote %q, want %q", have, tt.in)
				}
				if rep.Type != tt.typ || rep.Len != tt.len || rep.N != int64(len(tt.in)) {
					t.Errorf("have Reply{Type %q, Len %d, N %d}, want {%q, %d, %d}", rep.Type, rep.Len, rep.N, tt.typ, tt.len, len(tt.in))
				}
				if _, err := r.Forward(&out); err != io.EOF {
					t.Errorf("Forward at the end: have %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestReadValue(t *testing.T) {
	for _, tt := range replyTests {
		for _, shape := range readerShapes {
			t.Run(tt.name+"/"+shape.name, func(t *testing.T) {
				r := NewReader(shape.new([]byte(tt.in)))
				v, err := r.ReadValue()
				if err != nil {
					t.Fatalf("ReadValue(%q): %v", tt.in, err)
				}
				if have := show(v); have != tt.want {
					t.Errorf("ReadValue(%q):\nhave %s\nwant %s", tt.in, have, tt.want)
				}
				if have := string(encode(nil, v)); have != tt.in && !lossy[tt.name] {
					t.Errorf("encode(ReadValue(%q)): have %q", tt.in, have)
				}
				if _, err := r.ReadValue(); err != io.EOF {
					t.Errorf("ReadValue at the end: have %v, want io.EOF", err)
				}
			})
		}
	}
}

// TestForwardLine checks the one-line content Forward reports, attributes
// skipped, and IsError.
func TestForwardLine(t *testing.T) {
	r := newTestReader("|1\r\n+a\r\n+b\r\n-ERR no\r\n:12\r\n!3\r\nbad\r\n")
	rep, err := r.Forward(io.Discard)
	if err != nil || rep.Type != '-' || string(rep.Line) != "ERR no" || !rep.IsError() {
		t.Fatalf("have %q %q IsError=%v, %v; want '-' \"ERR no\" true", rep.Type, rep.Line, rep.IsError(), err)
	}
	rep, err = r.Forward(nil) // nil skips
	if err != nil || rep.Type != ':' || rep.Len != 12 || string(rep.Line) != "12" || rep.IsError() {
		t.Fatalf("have %q %d %q, %v; want ':' 12 \"12\"", rep.Type, rep.Len, rep.Line, err)
	}
	rep, err = r.Forward(nil)
	if err != nil || !rep.IsError() || rep.Len != 3 {
		t.Fatalf("have %q %d IsError=%v, %v; want a blob error of 3", rep.Type, rep.Len, rep.IsError(), err)
	}
}

// TestNextBody walks values with Next and Body, reading some payloads,
// part of some and none of others: what is left is drained.
func TestNextBody(t *testing.T) {
	in := "*3\r\n$5\r\nhello\r\n$5\r\nworld\r\n!4\r\noops\r\n=9\r\ntxt:hello\r\n:5\r\n"
	for _, shape := range readerShapes {
		t.Run(shape.name, func(t *testing.T) {
			r := NewReader(shape.new([]byte(in)))
			next := func(typ byte, n int64) replyHeader {
				t.Helper()
				h, err := r.Next()
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				if h.typ != typ || h.n != n {
					t.Fatalf("Next: have %q %d, want %q %d", h.typ, h.n, typ, n)
				}
				return h
			}
			if h := next('*', 3); h.elems() != 3 {
				t.Errorf("have elems %d, want 3", h.elems())
			}
			next('$', 5)
			if p, err := io.ReadAll(r.Body()); err != nil || string(p) != "hello" {
				t.Errorf("Body: have %q, %v; want \"hello\"", p, err)
			}
			next('$', 5)
			p := make([]byte, 2)
			if _, err := io.ReadFull(r.Body(), p); err != nil || string(p) != "wo" {
				t.Errorf("Body: have %q, %v; want \"wo\"", p, err)
			}
			next('!', 4)
			next('=', 9)
			if h := next(':', 5); string(h.line) != "5" {
				t.Errorf("have line %q, want \"5\"", h.line)
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next at the end: have %v, want io.EOF", err)
			}
		})
	}
}

func TestHeaderElems(t *testing.T) {
	tests := []struct {
		h    replyHeader
		want int64
	}{
		{replyHeader{typ: '*', n: 3}, 3},
		{replyHeader{typ: '*', n: -1}, 0},
		{replyHeader{typ: '%', n: 3}, 6},
		{replyHeader{typ: '|', n: 2}, 4},
		{replyHeader{typ: '%', n: 1<<63 - 1}, 1<<63 - 2},
		{replyHeader{typ: '~', n: 0}, 0},
		{replyHeader{typ: '>', n: 1}, 1},
		{replyHeader{typ: '$', n: 9}, 0},
		{replyHeader{typ: ':', n: 9}, 0},
	}
	for _, tt := range tests {
		if have := tt.h.elems(); have != tt.want {
			t.Errorf("%q %d: have elems %d, want %d", tt.h.typ, tt.h.n, have, tt.want)
		}
	}
}

// badReplies are malformed replies and the error they give. A prefix of
// valid values is forwarded before the error.
var badReplies = []struct {
	name string
	in   string
	want string // the *ProtocolError's text
}{
	{"bad type byte", "?x\r\n", "Protocol error: unknown type byte '?'"},
	{"bad type byte binary", "\x01\r\n", `Protocol error: unknown type byte '\x01'`},
	{"empty line", "\r\n", `Protocol error: expected '\r\n' at end of line`},
	{"LF only", "+OK\n", `Protocol error: expected '\r\n' at end of line`},
	{"CR missing in bulk header", "$3\nfoo\r\n", `Protocol error: expected '\r\n' at end of line`},
	{"bulk negative", "$-5\r\n", "Protocol error: invalid bulk length"},
	{"bulk -2", "$-2\r\n", "Protocol error: invalid bulk length"},
	{"bulk -0", "$-0\r\n", "Protocol error: invalid bulk length"},
	{"bulk max int64", "$9223372036854775807\r\n", "Protocol error: invalid bulk length"},
	{"bulk overflow", "$99999999999999999999\r\n", "Protocol error: invalid bulk length"},
	{"bulk overflow by one", "$9223372036854775808\r\n", "Protocol error: invalid bulk length"},
	{"bulk leading zero", "$03\r\nfoo\r\n", "Protocol error: invalid bulk length"},
	{"bulk plus sign", "$+3\r\nfoo\r\n", "Protocol error: invalid bulk length"},
	{"bulk space", "$ 3\r\nfoo\r\n", "Protocol error: invalid bulk length"},
	{"bulk empty length", "$\r\n", "Protocol error: invalid bulk length"},
	{"bulk over 512 MiB", "$536870913\r\n", "Protocol error: invalid bulk length"},
	{"blob error null", "!-1\r\n", "Protocol error: invalid bulk length"},
	{"verbatim negative", "=-3\r\n", "Protocol error: invalid bulk length"},
	{"bulk not followed by CRLF", "$3\r\nfooXX", `Protocol error: expected '\r\n' after bulk data`},
	{"bulk too long data", "$2\r\nfoo\r\n", `Protocol error: expected '\r\n' after bulk data`},
	{"array negative", "*-2\r\n", "Protocol error: invalid multibulk length"},
	{"array overflow", "*99999999999999999999\r\n", "Protocol error: invalid multibulk length"},
	{"array over 2^31-1", "*2147483648\r\n", "Protocol error: invalid multibulk length"},
	{"array leading zero", "*01\r\n+a\r\n", "Protocol error: invalid multibulk length"},
	{"array plus sign", "*+1\r\n+a\r\n", "Protocol error: invalid multibulk length"},
	{"map null", "%-1\r\n", "Protocol error: invalid multibulk length"},
	{"set null", "~-1\r\n", "Protocol error: invalid multibulk length"},
	{"push negative", ">-3\r\n", "Protocol error: invalid multibulk length"},
	{"attribute negative", "|-1\r\n+OK\r\n", "Protocol error: invalid multibulk length"},
	{"integer letters", ":12a\r\n", "Protocol error: invalid integer"},
	{"integer empty", ":\r\n", "Protocol error: invalid integer"},
	{"integer overflow", ":9223372036854775808\r\n", "Protocol error: invalid integer"},
	{"integer plus", ":+1\r\n", "Protocol error: invalid integer"},
	{"boolean", "#x\r\n", "Protocol error: invalid boolean"},
	{"boolean long", "#tt\r\n", "Protocol error: invalid boolean"},
	{"null with data", "_x\r\n", "Protocol error: invalid null"},
	{"error in array", "*2\r\n+ok\r\n?\r\n", "Protocol error: unknown type byte '?'"},
	{"streamed string", "$?\r\n;3\r\nabc\r\n;0\r\n", "Protocol error: invalid bulk length"},
	{"line over 64 KiB", "+" + strings.Repeat("x", 64<<10+1) + "\r\n", "Protocol error: too big reply line"},
	{"line over 64 KiB no end", "+" + strings.Repeat("x", 100<<10), "Protocol error: too big reply line"},
}

func TestBadReplies(t *testing.T) {
	for _, tt := range badReplies {
		for _, shape := range readerShapes {
			t.Run(tt.name+"/"+shape.name, func(t *testing.T) {
				_, _, err := forwardAll(t, NewReader(shape.new([]byte(tt.in))))
				wantProtoErr(t, err, tt.want)

				_, err = NewReader(shape.new([]byte(tt.in))).ReadValue()
				wantProtoErr(t, err, tt.want)
			})
		}
	}
}

// TestBadReplyNext: Next reports the same errors for a header on its own.
func TestBadReplyNext(t *testing.T) {
	for _, in := range []string{"$-5\r\n", "$9223372036854775807\r\n", "$99999999999999999999\r\n", "$536870913\r\n", "*-2\r\n", "*2147483648\r\n"} {
		_, err := newTestReader(in).Next()
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("Next(%q): have %v, want a *ProtocolError", in, err)
		}
	}
}

// TestLimitsEdges: exactly at a limit is fine, one over is not.
func TestLimitsEdges(t *testing.T) {
	okLine := "+" + strings.Repeat("x", 64<<10-1) + "\r\n" // 64 KiB with its type byte
	if out, _, err := forwardAll(t, newTestReader(okLine)); err != io.EOF || string(out) != okLine {
		t.Errorf("a 64 KiB line: have %d bytes, %v; want it whole", len(out), err)
	}
	deep := strings.Repeat("*1\r\n", maxValueDepth) + ":1\r\n"
	if _, err := newTestReader(deep).ReadValue(); err != nil {
		t.Errorf("ReadValue, nesting of maxValueDepth: %v", err)
	}
	if _, err := newTestReader(strings.Repeat("*1\r\n", maxValueDepth+1) + "*0\r\n").ReadValue(); err == nil {
		t.Error("ReadValue, nesting of maxValueDepth+1: no error")
	}
	// The largest bulk and count headers pass (the data is not there).
	for _, in := range []string{"$536870912\r\n", "*2147483647\r\n", "%2147483647\r\n"} {
		if _, err := newTestReader(in).Next(); err != nil {
			t.Errorf("Next(%q): %v", in, err)
		}
	}
	// Lower limits.
	r := newTestReader("$11\r\nhello world\r\n*3\r\n")
	r.SetLimits(Limits{MaxBulk: 10, MaxCount: 2, MaxLine: 100, MaxArgBuf: 10})
	_, err := r.Next()
	wantProtoErr(t, err, "Protocol error: invalid bulk length")
	r = newTestReader("*3\r\n")
	r.SetLimits(Limits{MaxBulk: 10, MaxCount: 2, MaxLine: 100, MaxArgBuf: 10})
	_, err = r.Next()
	wantProtoErr(t, err, "Protocol error: invalid multibulk length")
}

// TestNestingBomb: a million "*1\r\n" that never end are read to the end
// of the stream by Forward, in linear time and without recursion;
// ReadValue, which builds the value, refuses them at its depth limit,
// fast, without reading the rest.
func TestNestingBomb(t *testing.T) {
	for _, unit := range []string{"*1\r\n", "%1\r\n", "|1\r\n", ">1\r\n"} {
		bomb := []byte(strings.Repeat(unit, 1_000_000))
		start := time.Now()
		rep, err := NewReader(bufio.NewReader(bytes.NewReader(bomb))).Forward(io.Discard)
		if err != io.ErrUnexpectedEOF || rep.N != int64(len(bomb)) {
			t.Errorf("Forward of a %q bomb: have N %d, %v; want N %d, io.ErrUnexpectedEOF", unit, rep.N, err, len(bomb))
		}
		// About 0.1 s, 2 s under -race on a loaded machine.
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Forward of a %q bomb took %v", unit, d)
		}
		start = time.Now()
		_, err = NewReader(bufio.NewReader(bytes.NewReader(bomb))).ReadValue()
		wantProtoErr(t, err, "Protocol error: reply nesting too deep")
		if d := time.Since(start); d > time.Second {
			t.Errorf("ReadValue of a %q bomb took %v", unit, d)
		}
	}
	// Empty attributes chained add no depth; a long chain must neither
	// recurse nor fail.
	chain := strings.Repeat("|0\r\n", 1_000_000) + "+OK\r\n"
	if out, _, err := forwardAll(t, newTestReader(chain)); err != io.EOF || len(out) != len(chain) {
		t.Errorf("Forward of an attribute chain: have %d bytes, %v", len(out), err)
	}
	if v, err := newTestReader(chain).ReadValue(); err != nil || show(v) != `+"OK"` {
		t.Errorf("ReadValue of an attribute chain: have %s, %v", show(v), err)
	}
}

// deepValue nests depth levels around inner, each level an array, a set,
// a push, a map (the nested value as a key or as a value), a two-element
// array with a sibling after the nested value, or an attribute whose
// value is the nested one, in front of a value of its own. It returns
// the stream and the type and Len that Forward reports for it.
func deepValue(rnd *rand.Rand, depth int, inner string) (string, byte, int64) {
	var pre, post []string
	var typ byte
	var n int64
	for i := range depth {
		var p, q string
		var ty byte
		var l int64 = 1
		switch rnd.IntN(7) {
		case 0:
			p, ty = "*1\r\n", '*'
		case 1:
			p, ty = "~1\r\n", '~'
		case 2:
			p, ty = ">1\r\n", '>'
		case 3:
			p, ty = "%1\r\n+k\r\n", '%'
		case 4:
			p, q, ty = "%1\r\n", "$1\r\nv\r\n", '%'
		case 5:
			p, q, ty, l = "*2\r\n", ":9\r\n", '*', 2
		case 6:
			p, q, ty, l = "|1\r\n+ttl\r\n", ":1\r\n", ':', 1
		}
		if i == 0 {
			typ, n = ty, l
		}
		pre = append(pre, p)
		post = append(post, q)
	}
	var b strings.Builder
	for _, p := range pre {
		b.WriteString(p)
	}
	b.WriteString(inner)
	for i := len(post) - 1; i >= 0; i-- {
		b.WriteString(post[i])
	}
	return b.String(), typ, n
}

// TestForwardDeep: replies nested far deeper than any fixed bound (Redis
// itself sends about 8,000 levels before "-ERR reached lua stack limit")
// are forwarded byte for byte, in constant memory, with the top-level
// type; the reader then goes on with the next value.
func TestForwardDeep(t *testing.T) {
	const depth = 200_000
	tests := []struct {
		name string
		in   string
		typ  byte
		len  int64
	}{
		{"arrays", strings.Repeat("*1\r\n", depth) + ":1\r\n", '*', 1},
		{"arrays down to an error", strings.Repeat("*1\r\n", depth) + "-ERR reached lua stack limit\r\n", '*', 1},
		{"maps", strings.Repeat("%1\r\n+k\r\n", depth) + ":1\r\n", '%', 1},
		{"pushes", strings.Repeat(">1\r\n", depth) + "_\r\n", '>', 1},
		{"attributes in attributes", strings.Repeat("|1\r\n", depth) + "+a\r\n" + strings.Repeat("+b\r\n-ERR x\r\n", depth), '-', 0},
		{"after a deep attribute", "|1\r\n+a\r\n" + strings.Repeat("*1\r\n", depth) + "*-1\r\n" + "$2\r\nhi\r\n", '$', 2},
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range 4 {
		in, typ, n := deepValue(rnd, depth, "-ERR reached lua stack limit\r\n")
		tests = append(tests, struct {
			name string
			in   string
			typ  byte
			len  int64
		}{fmt.Sprintf("mixed %d", i), in, typ, n})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in + "+OK\r\n"
			src := strings.NewReader(in)
			br := bufio.NewReaderSize(src, 16)
			r := NewReader(br)
			var out countWriter
			var rep Reply
			var err error
			alloc := leastAlloc(func() {
				src.Reset(in)
				br.Reset(src)
				r.Reset(br)
				out.n = 0
				rep, err = r.Forward(&out)
			})
			if err != nil || rep.Type != tt.typ || rep.Len != tt.len || rep.N != int64(len(tt.in)) || out.n != rep.N {
				t.Fatalf("have Reply{Type %q, Len %d, N %d}, %d bytes written, %v; want {%q, %d, %d}",
					rep.Type, rep.Len, rep.N, out.n, err, tt.typ, tt.len, len(tt.in))
			}
			if rep.IsError() != (tt.typ == '-') {
				t.Errorf("have IsError %v for a %q reply", rep.IsError(), rep.Type)
			}
			if alloc > 4<<10 {
				t.Errorf("forwarding %d bytes of nesting allocated %d bytes, want a constant few (< 4 KiB)", len(tt.in), alloc)
			}
			if rep, err := r.Forward(io.Discard); err != nil || string(rep.Line) != "OK" {
				t.Errorf("the next value: have %q, %v; want +OK", rep.Line, err)
			}
			// Byte for byte, through every reader shape.
			for _, shape := range readerShapes {
				out, reps, err := forwardAll(t, NewReader(shape.new([]byte(in))))
				if err != io.EOF || len(reps) != 2 || string(out) != in {
					t.Fatalf("%s: have %d values, %d bytes, %v; want the input back whole", shape.name, len(reps), len(out), err)
				}
			}
		})
	}
}

// TestForwardElementCount: a count of elements due that would overflow
// int64 is refused, never wrapped around to a premature end.
func TestForwardElementCount(t *testing.T) {
	r := newTestReader(strings.Repeat("%9223372036854775807\r\n", 3))
	r.SetLimits(Limits{MaxBulk: 10, MaxCount: 1<<63 - 1, MaxLine: 100, MaxArgBuf: 10})
	_, err := r.Forward(io.Discard)
	wantProtoErr(t, err, "Protocol error: too many elements in reply")
}

// TestTruncatedReplies cuts valid streams at every byte: each cut gives
// io.ErrUnexpectedEOF, or io.EOF when it falls between two values, after
// forwarding exactly the complete values. Never a panic.
func TestTruncatedReplies(t *testing.T) {
	var streams [][]byte
	for _, tt := range replyTests {
		streams = append(streams, []byte(tt.in+tt.in))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		streams = append(streams, genReply(rnd, genReply(rnd, nil, 0), 0))
	}
	for _, in := range streams {
		// Value boundaries, from a full forward.
		_, reps, err := forwardAll(t, NewReader(bufio.NewReader(bytes.NewReader(in))))
		if err != io.EOF {
			t.Fatalf("forward %q: %v", in, err)
		}
		ends := map[int]bool{0: true}
		end := 0
		for _, rep := range reps {
			end += int(rep.N)
			ends[end] = true
		}
		for cut := range len(in) {
			prefix := in[:cut]
			r := NewReader(bufio.NewReaderSize(bytes.NewReader(prefix), 16))
			out, _, err := forwardAll(t, r)
			want := io.ErrUnexpectedEOF
			if ends[cut] {
				want = io.EOF
			}
			if err != want {
				t.Fatalf("Forward(%q): have %v, want %v", prefix, err, want)
			}
			if !bytes.HasPrefix(prefix, out) {
				t.Fatalf("Forward(%q) wrote %q: not a prefix of its input", prefix, out)
			}
			// ReadValue, and Next with Body read whole.
			r = NewReader(bufio.NewReaderSize(bytes.NewReader(prefix), 16))
			for err = nil; err == nil; {
				_, err = r.ReadValue()
			}
			if err != want {
				t.Fatalf("ReadValue(%q): have %v, want %v", prefix, err, want)
			}
			r = NewReader(bufio.NewReaderSize(bytes.NewReader(prefix), 16))
			for err = nil; err == nil; {
				if _, err = r.Next(); err == nil {
					_, err = io.Copy(io.Discard, r.Body())
				}
			}
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("Next(%q): have %v, want io.EOF or io.ErrUnexpectedEOF", prefix, err)
			}
		}
	}
}

// TestRoundTripReplies: Forward reproduces random valid streams byte for
// byte, whole, one byte at a time and through a tiny buffer; ReadValue
// reads the same values.
func TestRoundTripReplies(t *testing.T) {
	rnd := rand.New(rand.NewPCG(2024, 7))
	for i := range 300 {
		var in []byte
		for range 1 + rnd.IntN(5) {
			in = genReply(rnd, in, 0)
		}
		for _, shape := range readerShapes {
			out, reps, err := forwardAll(t, NewReader(shape.new(in)))
			if err != io.EOF {
				t.Fatalf("stream %d %s: Forward: %v\ninput %q", i, shape.name, err, in)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("stream %d %s: Forward wrote\n%q\nwant\n%q", i, shape.name, out, in)
			}
			var n int64
			for _, rep := range reps {
				n += rep.N
			}
			if n != int64(len(in)) {
				t.Fatalf("stream %d %s: have sum of N %d, want %d", i, shape.name, n, len(in))
			}
			r := NewReader(shape.new(in))
			var enc []byte
			for {
				v, err := r.ReadValue()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("stream %d %s: ReadValue: %v", i, shape.name, err)
				}
				enc = encode(enc, v)
			}
			if !bytes.Equal(enc, in) {
				t.Fatalf("stream %d %s: encode(ReadValue) gave\n%q\nwant\n%q", i, shape.name, enc, in)
			}
		}
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

var errBroken = errors.New("broken pipe")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errBroken
	}
	w.n -= len(p)
	return len(p), nil
}

// TestForwardWriteError: a failed write is a *WriteError wrapping the
// cause, and N says the value was cut.
func TestForwardWriteError(t *testing.T) {
	in := "*2\r\n$5\r\nhello\r\n+OK\r\n"
	for n := range len(in) {
		r := newTestReader(in)
		rep, err := r.Forward(&failWriter{n: n})
		var we *WriteError
		if !errors.As(err, &we) || !errors.Is(err, errBroken) {
			t.Fatalf("fail after %d: have %v, want a *WriteError wrapping %v", n, err, errBroken)
		}
		if rep.N <= 0 {
			t.Errorf("fail after %d: have N %d, want > 0 (the value was cut)", n, rep.N)
		}
	}
	// A write failure in a bulk's payload leaves the payload pending: the
	// next call drains it.
	r := newTestReader("$5\r\nhello\r\n+OK\r\n")
	if _, err := r.Forward(&failWriter{n: 6}); err == nil {
		t.Fatal("no error")
	}
	rep, err := r.Forward(io.Discard)
	if err != nil || rep.Type != '+' {
		t.Errorf("after the failure: have %q, %v; want +OK", rep.Type, err)
	}
}

// TestReaderReset: Reset forgets a half-read value.
func TestReaderReset(t *testing.T) {
	r := newTestReader("$5\r\nhel")
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	r.Reset(bufio.NewReader(strings.NewReader("+OK\r\n")))
	rep, err := r.Forward(nil)
	if err != nil || string(rep.Line) != "OK" {
		t.Errorf("after Reset: have %q, %v; want OK", rep.Line, err)
	}
}

// TestBuffered: what is buffered of the next value, not of this one.
func TestBuffered(t *testing.T) {
	r := newTestReader("+OK\r\n$3\r\nbar\r\n")
	if _, err := r.Forward(nil); err != nil {
		t.Fatal(err)
	}
	if have := r.Buffered(); have != 9 {
		t.Errorf("after +OK: have Buffered %d, want 9", have)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if have := r.Buffered(); have != 0 {
		t.Errorf("after $3 with the payload unread: have Buffered %d, want 0", have)
	}
}

func TestForwardHeader(t *testing.T) {
	cases := []struct {
		in, head string
		typ      byte
		n        int64
	}{
		{"*3\r\n+OK\r\n-ERR x\r\n:1\r\n+NEXT\r\n", "*3\r\n", '*', 3},
		{"*0\r\n+NEXT\r\n", "*0\r\n", '*', 0},
		{"*-1\r\n+NEXT\r\n", "*-1\r\n", '*', -1},
		{"_\r\n+NEXT\r\n", "_\r\n", '_', -1},
		{"-EXECABORT no\r\n+NEXT\r\n", "-EXECABORT no\r\n", '-', -1},
		{"|1\r\n+a\r\n+b\r\n*1\r\n:1\r\n+NEXT\r\n", "|1\r\n+a\r\n+b\r\n*1\r\n:1\r\n", '*', -1},
	}
	for _, tc := range cases {
		r := NewReader(bufio.NewReader(strings.NewReader(tc.in)))
		var out bytes.Buffer
		rep, err := r.ForwardHeader(&out)
		if err != nil || out.String() != tc.head || rep.Type != tc.typ || rep.Len != tc.n {
			t.Errorf("%q: have %q %c %d %v, want %q %c %d", tc.in, out.String(), rep.Type, rep.Len, err, tc.head, tc.typ, tc.n)
			continue
		}
		for range max(rep.Len, 0) {
			if _, err := r.Forward(&out); err != nil {
				t.Fatal(err)
			}
		}
		if rep, err := r.Forward(nil); err != nil || string(rep.Line) != "NEXT" {
			t.Errorf("%q: the value after: %q %v", tc.in, rep.Line, err)
		}
		if !strings.HasPrefix(tc.in, out.String()) || len(out.String())+len("+NEXT\r\n") != len(tc.in) {
			t.Errorf("%q: forwarded %q", tc.in, out.String())
		}
	}
}
