package proxy

import (
	"bufio"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"redis-proxy/internal/redistest"
)

// TestIdleClientMemory reports what an idle client costs the proxy (its
// session, goroutine pair and uplink connection) after one PING, split
// into heap and stacks, measured in this process after a GC.
func TestIdleClientMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	const n = 1000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "*1\r\n$4\r\nPING\r\n")
		line, err := bufio.NewReaderSize(c, 16).ReadString('\n')
		if err != nil || line != "+PONG\r\n" {
			t.Fatalf("PING: %q %v", line, err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if path := os.Getenv("IDLE_HEAP_PROFILE"); path != "" {
		f, _ := os.Create(path)
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	heap := float64(after.HeapInuse-before.HeapInuse) / n
	stack := float64(after.StackInuse-before.StackInuse) / n
	t.Logf("per idle client (proxy side, incl. its uplink connection; the test's client conns are in the heap figure): heap %.0f B, stacks %.0f B, total %.1f KiB", heap, stack, (heap+stack)/1024)
}
