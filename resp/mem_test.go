package resp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// hugeBulk is the largest bulk Redis accepts.
const hugeBulk = 512 << 20

// heapDelta runs f and returns the bytes and objects it allocated.
func heapDelta(f func()) (bytes, objects uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
}

// leastAlloc runs f (which builds its own input) three times and returns
// the least it allocated: the runtime, the race detector or the testing
// package may allocate a few bytes in the background during one run, not
// during all three.
func leastAlloc(f func()) uint64 {
	least := uint64(1 << 63)
	for range 3 {
		alloc, _ := heapDelta(f)
		least = min(least, alloc)
	}
	return least
}

// countWriter counts what it is given and drops it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// TestForward512MiB: a 512 MiB bulk, generated on the fly, is forwarded
// through the bufio buffer in constant memory.
func TestForward512MiB(t *testing.T) {
	head := fmt.Appendf(nil, "*2\r\n$%d\r\n", hugeBulk)
	src := &zeroBulk{}
	r := NewReader(bufio.NewReader(src))
	var w countWriter
	start := time.Now()
	alloc := leastAlloc(func() {
		*src = zeroBulk{head: head, n: hugeBulk, tail: []byte("\r\n:1\r\n")}
		w.n = 0
		rep, err := r.Forward(&w)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(len(head)) + hugeBulk + 6; rep.N != want || w.n != want {
			t.Errorf("have N %d and %d bytes written, want %d", rep.N, w.n, want)
		}
	})
	t.Logf("forwarded %d MiB 3 times in %v: at least %d bytes allocated", hugeBulk>>20, time.Since(start), alloc)
	// A few bytes, plus at most one pooled transfer buffer (bigCopy) when a
	// GC has emptied the pool: constant whatever the size.
	if alloc > 4<<10+bigCopy {
		t.Errorf("forwarding 512 MiB allocated %d bytes, want a constant few (< 4 KiB + one %d-byte transfer buffer)", alloc, bigCopy)
	}
}

// TestCopyArg512MiB: the same for a client's 512 MiB argument.
func TestCopyArg512MiB(t *testing.T) {
	head := fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n", hugeBulk)
	src := &zeroBulk{}
	r := NewReader(bufio.NewReader(src))
	var w countWriter
	start := time.Now()
	alloc := leastAlloc(func() {
		*src = zeroBulk{head: head, n: hugeBulk, tail: []byte("\r\n")}
		w.n = 0
		n, err := r.ReadCommand()
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := r.CopyArg(&w); err != nil {
				t.Fatal(err)
			}
		}
		if want := int64(len(head)-4) + hugeBulk + 2; w.n != want {
			t.Errorf("have %d bytes written, want %d", w.n, want)
		}
		if _, err := r.ReadCommand(); err != io.EOF {
			t.Errorf("then: have %v, want io.EOF", err)
		}
	})
	t.Logf("copied a %d MiB argument 3 times in %v: at least %d bytes allocated", hugeBulk>>20, time.Since(start), alloc)
	if alloc > 4<<10+bigCopy {
		t.Errorf("copying 512 MiB allocated %d bytes, want a constant few (< 4 KiB + one %d-byte transfer buffer)", alloc, bigCopy)
	}
}

// TestDeclaredLengthsDoNotAllocate: a header that declares 512 MiB (or
// 2^31-1 elements) and sends nothing costs nothing, whichever method
// reads it.
func TestDeclaredLengthsDoNotAllocate(t *testing.T) {
	bulk := fmt.Sprintf("$%d\r\n", hugeBulk)
	tests := []struct {
		name string
		in   string
		read func(r *Reader) error
	}{
		{"Forward bulk", bulk, func(r *Reader) error { _, err := r.Forward(io.Discard); return err }},
		{"Forward array", "*2147483647\r\n", func(r *Reader) error { _, err := r.Forward(io.Discard); return err }},
		{"Forward map", "%2147483647\r\n", func(r *Reader) error { _, err := r.Forward(io.Discard); return err }},
		{"ReadValue bulk", bulk, func(r *Reader) error { _, err := r.ReadValue(); return err }},
		{"ReadValue verbatim", fmt.Sprintf("=%d\r\ntxt:", hugeBulk), func(r *Reader) error { _, err := r.ReadValue(); return err }},
		{"ReadValue array", "*2147483647\r\n", func(r *Reader) error { _, err := r.ReadValue(); return err }},
		{"Next and Body", bulk, func(r *Reader) error {
			if _, err := r.Next(); err != nil {
				return err
			}
			_, err := io.Copy(io.Discard, r.Body())
			return err
		}},
		{"Arg", "*1\r\n" + bulk, func(r *Reader) error {
			r.ReadCommand()
			_, err := r.Arg()
			if err == ErrArgTooLong {
				_, err = r.ReadCommand()
			}
			return err
		}},
		{"CopyArg", "*1\r\n" + bulk, func(r *Reader) error { r.ReadCommand(); return r.CopyArg(io.Discard) }},
		{"SkipArgs", "*2147483647\r\n" + bulk, func(r *Reader) error { r.ReadCommand(); return r.SkipArgs() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.NewReader(tt.in)
			br := bufio.NewReader(src)
			r := NewReader(br)
			var err error
			alloc := leastAlloc(func() {
				src.Reset(tt.in)
				br.Reset(src)
				r.Reset(br)
				err = tt.read(r)
			})
			if err != io.ErrUnexpectedEOF {
				t.Errorf("have %v, want io.ErrUnexpectedEOF", err)
			}
			// A few KiB, plus at most the pooled transfer buffer (bigCopy),
			// which the pool may not give back (under -race it drops a
			// quarter of what is put): constant, never the declared size.
			if alloc > 16<<10+bigCopy {
				t.Errorf("allocated %d bytes for a declared length, want < 16 KiB + %d", alloc, bigCopy)
			}
		})
	}
}

// TestSteadyStateAllocs: forwarding replies and copying commands allocate
// nothing once the reader has warmed up.
func TestSteadyStateAllocs(t *testing.T) {
	replies := "+OK\r\n$3\r\nbar\r\n*3\r\n:1\r\n%1\r\n+a\r\n$-1\r\n|1\r\n+x\r\n+y\r\n_\r\n" + "$20000\r\n" + strings.Repeat("z", 20000) + "\r\n"
	r := NewReader(bufio.NewReader(&cycle{data: []byte(replies)}))
	if allocs := testing.AllocsPerRun(100, func() {
		for range 6 {
			if _, err := r.Forward(io.Discard); err != nil {
				t.Fatal(err)
			}
		}
	}); allocs != 0 {
		t.Errorf("Forward: %v allocations a run, want 0", allocs)
	}

	cmds := string(multibulk([]string{"SET", "key", "value"}, []string{"GET", strings.Repeat("k", 10000)}, []string{"SET", "k", strings.Repeat("v", 100000)})) +
		"PING\r\nSET a \"b c\"\r\n"
	r = NewReader(bufio.NewReader(&cycle{data: []byte(cmds)}))
	w := bufio.NewWriter(io.Discard)
	var hdr []byte
	if allocs := testing.AllocsPerRun(100, func() {
		for range 5 {
			n, err := r.ReadCommand()
			if err != nil {
				t.Fatal(err)
			}
			hdr = AppendArray(hdr[:0], n)
			w.Write(hdr)
			if _, err := r.Arg(); err != nil {
				t.Fatal(err)
			}
			for r.Args() > 0 {
				if _, err := r.Arg(); err == ErrArgTooLong {
					err = r.CopyArg(w)
				} else if err != nil {
					t.Fatal(err)
				}
			}
		}
	}); allocs != 0 {
		t.Errorf("ReadCommand/Arg/CopyArg: %v allocations a run, want 0", allocs)
	}
}

// TestBodyRead: Body reads the payload through any buffer size.
func TestBodyRead(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	in := append(fmt.Appendf(nil, "$%d\r\n", len(payload)), payload...)
	in = append(in, "\r\n+OK\r\n"...)
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	p := make([]byte, 7)
	for {
		n, err := r.Body().Read(p)
		got.Write(p[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), payload) {
		t.Errorf("Body: have %d bytes, want %d", got.Len(), len(payload))
	}
	if h, err := r.Next(); err != nil || h.typ != '+' {
		t.Errorf("then: have %q, %v", h.typ, err)
	}
}
