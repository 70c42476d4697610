package proxy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// The reliability suite (doc/reliability.md): hostile input, backpressure, uplink
// faults, load, operations under load and a soak. Every test has a short
// form that `go test -race ./proxy/` runs, and the long ones a full form:
//
//	go test -run Rel -long ./proxy/                  full counts and sizes (5,000 clients: without -race)
//	go test -run Soak -soak=10m -timeout 0 ./proxy/  the soak, for as long as said
//
// Figures are reported with t.Logf (run with -v to see them) and are
// recorded in doc/reliability.md.
var (
	relLong = flag.Bool("long", false, "reliability suite: run the full forms (1 GiB pipeline, 5,000 clients, longer runs)")
	relSoak = flag.Duration("soak", 0, "reliability suite: run TestRelSoak for this long (0: the short form, about 20s)")
)

// relShutdown stops p now (the cleanup's second Shutdown is a no-op).
func relShutdown(t *testing.T, p *Proxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// ---- leaks ----

// relCounts is what must come back to where it was once a proxy and its
// clients are gone.
type relCounts struct {
	goroutines int
	fds        int
}

func (c relCounts) String() string {
	return fmt.Sprintf("%d goroutines, %d open files", c.goroutines, c.fds)
}

func relCount() relCounts {
	return relCounts{goroutines: runtime.NumGoroutine(), fds: openFiles()}
}

// openFiles counts this process's open file descriptors.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// relLeakSlack is what the runtime and the test framework may add on
// their own (a timer or finalizer goroutine, the fd of a log file).
const relLeakSlack = 3

// checkNoLeaks waits (bounded, polling) until the goroutines and open
// files are back to before (within relLeakSlack), and reports them; past
// the deadline it fails with the goroutines' stacks.
func checkNoLeaks(t *testing.T, before relCounts) relCounts {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var now relCounts
	for {
		now = relCount()
		if now.goroutines <= before.goroutines+relLeakSlack && now.fds <= before.fds+relLeakSlack {
			break
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Errorf("leak: before %v, after %v (slack %d)\n%s", before, now, relLeakSlack, b.String())
			return now
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("leaks: before %v, after %v: 0 goroutines and 0 files leaked (slack %d)",
		before, now, relLeakSlack)
	return now
}

// waitFor polls cond (an observation of another goroutine's effect that
// sends no signal) until it holds; past 15 s it fails with what it waited
// for and the goroutines' stacks.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%s: not within 15s\n%s", what, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---- memory ----

// heapInuse returns HeapInuse after a GC: what the process holds live.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// rssBytes reads VmRSS from /proc/self/status.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ---- a client that checks every reply while something else happens ----

// relChecker pipelines commands through the proxy the whole time and
// checks every reply (SET, GET of what it set, ECHO of unique values), so
// that a test can require other clients to be unaffected.
type relChecker struct {
	name   string
	stop   chan struct{}
	done   chan struct{}
	rounds atomic.Int64
	err    error

	mu   sync.Mutex
	lats []time.Duration // a uniform sample of at most relLatSample round trips
	seen int
	rnd  *rand.Rand
}

// relLatSample bounds the latencies a checker keeps (a reservoir sample):
// a checker running for minutes must not grow the heap it helps measure.
const relLatSample = 50000

func (k *relChecker) observe(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seen++
	if len(k.lats) < relLatSample {
		k.lats = append(k.lats, d)
		return
	}
	if i := k.rnd.IntN(k.seen); i < relLatSample {
		k.lats[i] = d
	}
}

// startChecker connects to addr and starts checking; depth commands per
// round trip.
func startChecker(t *testing.T, addr, name string, depth int) *relChecker {
	t.Helper()
	c, err := redistest.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatalf("checker %s: %v", name, err)
	}
	c.SetTimeout(30 * time.Second)
	k := newChecker(name)
	go k.run(c, depth)
	t.Cleanup(func() { k.halt() })
	return k
}

func newChecker(name string) *relChecker {
	return &relChecker{name: name, stop: make(chan struct{}), done: make(chan struct{}), rnd: rand.New(rand.NewPCG(1, 2))}
}

func (k *relChecker) run(c *redistest.Client, depth int) {
	defer close(k.done)
	defer c.Close()
	key := "checker:" + k.name
	for n := 0; ; n++ {
		select {
		case <-k.stop:
			return
		default:
		}
		val := fmt.Sprintf("%s-%d", k.name, n)
		start := time.Now()
		c.Send("SET", key, val)
		c.Send("GET", key)
		for i := range depth {
			c.Send("ECHO", val+"-"+strconv.Itoa(i))
		}
		if err := c.Flush(); err != nil {
			k.err = fmt.Errorf("checker %s round %d: flush: %w", k.name, n, err)
			return
		}
		want := append([]string{"OK", val}, make([]string, depth)...)
		for i := range depth {
			want[2+i] = val + "-" + strconv.Itoa(i)
		}
		for i, w := range want {
			v, err := c.Receive()
			if err != nil {
				k.err = fmt.Errorf("checker %s round %d reply %d: %w", k.name, n, i, err)
				return
			}
			if v.Str != w || v.Err() != nil {
				k.err = fmt.Errorf("checker %s round %d reply %d: have %q, want %q", k.name, n, i, v.String(), w)
				return
			}
		}
		k.observe(time.Since(start))
		k.rounds.Add(1)
	}
}

func (k *relChecker) halt() {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	<-k.done
}

// waitRounds waits (bounded) until the checker has done n more rounds:
// proof that it is making progress now.
func (k *relChecker) waitRounds(t *testing.T, n int64) {
	t.Helper()
	target := k.rounds.Load() + n
	deadline := time.Now().Add(30 * time.Second)
	for k.rounds.Load() < target {
		select {
		case <-k.done:
			t.Fatalf("checker %s stopped: %v", k.name, k.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("checker %s: no progress for 30s (%d rounds)", k.name, k.rounds.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finish stops the checker, fails the test on any wrong reply, and
// reports its rounds and latencies.
func (k *relChecker) finish(t *testing.T) (rounds int64, p50, p99, worst time.Duration) {
	t.Helper()
	k.halt()
	if k.err != nil {
		t.Errorf("%v", k.err)
	}
	k.mu.Lock()
	lats := slices.Clone(k.lats)
	k.mu.Unlock()
	p50, p99, worst = percentiles(lats)
	rounds = k.rounds.Load()
	t.Logf("checker %s: %d rounds, every reply correct; round trip p50 %v, p99 %v, max %v", k.name, rounds, p50, p99, worst)
	return rounds, p50, p99, worst
}

func percentiles(lats []time.Duration) (p50, p99, worst time.Duration) {
	if len(lats) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lats)
	return lats[len(lats)/2], lats[len(lats)*99/100], lats[len(lats)-1]
}

// latencySince measures n single PINGs on c.
func pingLatencies(t *testing.T, c *redistest.Client, n int) []time.Duration {
	t.Helper()
	lats := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		v, err := c.Do("PING")
		if err != nil || v.Str != "PONG" {
			t.Fatalf("PING: %v %v", v, err)
		}
		lats = append(lats, time.Since(start))
	}
	return lats
}

// relClients keeps the test clients a test opens, to close them before it
// counts leaks (t.Cleanup would be too late).
type relClients []*redistest.Client

func (cs *relClients) dial(t *testing.T, addr string) *redistest.Client {
	t.Helper()
	c := redistest.MustDial(t, addr)
	*cs = append(*cs, c)
	return c
}

func (cs *relClients) close() {
	for _, c := range *cs {
		c.Close()
	}
	*cs = nil
}

// ---- raw connections ----

// relDial opens a raw TCP connection (closed at cleanup).
func relDial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.(*net.TCPConn)
}

// readToClose reads conn until the peer closes it (EOF or reset), within
// d, and returns what arrived; closed is false if the deadline passed.
func readToClose(conn net.Conn, d time.Duration) (out []byte, closed bool, err error) {
	conn.SetReadDeadline(time.Now().Add(d))
	var buf [32 << 10]byte
	for {
		n, err := conn.Read(buf[:])
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) || isReset(err) {
				return out, true, nil
			}
			return out, false, err
		}
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
