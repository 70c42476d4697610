package proxy

import (
	"bufio"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

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
	base := runtime.NumGoroutine()
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
	// Idle, the sessions park (park.go): their goroutines end.
	waitFor(t, "the idle sessions to park", func() bool { return runtime.NumGoroutine() < base+n/50 })
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
	// About 7.4 KiB of heap measured, the test's own client ends included
	// (doc/performance.md); idle connections holding their four bufio
	// buffers again would add 16 KiB, and a goroutine pair 8 KiB of stacks.
	if heap > 9<<10 {
		t.Errorf("an idle client holds %.1f KiB of heap after a GC; want < 9 KiB: are idle buffers pooled?", heap/1024)
	}
	// Stacks: none is held (the wait above: the goroutines have ended);
	// what StackInuse still counts are freed stacks the runtime keeps for
	// reuse until it gives them back.
}

// TestReloadLatencyWithClients measures a reload A -> B with 1,000
// connected clients (each with an uplink connection), and checks that every
// client then works on B.
func TestReloadLatencyWithClients(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	a := redistest.Start(t)
	b := redistest.Start(t, "--maxclients", "4000")
	f := newConfigFile(t, a.Addr)
	p := f.start()
	const n = 1000
	conns := make([]net.Conn, n)
	br := make([]*bufio.Reader, n)
	ping := func(i int) {
		t.Helper()
		io.WriteString(conns[i], "*1\r\n$4\r\nPING\r\n")
		if line, err := br[i].ReadString('\n'); err != nil || line != "+PONG\r\n" {
			t.Fatalf("client %d: %q %v", i, line, err)
		}
	}
	for i := range n {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i], br[i] = c, bufio.NewReaderSize(c, 64)
		ping(i)
	}
	f.cfg.Uplink.Addr = b.Addr
	f.write()
	start := time.Now()
	if err := p.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("reload A -> B with %d connected clients: %v", n, d)
	if d > 500*time.Millisecond {
		t.Errorf("reload took %v", d)
	}
	for i := range n {
		ping(i)
	}
	if have := do(t, b.Client(t), "INFO", "clients"); !strings.Contains(have, "connected_clients:1001") {
		t.Errorf("clients on B:\n%s", have)
	}
}
