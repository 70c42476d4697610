package resp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// The benchmarks read from an endless in-memory stream (cycle) through a
// 16 KiB bufio.Reader, so they measure the parser, not the making of
// input; the copy from cycle into the buffer stands for the socket read.
const benchBuf = 16 << 10

// benchForward forwards one value of the repeated stream per op (n values
// per op when the stream holds n).
func benchForward(b *testing.B, stream []byte, values int) {
	r := NewReader(bufio.NewReaderSize(&cycle{data: stream}, benchBuf))
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		for range values {
			if _, err := r.Forward(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkForwardOK(b *testing.B)    { benchForward(b, []byte("+OK\r\n"), 1) }
func BenchmarkForwardBulk3(b *testing.B) { benchForward(b, []byte("$3\r\nbar\r\n"), 1) }

func BenchmarkForwardBulk16KiB(b *testing.B) {
	benchForward(b, AppendBulk(nil, bytes.Repeat([]byte("x"), 16<<10)), 1)
}

func BenchmarkForwardBulk1MiB(b *testing.B) {
	benchForward(b, AppendBulk(nil, bytes.Repeat([]byte("x"), 1<<20)), 1)
}

// BenchmarkForwardPipeline100: 100 small mixed replies per op, as a
// pipelined client gets them.
func BenchmarkForwardPipeline100(b *testing.B) {
	var stream []byte
	kinds := []string{"+OK\r\n", "$5\r\nvalue\r\n", ":1\r\n", "$-1\r\n", "*2\r\n$1\r\na\r\n$1\r\nb\r\n"}
	for i := range 100 {
		stream = append(stream, kinds[i%len(kinds)]...)
	}
	benchForward(b, stream, 100)
}

// BenchmarkCommandPipeline100: 100 "SET key:<n> value" commands per op, as
// the proxy's request side handles them: ReadCommand, the name with Arg,
// the header from Taken (or encoded), the rest with CopyRest into a
// bufio.Writer.
func BenchmarkCommandPipeline100(b *testing.B) {
	var stream []byte
	for i := range 100 {
		stream = AppendCommand(stream, "SET", fmt.Sprintf("key:%03d", i), "value")
	}
	benchCommands(b, stream, 100)
}

// BenchmarkInlinePipeline100: the same with inline commands.
func BenchmarkInlinePipeline100(b *testing.B) {
	var stream []byte
	for i := range 100 {
		stream = fmt.Appendf(stream, "SET key:%03d value\r\n", i)
	}
	benchCommands(b, stream, 100)
}

func benchCommands(b *testing.B, stream []byte, commands int) {
	r := NewReader(bufio.NewReaderSize(&cycle{data: stream}, benchBuf))
	w := bufio.NewWriterSize(io.Discard, benchBuf)
	var hdr []byte
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		for range commands {
			n, err := r.ReadCommand()
			if err != nil {
				b.Fatal(err)
			}
			name, err := r.Arg()
			if err != nil {
				b.Fatal(err)
			}
			if !Equal(name, "SET") {
				b.Fatalf("have %q", name)
			}
			if taken, ok := r.Taken(); ok {
				hdr = append(hdr[:0], taken...)
			} else {
				hdr = AppendBulk(AppendArray(hdr[:0], n), name)
			}
			w.Write(hdr)
			if err := r.CopyRest(w); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReadValue: the in-memory path (the proxy's own exchanges).
func BenchmarkReadValue(b *testing.B) {
	stream := []byte("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n:1\r\n")
	r := NewReader(bufio.NewReaderSize(&cycle{data: stream}, benchBuf))
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadValue(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendError: the writer helpers.
func BenchmarkAppendError(b *testing.B) {
	var buf []byte
	msg := "ERR proxy: uplink unavailable: " + strings.Repeat("x", 40)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendError(buf[:0], msg)
		buf = AppendNullArray(buf, 3)
		buf = AppendArray(buf, 42)
	}
}
