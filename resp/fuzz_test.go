package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
)

// tinyLimits make small inputs reach every limit.
var tinyLimits = Limits{MaxBulk: 100, MaxCount: 10, MaxLine: 40, MaxArgBuf: 5}

// heapAllocated is the bytes allocated so far by the whole process; cheap
// enough to read at every fuzz execution (no stop-the-world).
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// checkAllocBound fails if the input cost more memory than a bound in
// its own size: no allocation may follow a length the input declares.
func checkAllocBound(t *testing.T, in []byte, before uint64) {
	t.Helper()
	if alloc, bound := heapAllocated()-before, uint64(1<<20+512*len(in)); alloc > bound {
		t.Fatalf("%d bytes of input allocated %d bytes (bound %d)", len(in), alloc, bound)
	}
}

// wantStreamErr fails unless err is one a reader may end with.
func wantStreamErr(t *testing.T, what string, err error) {
	t.Helper()
	var pe *ProtocolError
	if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &pe) {
		t.Fatalf("%s: unexpected error %v (%T)", what, err, err)
	}
}

func FuzzReader(f *testing.F) {
	for _, tt := range replyTests {
		f.Add([]byte(tt.in))
		f.Add([]byte(tt.in + tt.in[:len(tt.in)/2]))
	}
	for _, tt := range badReplies {
		f.Add([]byte(tt.in))
	}
	rnd := rand.New(rand.NewPCG(99, 100))
	for range 20 {
		f.Add(genReply(rnd, genReply(rnd, nil, 0), 0))
	}
	for _, in := range []string{
		"$536870912\r\n", "$536870912\r\nabc", "*2147483647\r\n", "%2147483647\r\n:1\r\n",
		"|2147483647\r\n", "=536870912\r\ntxt:", "!536870912\r\n", "|0\r\n|0\r\n|0\r\n+OK\r\n",
		"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", strings.Repeat("*1\r\n", maxValueDepth+1) + ":1\r\n",
		strings.Repeat("%1\r\n|1\r\n+a\r\n+b\r\n", maxValueDepth) + "+k\r\n" + strings.Repeat(">1\r\n", maxValueDepth) + "-ERR x\r\n", "$3\r\nbar\r\n+OK\r\n",
	} {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		before := heapAllocated()
		values, reps, fwdErr := checkForward(t, in, 16, DefaultLimits)
		checkWhole(t, in, reps, fwdErr)
		checkForward(t, in, 16, tinyLimits)
		checkReadValue(t, in, values, fwdErr)
		checkNext(t, in)
		checkAllocBound(t, in, before)
	})
}

// checkForward forwards every value of in and checks that what it writes
// is exactly what it consumed. It returns the bytes of each complete
// value and the error that ended the stream.
func checkForward(t *testing.T, in []byte, size int, lim Limits) ([][]byte, []Reply, error) {
	t.Helper()
	return checkForwardWith(t, in, size, lim, false)
}

// checkWhole: the fast path (whole.go), through buffers that hold most
// values whole, says what the line-by-line path says, value for value,
// error for error.
func checkWhole(t *testing.T, in []byte, reps []Reply, fwdErr error) {
	t.Helper()
	_, slow, slowErr := checkForwardWith(t, in, 4096, DefaultLimits, true)
	if slowErr.Error() != fwdErr.Error() || !slices.EqualFunc(reps, slow, sameReply) {
		t.Fatalf("Forward through 16 bytes: %v, %v; line by line: %v, %v", reps, fwdErr, slow, slowErr)
	}
	for _, size := range []int{16, 4096} {
		_, fast, fastErr := checkForwardWith(t, in, size, DefaultLimits, false)
		if fastErr.Error() != slowErr.Error() || !slices.EqualFunc(fast, slow, sameReply) {
			t.Fatalf("Forward through %d bytes: %v, %v; line by line: %v, %v", size, fast, fastErr, slow, slowErr)
		}
	}
	for _, size := range []int{16, 4096} {
		runs, runsErr := forwardRuns(t, in, size)
		if runsErr.Error() != slowErr.Error() || !slices.EqualFunc(runs, slow, sameReply) {
			t.Fatalf("in runs through %d bytes: %v, %v; line by line: %v, %v", size, runs, runsErr, slow, slowErr)
		}
	}
}

// forwardRuns moves the values as the proxy moves a pipeline of replies:
// the runs ValueAt accepts, then one value with Forward, and again. What
// it writes must be what it consumed.
func forwardRuns(t *testing.T, in []byte, size int) ([]Reply, error) {
	t.Helper()
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), size))
	var out bytes.Buffer
	var reps []Reply
	for {
		buf := r.Pending()
		pos := 0
		for {
			rep, ok := r.ValueAt(buf, pos)
			if !ok {
				break
			}
			out.Write(buf[pos : pos+int(rep.N)])
			rep.Line = slices.Clone(rep.Line)
			reps = append(reps, rep)
			pos += int(rep.N)
		}
		r.Consume(pos)
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("runs wrote %q: not a prefix of the input", out.Bytes())
		}
		if pos > 0 {
			continue
		}
		rep, err := r.Forward(&out)
		if err != nil {
			return reps, err
		}
		rep.Line = slices.Clone(rep.Line)
		reps = append(reps, rep)
	}
}

func checkForwardWith(t *testing.T, in []byte, size int, lim Limits, lineByLine bool) ([][]byte, []Reply, error) {
	t.Helper()
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), size))
	r.SetLimits(lim)
	r.lineByLine = lineByLine
	var out bytes.Buffer
	var values [][]byte
	var reps []Reply
	consumed := 0
	for {
		rep, err := r.Forward(&out)
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("Forward wrote %q: not a prefix of the input", out.Bytes())
		}
		if err != nil {
			wantStreamErr(t, "Forward", err)
			if err == io.EOF && (rep.N != 0 || consumed != len(in)) {
				t.Fatalf("io.EOF with N %d after %d of %d bytes", rep.N, consumed, len(in))
			}
			return values, reps, err
		}
		rep.Line = slices.Clone(rep.Line)
		reps = append(reps, rep)
		if rep.N <= 0 || out.Len() != consumed+int(rep.N) {
			t.Fatalf("Forward: have N %d and %d bytes written, want N > 0 and %d written", rep.N, out.Len(), consumed+int(rep.N))
		}
		values = append(values, in[consumed:out.Len()])
		consumed = out.Len()
	}
}

func sameReply(a, b Reply) bool {
	return a.Type == b.Type && a.Len == b.Len && a.N == b.N && bytes.Equal(a.Line, b.Line)
}

// checkReadValue reads the same values with ReadValue: as many as Forward,
// each encoding back to its bytes (unless it holds attributes, which
// ReadValue may merge or drop), and the same final error.
func checkReadValue(t *testing.T, in []byte, values [][]byte, fwdErr error) {
	t.Helper()
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
	for i := 0; ; i++ {
		v, err := r.ReadValue()
		var pe *ProtocolError
		if errors.As(err, &pe) && pe.Reason == "reply nesting too deep" {
			// ReadValue bounds the depth of what it builds; Forward
			// needs no bound and moved (or failed in) this value.
			return
		}
		if err != nil {
			if i != len(values) || err.Error() != fwdErr.Error() {
				t.Fatalf("ReadValue: %v after %d values; Forward: %v after %d", err, i, fwdErr, len(values))
			}
			return
		}
		if i >= len(values) {
			t.Fatalf("ReadValue read value %d, %s, Forward stopped at %v", i, show(v), fwdErr)
		}
		if enc := encode(nil, v); !bytes.Equal(enc, values[i]) && !bytes.Contains(values[i], []byte("|")) {
			t.Fatalf("value %d: Forward moved %q, ReadValue encodes as %q", i, values[i], enc)
		}
	}
}

// checkNext walks the values with Next, reading half of each payload.
func checkNext(t *testing.T, in []byte) {
	t.Helper()
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
	var err error
	for steps := 0; err == nil; steps++ {
		var h replyHeader
		if h, err = r.Next(); err != nil {
			break
		}
		if h.n > 0 && (h.typ == '$' || h.typ == '!' || h.typ == '=') {
			_, err = io.CopyN(io.Discard, r.Body(), h.n/2)
		}
		if steps > len(in) {
			t.Fatalf("Next: %d values from %d bytes", steps, len(in))
		}
	}
	wantStreamErr(t, "Next", err)
}

func FuzzCommand(f *testing.F) {
	for _, tt := range commandTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range badCommands {
		f.Add([]byte(tt.in))
	}
	rnd := rand.New(rand.NewPCG(101, 102))
	for range 10 {
		f.Add(multibulk(genCommand(rnd), genCommand(rnd)))
	}
	for range 10 {
		f.Add(append(genInlineLine(rnd), "\r\n"...))
	}
	for _, in := range []string{
		"*1\r\n$536870912\r\n", "*2147483647\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc",
		"*11\r\n", "*1\r\n$16385\r\n", "PING\r\n*0\r\n*-1\r\n\r\n", `SET "a\x00b" 'c\'d'` + "\n",
		"ECHO a\x00b\r\n", fmt.Sprintf("*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n", 70, bytes.Repeat([]byte("x"), 70)),
	} {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		before := heapAllocated()
		checkCommands(t, in)
		// The inline splitter against Redis's own, on the first line.
		line := in
		if i := bytes.IndexAny(line, "\n\x00"); i >= 0 {
			line = line[:i]
		}
		checkSplit(t, newTestReader(""), line)
		checkAllocBound(t, in, before)
	})
}

func checkCommands(t *testing.T, in []byte) {
	t.Helper()
	read := func(in []byte, size int, lim Limits) ([][]string, error) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), size))
		r.SetLimits(lim)
		cmds, err := readCommands(t, r)
		wantStreamErr(t, "ReadCommand", err)
		return cmds, err
	}
	cmds, err := read(in, 16, DefaultLimits)
	// The fast path (whole.go) against the line-by-line one.
	slow := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 4096))
	slow.lineByLine = true
	if cmds2, err2 := readCommands(t, slow); !equalCommands(cmds2, cmds) || err2.Error() != err.Error() {
		t.Fatalf("line by line: have %q, %v; want %q, %v", cmds2, err2, cmds, err)
	}
	// Runs of whole commands, as the proxy takes a pipeline.
	runs := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 4096))
	if cmds2, err2 := readCommandRuns(t, runs); !equalCommands(cmds2, cmds) || err2.Error() != err.Error() {
		t.Fatalf("in runs: have %q, %v; want %q, %v", cmds2, err2, cmds, err)
	}
	// The same through a large buffer, and with arguments refused by Arg
	// and streamed with CopyArg.
	smallArgs := DefaultLimits
	smallArgs.MaxArgBuf = 3
	for _, c := range []struct {
		size int
		lim  Limits
	}{{4096, DefaultLimits}, {16, smallArgs}} {
		if cmds2, err2 := read(in, c.size, c.lim); !equalCommands(cmds2, cmds) || err2.Error() != err.Error() {
			t.Fatalf("buffer %d, MaxArgBuf %d: have %q, %v; want %q, %v", c.size, c.lim.MaxArgBuf, cmds2, err2, cmds, err)
		}
	}
	// CopyArg re-encodes the same commands, and they parse back; so does
	// the proxy's way (the name with Arg, Taken, CopyRest) through a
	// buffer that holds most commands whole.
	out, complete, err2 := copyCommands(NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16)))
	if err2.Error() != err.Error() {
		t.Fatalf("CopyArg ended with %v, Arg with %v", err2, err)
	}
	if want := multibulk(cmds...); !bytes.Equal(out[:complete], want) {
		t.Fatalf("CopyArg wrote %q, want %q", out[:complete], want)
	}
	out2, complete2, err4 := copyCommandsWith(NewReader(bufio.NewReaderSize(bytes.NewReader(in), 4096)), true)
	if err4.Error() != err.Error() || !bytes.Equal(out2[:complete2], out[:complete]) {
		t.Fatalf("CopyRest wrote %q, ended with %v; CopyArg wrote %q, %v", out2[:complete2], err4, out[:complete], err)
	}
	again, err3 := read(out[:complete], 16, DefaultLimits)
	if err3 != io.EOF || !equalCommands(again, cmds) {
		t.Fatalf("re-encoded commands parse as %q, %v; want %q", again, err3, cmds)
	}
	// Before authentication: never a panic, and no more than 10 arguments.
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
	r.SetLimits(UnauthenticatedLimits)
	for {
		n, err := r.ReadCommand()
		if err != nil {
			wantStreamErr(t, "ReadCommand", err)
			break
		}
		if n > 10 && len(r.inline) == 0 {
			t.Fatalf("unauthenticated multibulk of %d arguments", n)
		}
	}
}
