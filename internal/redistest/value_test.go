package redistest

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func read(s string) (Value, error) {
	return ReadValue(bufio.NewReader(strings.NewReader(s)))
}

func TestReadValue(t *testing.T) {
	bulk := func(s string) Value { return Value{Type: '$', Str: s} }
	integer := func(n int64) Value { return Value{Type: ':', Int: n} }
	tests := []struct {
		in   string
		want Value
	}{
		{"+OK\r\n", Value{Type: '+', Str: "OK"}},
		{"-ERR bad\r\n", Value{Type: '-', Str: "ERR bad"}},
		{":-42\r\n", integer(-42)},
		{"$3\r\na\r\n\r\n", bulk("a\r\n")},
		{"$0\r\n\r\n", bulk("")},
		{"$-1\r\n", Value{Type: '$', Null: true}},
		{"*-1\r\n", Value{Type: '*', Null: true}},
		{"*0\r\n", Value{Type: '*', Elems: []Value{}}},
		{"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n", Value{Type: '*', Elems: []Value{integer(1), {Type: '*', Elems: []Value{bulk("x")}}}}},
		{"_\r\n", Value{Type: '_', Null: true}},
		{",3.141\r\n", Value{Type: ',', Float: "3.141"}},
		{",-inf\r\n", Value{Type: ',', Float: "-inf"}},
		{",nan\r\n", Value{Type: ',', Float: "nan"}},
		{",1e400\r\n", Value{Type: ',', Float: "1e400"}},
		{"#t\r\n", Value{Type: '#', Int: 1}},
		{"#f\r\n", Value{Type: '#'}},
		{"!9\r\nERR x\r\nyz\r\n", Value{Type: '!', Str: "ERR x\r\nyz"}},
		{"=8\r\ntxt:a\nbc\r\n", Value{Type: '=', Str: "txt:a\nbc"}},
		{"(-1234567999999999999999999\r\n", Value{Type: '(', Str: "-1234567999999999999999999"}},
		{"%1\r\n+k\r\n:1\r\n", Value{Type: '%', Elems: []Value{{Type: '+', Str: "k"}, integer(1)}}},
		{"~2\r\n:1\r\n:2\r\n", Value{Type: '~', Elems: []Value{integer(1), integer(2)}}},
		{">2\r\n+message\r\n:1\r\n", Value{Type: '>', Elems: []Value{{Type: '+', Str: "message"}, integer(1)}}},
		{"|1\r\n+a\r\n:1\r\n$1\r\nv\r\n", Value{Type: '$', Str: "v", Attrs: []Value{{Type: '+', Str: "a"}, integer(1)}}},
		{"*1\r\n|1\r\n+a\r\n:1\r\n:7\r\n", Value{Type: '*', Elems: []Value{{Type: ':', Int: 7, Attrs: []Value{{Type: '+', Str: "a"}, integer(1)}}}}},
	}
	for _, tt := range tests {
		have, err := read(tt.in)
		if err != nil {
			t.Errorf("ReadValue(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(have, tt.want) {
			t.Errorf("ReadValue(%q):\nhave %#v\nwant %#v", tt.in, have, tt.want)
		}
	}
}

func TestReadValueErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error // nil: a *ProtocolError
	}{
		{"", io.EOF},
		{"+OK", io.ErrUnexpectedEOF},
		{"$5\r\nab", io.ErrUnexpectedEOF},
		{"*2\r\n:1\r\n", io.ErrUnexpectedEOF},
		{"|1\r\n+a\r\n:1\r\n", io.ErrUnexpectedEOF},
		{"+OK\n", nil},
		{"\r\n", nil},
		{"?\r\n", nil},
		{"$?\r\n;1\r\na\r\n;0\r\n", nil}, // streamed strings: Redis never sends them
		{"*?\r\n.\r\n", nil},
		{"$-5\r\n", nil},
		{"$-1x\r\n", nil},
		{"$+1\r\na\r\n", nil},
		{"$9223372036854775807\r\n", nil},
		{"$99999999999999999999\r\n", nil},
		{"$1\r\nabc\r\n", nil},
		{"!-1\r\n", nil},
		{"=3\r\nabc\r\n", nil},
		{"%-1\r\n", nil},
		{"~-1\r\n", nil},
		{"*-2\r\n", nil},
		{":1.5\r\n", nil},
		{":\r\n", nil},
		{"#x\r\n", nil},
		{"_x\r\n", nil},
		{",abc\r\n", nil},
		{"(12a\r\n", nil},
		{"(\r\n", nil},
		{strings.Repeat("*1\r\n", maxDepth+2) + ":1\r\n", nil},
		{"+" + strings.Repeat("x", maxLine+10) + "\r\n", nil},
	}
	for _, tt := range tests {
		_, err := read(tt.in)
		var pe *ProtocolError
		switch {
		case tt.want == nil && !errors.As(err, &pe):
			t.Errorf("ReadValue(%.40q): have %v, want a ProtocolError", tt.in, err)
		case tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("ReadValue(%.40q): have %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestValueString(t *testing.T) {
	bulk := func(s string) Value { return Value{Type: '$', Str: s} }
	integer := func(n int64) Value { return Value{Type: ':', Int: n} }
	var twelve []Value
	for i := range 12 {
		twelve = append(twelve, integer(int64(i)))
	}
	tests := []struct {
		v    Value
		want string
	}{
		{Value{Type: '+', Str: "OK"}, "OK"},
		{Value{Type: '-', Str: "ERR x"}, "(error) ERR x"},
		{Value{Type: '!', Str: "ERR y"}, "(error) ERR y"},
		{integer(1), "(integer) 1"},
		{bulk("a\"b\\c\n\r\t\a\b\x01\xc3\xa9~"), `"a\"b\\c\n\r\t\a\b\x01\xc3\xa9~"`},
		{Value{Type: '$', Null: true}, "(nil)"},
		{Value{Type: '*', Null: true}, "(nil)"},
		{Value{Type: '_', Null: true}, "(nil)"},
		{Value{Type: '*'}, "(empty array)"},
		{Value{Type: '%'}, "(empty hash)"},
		{Value{Type: '~'}, "(empty set)"},
		{Value{Type: '>'}, "(empty push)"},
		{Value{Type: ',', Float: "3.141"}, "(double) 3.141"},
		{Value{Type: '#', Int: 1}, "(true)"},
		{Value{Type: '#'}, "(false)"},
		{Value{Type: '(', Str: "123"}, "(big number) 123"},
		{Value{Type: '=', Str: "txt:a\nb"}, "a\nb"},
		{Value{Type: '*', Elems: []Value{integer(1), {Type: '*', Elems: []Value{integer(2), bulk("a")}}, {Type: '*'}}},
			"1) (integer) 1\n2) 1) (integer) 2\n   2) \"a\"\n3) (empty array)"},
		{Value{Type: '*', Elems: twelve}, " 1) (integer) 0\n 2) (integer) 1\n 3) (integer) 2\n 4) (integer) 3\n" +
			" 5) (integer) 4\n 6) (integer) 5\n 7) (integer) 6\n 8) (integer) 7\n 9) (integer) 8\n" +
			"10) (integer) 9\n11) (integer) 10\n12) (integer) 11"},
		{Value{Type: '%', Elems: []Value{bulk("k"), {Type: '*', Elems: []Value{integer(1), integer(2)}}, bulk("j"), integer(3)}},
			"1# \"k\" => \n   1) (integer) 1\n   2) (integer) 2\n2# \"j\" => (integer) 3"},
		{Value{Type: '%', Elems: []Value{bulk("k"), {Type: '%', Elems: []Value{bulk("a"), integer(1)}}}},
			"1# \"k\" => 1# \"a\" => (integer) 1"},
		{Value{Type: '~', Elems: []Value{integer(1)}}, "1~ (integer) 1"},
		{Value{Type: '$', Str: "v", Attrs: []Value{bulk("a"), integer(1)}}, "(attributes) 1# \"a\" => (integer) 1\n\"v\""},
	}
	for _, tt := range tests {
		if have := tt.v.String(); have != tt.want {
			t.Errorf("%#v.String():\nhave %q\nwant %q", tt.v, have, tt.want)
		}
	}
}

func TestValueErr(t *testing.T) {
	if err := (Value{Type: '+', Str: "OK"}).Err(); err != nil {
		t.Errorf("+OK: have %v, want nil", err)
	}
	for _, typ := range []byte{'-', '!'} {
		err := Value{Type: typ, Str: "WRONGTYPE x"}.Err()
		var re ReplyError
		if !errors.As(err, &re) || err.Error() != "WRONGTYPE x" {
			t.Errorf("%c: have %v, want ReplyError WRONGTYPE x", typ, err)
		}
	}
}

func TestAppendCommand(t *testing.T) {
	have, err := AppendCommand(nil, "SET", []byte("k"), 1, int64(-2), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	want := "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$2\r\n-2\r\n$3\r\n0.5\r\n"
	if string(have) != want {
		t.Errorf("have %q, want %q", have, want)
	}
	if _, err := AppendCommand(nil, struct{}{}); err == nil {
		t.Error("struct argument: have nil error, want one")
	}
}
