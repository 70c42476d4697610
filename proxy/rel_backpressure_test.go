package proxy

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// relMemBound is the most the proxy's heap may grow while clients refuse
// to read (TestRelBackpressure): a session holds a few 4 KiB buffers and
// a ring of 128 records, whatever its client does.
const relMemBound = 16 << 20

// TestRelBackpressure: a client that pipelines commands (SET, 1 KiB
// values) without ever reading a reply until its socket blocks (it tries
// 1 GiB; with -long it has the kernel's default buffers, in the short
// form a 16 KiB receive buffer), and a client that GETs 100 values of 1 MiB and reads
// them at 1 KiB/s, do not grow the proxy's heap beyond relMemBound: the
// proxy stops reading from them (and from their uplink connections)
// instead, and the backlog stays in the kernel's socket buffers and in
// Redis's output buffer. A checked client is unaffected meanwhile.
//
// read_time_limit_ms applies to delivery too (TestRelNonReaderTimeLimit):
// it is set high here so that the bound, not the limit, is what is seen.
func TestRelBackpressure(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	direct.SetTimeout(60 * time.Second)
	const values, valueSize = 100, 1 << 20
	big := strings.Repeat("v", valueSize)
	for i := range values {
		expect(t, direct, "OK", "SET", fmt.Sprintf("big:%d", i), big)
	}
	big = ""
	before := relCount()
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 120000
	p := startProxy(t, cfg)
	chk := startChecker(t, p.Addr().String(), "backpressure", 8)
	chk.waitRounds(t, 20)
	heap0 := heapInuse()

	// The client that never reads.
	total := int64(1 << 30)
	hold := 2 * time.Second
	if *relLong {
		hold = 30 * time.Second
	}
	writer := relDial(t, p.Addr().String())
	if !*relLong {
		// Replies (+OK) are 200 times smaller than the commands: with the
		// kernel's default buffers the socket takes hundreds of MiB of
		// commands before the replies fill it. The short form shrinks the
		// client's receive buffer to get there sooner.
		writer.SetReadBuffer(16 << 10)
	}
	var written atomic.Int64
	werr := make(chan error, 1)
	go func() { werr <- writeCommands(writer, total, &written) }()

	// The client that reads 1 KiB a second.
	slow := relDial(t, p.Addr().String())
	slow.SetReadBuffer(16 << 10)
	var gets bytes.Buffer
	for i := range values {
		fmt.Fprintf(&gets, "GET big:%d\r\n", i)
	}
	if _, err := slow.Write(gets.Bytes()); err != nil {
		t.Fatal(err)
	}
	var readSlow atomic.Int64
	stopSlow := make(chan struct{})
	slowDone := make(chan error, 1)
	go func() { slowDone <- readSlowly(slow, 1024, time.Second, stopSlow, &readSlow) }()

	// The heap, sampled all along.
	var worst atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for !closed(stopSampling) {
			if h := heapInuse(); h > worst.Load() {
				worst.Store(h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// Until the writer's socket blocks (no progress for a second), or all
	// of it went through: its replies, 200 times smaller, may all fit in
	// the client's socket buffer (with -long).
	start := time.Now()
	last, lastChange := int64(-1), time.Now()
	for time.Since(lastChange) < time.Second && last < total {
		if n := written.Load(); n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("the writer still progresses after 5 minutes (%d MiB written)", last>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
	blockedAt := written.Load()
	if blockedAt >= total {
		t.Logf("non-reader: all %d MiB of commands went through in %v (its replies fit in its socket buffer); the heap stayed bounded meanwhile",
			total>>20, time.Since(start).Round(time.Millisecond))
	} else {
		t.Logf("non-reader: its socket blocked after %.1f MiB of commands (%v)", float64(blockedAt)/(1<<20), time.Since(start).Round(time.Millisecond))
	}

	// Hold both clients there.
	for end := time.Now().Add(hold); time.Now().Before(end); {
		chk.waitRounds(t, 5)
		time.Sleep(250 * time.Millisecond)
	}
	close(stopSampling)
	<-sampled
	grew := int64(worst.Load()) - int64(heap0)
	t.Logf("heap in use: %s before, worst %s while the clients did not read (held %v after the writer stopped; growth %s; bound %s); RSS %s",
		mib(heap0), mib(worst.Load()), hold, mib(uint64(max(grew, 0))), mib(relMemBound), mib(rssBytes()))
	if grew > relMemBound {
		t.Errorf("heap grew by %s; bound %s", mib(uint64(grew)), mib(relMemBound))
	}
	if n := written.Load(); blockedAt < total && n-blockedAt > 1<<20 {
		t.Errorf("the non-reader wrote %d KiB more while blocked", (n-blockedAt)>>10)
	}
	// Redis holds the slow reader's backlog: the proxy stopped reading it.
	omem := maxOutputBuffer(t, direct)
	t.Logf("slow reader: %d KiB read at 1 KiB/s; Redis's output buffer for the proxy's connection: %s (the backlog waits there)",
		readSlow.Load()>>10, mib(omem))
	if omem < 16<<20 {
		t.Errorf("Redis's largest output buffer is %s: the proxy is reading the slow client's replies faster than it delivers them", mib(omem))
	}
	rounds, _, p99, _ := chk.finish(t)
	t.Logf("the other client meanwhile: %d rounds, p99 %v", rounds, p99)

	close(stopSlow)
	<-slowDone
	writer.Close()
	slow.Close()
	<-werr
	waitFor(t, "both clients gone", func() bool { return p.Status().Clients == 0 })
	relShutdown(t, p)
	checkNoLeaks(t, before)
}

// writeCommands writes SET commands with 1 KiB values to w until total
// bytes are written or a write fails; written counts the bytes.
func writeCommands(w io.Writer, total int64, written *atomic.Int64) error {
	val := strings.Repeat("x", 1024)
	var chunk bytes.Buffer
	for i := 0; chunk.Len() < 64<<10; i++ {
		fmt.Fprintf(&chunk, "*3\r\n$3\r\nSET\r\n$6\r\nnr:%03d\r\n$%d\r\n%s\r\n", i%1000, len(val), val)
	}
	b := chunk.Bytes()
	for written.Load() < total {
		n, err := w.Write(b)
		written.Add(int64(n))
		if err != nil {
			return err
		}
	}
	return nil
}

// readSlowly reads at most n bytes per period until stop closes or the
// connection fails.
func readSlowly(r io.Reader, n int, period time.Duration, stop <-chan struct{}, count *atomic.Int64) error {
	buf := make([]byte, n)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		k, err := r.Read(buf)
		count.Add(int64(k))
		if err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
}

var omemRE = regexp.MustCompile(` omem=(\d+) `)

// maxOutputBuffer is the largest output buffer Redis holds for a client.
func maxOutputBuffer(t *testing.T, c *redistest.Client) uint64 {
	t.Helper()
	var worst uint64
	for _, m := range omemRE.FindAllStringSubmatch(do(t, c, "CLIENT", "LIST"), -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		worst = max(worst, n)
	}
	return worst
}

// TestRelNonReaderTimeLimit: the proxy applies read_time_limit_ms to
// delivering a reply as well: a client that does not read its replies for
// longer than that is disconnected (time_limit_disconnects counts it),
// and the others go on.
func TestRelNonReaderTimeLimit(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	expect(t, direct, "OK", "SET", "big", strings.Repeat("v", 1<<20))
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 500
	p := startProxy(t, cfg)
	chk := startChecker(t, p.Addr().String(), "nonreader", 4)
	c := relDial(t, p.Addr().String())
	c.SetReadBuffer(16 << 10)
	start := time.Now()
	if _, err := io.WriteString(c, strings.Repeat("GET big\r\n", 64)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the non-reader disconnected", func() bool { return p.Status().Counters.TimeLimitDisconnects == 1 })
	d := time.Since(start)
	if d < 450*time.Millisecond || d > 5*time.Second {
		t.Errorf("disconnected after %v; want about 500ms", d)
	}
	waitFor(t, "the session gone", func() bool { return p.Status().Clients == 1 })
	if _, closed, err := readToClose(c, 10*time.Second); !closed {
		t.Errorf("the non-reader's connection is still open: %v", err)
	}
	t.Logf("a client not reading 64 MiB of replies: disconnected by read_time_limit_ms (500ms) after %v", d.Round(time.Millisecond))
	chk.finish(t)
}
