package resp

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// writeCounter counts the writes it is given.
type writeCounter struct {
	bytes.Buffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// A command or a reply whole in the buffer moves in one write; one that
// is not (longer than the buffer, or cut) moves line by line, the same
// bytes.
func TestWholeValuesMoveInOneWrite(t *testing.T) {
	big := strings.Repeat("x", 100)
	for _, tt := range []struct {
		in     string
		size   int
		writes int
	}{
		{"$3\r\nbar\r\n", 4096, 1},
		{"*2\r\n$1\r\na\r\n%1\r\n+k\r\n:1\r\n", 4096, 1},
		{"|1\r\n+a\r\n+b\r\n-ERR x\r\n", 4096, 1},
		{"$100\r\n" + big + "\r\n", 64, 4}, // header, two parts of the body, CRLF
	} {
		r := NewReader(bufio.NewReaderSize(strings.NewReader(tt.in), tt.size))
		var w writeCounter
		rep, err := r.Forward(&w)
		if err != nil || w.String() != tt.in || int(rep.N) != len(tt.in) {
			t.Fatalf("%q: have %q, %+v, %v", tt.in, w.String(), rep, err)
		}
		if w.writes != tt.writes {
			t.Errorf("%q through %d bytes: %d writes, want %d", tt.in, tt.size, w.writes, tt.writes)
		}
	}

	cmd := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"
	r := NewReader(bufio.NewReaderSize(strings.NewReader(cmd+cmd[:10]), 4096))
	if n, err := r.ReadCommand(); n != 3 || err != nil {
		t.Fatalf("ReadCommand: %d, %v", n, err)
	}
	if name, err := r.Arg(); string(name) != "SET" || err != nil {
		t.Fatalf("Arg: %q, %v", name, err)
	}
	taken, ok := r.Taken()
	if !ok || string(taken) != "*3\r\n$3\r\nSET\r\n" {
		t.Fatalf("Taken: %q, %v", taken, ok)
	}
	if r.Buffered() != len(cmd)-len(taken)+10 {
		t.Fatalf("Buffered: %d, want the rest of the command and the next 10 bytes", r.Buffered())
	}
	var w writeCounter
	if err := r.CopyRest(&w); err != nil || w.writes != 1 || w.String() != cmd[len(taken):] {
		t.Fatalf("CopyRest: %d writes of %q, %v", w.writes, w.String(), err)
	}
	// The next command is cut: read line by line, its name is cut.
	if n, err := r.ReadCommand(); n != 3 || err != nil {
		t.Fatalf("ReadCommand of a cut command: %d, %v", n, err)
	}
	if _, ok := r.Taken(); ok {
		t.Fatal("a cut command read whole")
	}
	if _, err := r.Arg(); err != io.ErrUnexpectedEOF {
		t.Fatalf("Arg of a cut name: %v", err)
	}
}

// The short way of reading lengths (lengthAt) against the long way, at
// its edges, as replies and as command arguments.
func TestWholeLengthEdges(t *testing.T) {
	for _, in := range []string{
		"$-1\r\n", "*-1\r\n", "$-2\r\n", "*-2\r\n", "$-0\r\n", "$-\r\n", "$\r\n", "*\r\n",
		"$01\r\nx\r\n", "*01\r\n:1\r\n", "$0\r\n\r\n", "*0\r\n", "$1\r\nx\r\n",
		"$123456789012345678\r\n", "$1234567890123456789\r\n", "$9223372036854775808\r\n",
		"*3\r\n$-1\r\n*-1\r\n$2\r\nab\r\n", "$3\r\nabc\n\n", "$3\rabc\r\n", "*1\r\n$3\r\nabcd\r\n",
		"$536870913\r\n", "*2147483648\r\n", ":-0\r\n", "$2\r\nab\r\n$-1\r\n*1\r\n*0\r\n",
	} {
		_, reps, err := checkForward(t, []byte(in), 16, DefaultLimits)
		checkWhole(t, []byte(in), reps, err)
		checkCommands(t, []byte("*2\r\n"+in))
		checkCommands(t, []byte("*1\r\n"+in))
	}
}
