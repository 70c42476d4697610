package resp

import (
	"bufio"
	"strings"
	"testing"
)

func TestDetach(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n+OK\r\n")))
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Detach(); ok {
		t.Fatal("detached in the middle of a command")
	}
	r.Arg()
	r.Arg()
	if _, ok := r.Detach(); ok {
		t.Fatal("detached with the next value buffered")
	}
	if _, err := r.Forward(nil); err != nil {
		t.Fatal(err)
	}
	br, ok := r.Detach()
	if !ok || br == nil {
		t.Fatal("not detached at a boundary with nothing buffered")
	}
	if n := r.Buffered(); n != 0 {
		t.Errorf("Buffered while detached: %d", n)
	}
	r.Reset(bufio.NewReader(strings.NewReader(":1\r\n")))
	if rep, err := r.Forward(nil); err != nil || rep.Type != ':' {
		t.Errorf("after Reset: %v %v", rep, err)
	}
}
