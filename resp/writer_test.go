package resp

import (
	"testing"
)

func TestAppendHelpers(t *testing.T) {
	tests := []struct {
		name string
		have []byte
		want string
	}{
		{"simple", AppendSimple(nil, "OK"), "+OK\r\n"},
		{"simple CRLF", AppendSimple(nil, "a\r\nb"), "+a  b\r\n"},
		{"error", AppendError(nil, "NOAUTH Authentication required."), "-NOAUTH Authentication required.\r\n"},
		{"error CRLF", AppendError(nil, "ERR proxy: uplink unavailable: dial\r\nfailed\n"), "-ERR proxy: uplink unavailable: dial  failed \r\n"},
		{"bulk", AppendBulk(nil, []byte("a\r\nb")), "$4\r\na\r\nb\r\n"},
		{"bulk empty", AppendBulk(nil, nil), "$0\r\n\r\n"},
		{"bulk string", AppendBulkString(nil, "bar"), "$3\r\nbar\r\n"},
		{"array", AppendArray(nil, 3), "*3\r\n"},
		{"null array RESP2", AppendNullArray(nil, 2), "*-1\r\n"},
		{"null array RESP3", AppendNullArray(nil, 3), "_\r\n"},
		{"command", AppendCommand(nil, "AUTH", "user", "p w"), "*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$3\r\np w\r\n"},
		{"appends", AppendArray(AppendSimple([]byte("x"), "OK"), 1), "x+OK\r\n*1\r\n"},
	}
	for _, tt := range tests {
		if string(tt.have) != tt.want {
			t.Errorf("%s: have %q, want %q", tt.name, tt.have, tt.want)
		}
	}
}

// TestAppendReadBack: what the writer makes, the reader reads.
func TestAppendReadBack(t *testing.T) {
	var b []byte
	b = AppendSimple(b, "OK")
	b = AppendError(b, "ERR x")
	b = AppendBulkString(b, "v")
	b = AppendNullArray(b, 2)
	b = AppendArray(b, 1)
	b = AppendBulk(b, []byte("e"))
	want := []string{`+"OK"`, `-"ERR x"`, `$"v"(1)`, `*nil`, `*[$"e"(1)]`}
	r := newTestReader(string(b))
	for _, w := range want {
		v, err := r.ReadValue()
		if err != nil || show(v) != w {
			t.Errorf("have %s, %v; want %s", show(v), err, w)
		}
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	if allocs := testing.AllocsPerRun(100, func() {
		buf = AppendError(buf[:0], "ERR something")
		buf = AppendBulkString(buf, "value")
		buf = AppendCommand(buf, "SELECT", "3")
	}); allocs != 0 {
		t.Errorf("have %v allocations, want 0", allocs)
	}
}
