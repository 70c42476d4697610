package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// raiseNoFile raises RLIMIT_NOFILE towards need (up to the hard limit)
// and returns the soft limit now in force. Call it before starting
// redis-server: Redis sizes its maxclients from the limit it inherits.
func raiseNoFile(t *testing.T, need uint64) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur < need {
		old := lim.Cur
		lim.Cur = min(need, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
		t.Cleanup(func() {
			lim.Cur = old
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		})
	}
	return lim.Cur
}

// loadCount scales a client count to what the file limit and the race
// detector (8,128 live goroutines; a session is two) allow.
func loadCount(t *testing.T, want int) int {
	t.Helper()
	n := want
	if relRace && n > 3000 {
		t.Logf("the race detector allows 8,128 goroutines: %d clients instead of %d (run -long without -race for the full count)", 3000, n)
		n = 3000
	}
	// Each client costs three descriptors here: its own end, the
	// proxy's end, and the proxy's uplink connection.
	if have := raiseNoFile(t, uint64(3*n+256)); have < uint64(3*n+256) {
		m := int(have-256) / 3
		t.Logf("RLIMIT_NOFILE is %d: %d clients instead of %d", have, m, n)
		n = m
	}
	return n
}

// TestRelManyClients: N clients connect at once (1,000; 5,000 with -long,
// without -race), each is served, all stay connected while a checked
// client goes on, and all go away cleanly.
func TestRelManyClients(t *testing.T) {
	want := 1000
	if *relLong {
		want = 5000
	}
	n := loadCount(t, want)
	srv := redistest.Start(t, "--maxclients", "20000")
	direct := srv.Client(t)
	before := relCount()
	p := startProxy(t, testConfig(srv.Addr))
	addr := p.Addr().String()
	chk := startChecker(t, addr, "many", 4)

	conns := make([]net.Conn, n)
	start := time.Now()
	var failed atomic.Int64
	var firstErr atomic.Value
	parallel(n, 200, func(i int) {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err == nil {
			conns[i] = c
			c.SetDeadline(time.Now().Add(60 * time.Second))
			_, err = io.WriteString(c, "INCR many\r\n")
		}
		if err == nil {
			var line string
			line, err = bufio.NewReader(c).ReadString('\n')
			if err == nil && !strings.HasPrefix(line, ":") {
				err = fmt.Errorf("reply %q", line)
			}
		}
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}
	})
	storm := time.Since(start)
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d clients failed: %v", f, n, firstErr.Load())
	}
	if st := p.Status(); st.Clients != n+1 {
		t.Errorf("clients %d, want %d", st.Clients, n+1)
	}
	expect(t, direct, fmt.Sprintf(`"%d"`, n), "GET", "many")
	// Every one of them is still served.
	parallel(n, 200, func(i int) {
		io.WriteString(conns[i], "PING\r\n")
		line, err := bufio.NewReader(conns[i]).ReadString('\n')
		if err != nil || line != "+PONG\r\n" {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, fmt.Errorf("second command: %q %v", line, err))
		}
	})
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d clients failed their second command: %v", f, firstErr.Load())
	}
	chk.waitRounds(t, 10)
	_, _, p99, _ := chk.finish(t)
	t.Logf("%d clients connected at once, each served, within %v; all held; heap %s, RSS %s; a checked client's p99 meanwhile %v",
		n, storm.Round(time.Millisecond), mib(heapInuse()), mib(rssBytes()), p99)
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "every client gone", func() bool { return p.Status().Clients == 0 })
	relShutdown(t, p)
	checkNoLeaks(t, before)
}

// parallel runs f(0..n-1) on workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// TestRelMaxClientsStorm: 500 clients connect at once to a proxy with
// max_clients 100: exactly 100 are served and stay, 400 get Redis's
// error and a close, the count never exceeds the limit, and freed slots
// are taken again.
func TestRelMaxClientsStorm(t *testing.T) {
	loadCount(t, 500)
	srv := redistest.Start(t)
	before := relCount()
	cfg := testConfig(srv.Addr)
	cfg.MaxClients = 100
	p := startProxy(t, cfg)
	addr := p.Addr().String()

	stopWatch := make(chan struct{})
	var worst atomic.Int64
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			worst.Store(max(worst.Load(), int64(p.Status().Clients)))
			select {
			case <-stopWatch:
				return
			default:
				time.Sleep(time.Millisecond)
			}
		}
	}()
	const storm = 500
	served := make([]net.Conn, storm)
	var nServed, nRejected, nOther atomic.Int64
	parallel(storm, storm, func(i int) {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			nOther.Add(1)
			return
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "PING\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		switch line {
		case "+PONG\r\n":
			served[i] = c
			nServed.Add(1)
		case "-" + msgMaxClients + "\r\n":
			nRejected.Add(1)
			c.Close()
		default:
			nOther.Add(1)
			c.Close()
		}
	})
	close(stopWatch)
	<-watched
	if nServed.Load() != 100 || nRejected.Load() != 400 || nOther.Load() != 0 {
		t.Errorf("storm of %d: served %d, rejected %d, other %d; want 100, 400, 0", storm, nServed.Load(), nRejected.Load(), nOther.Load())
	}
	if w := worst.Load(); w > 100 {
		t.Errorf("clients reached %d with max_clients 100", w)
	}
	st := p.Status()
	if st.Counters.ClientsAccepted != 100 || st.Counters.ClientsRejected != 400 {
		t.Errorf("counters: accepted %d, rejected %d", st.Counters.ClientsAccepted, st.Counters.ClientsRejected)
	}
	// Free 50 slots; 50 of the next 60 get in.
	closed := 0
	for i, c := range served {
		if c != nil && closed < 50 {
			c.Close()
			served[i] = nil
			closed++
		}
	}
	waitFor(t, "50 slots free", func() bool { return p.Status().Clients == 50 })
	var again atomic.Int64
	extra := make([]net.Conn, 60)
	parallel(60, 60, func(i int) {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			return
		}
		extra[i] = c
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "PING\r\n")
		if line, _ := bufio.NewReader(c).ReadString('\n'); line == "+PONG\r\n" {
			again.Add(1)
		}
	})
	if again.Load() != 50 {
		t.Errorf("after freeing 50 slots, %d of 60 got in; want 50", again.Load())
	}
	t.Logf("max_clients 100 under a storm of %d: %d served, %d rejected with %q, at most %d connected; 50 freed slots taken by 50 of 60",
		storm, nServed.Load(), nRejected.Load(), msgMaxClients, worst.Load())
	for _, c := range append(served, extra...) {
		if c != nil {
			c.Close()
		}
	}
	waitFor(t, "every client gone", func() bool { return p.Status().Clients == 0 })
	relShutdown(t, p)
	checkNoLeaks(t, before)
}

// TestRelSlowloris: 1,000 clients trickle an inline request a byte a
// second (never a line end) and 200 trickle the value of a SET, while a
// normal client measures its latency. The tricklers do not slow it down.
// client_idle_timeout_ms counts from the last byte received (as Redis's
// timeout does): the inline tricklers stay while they trickle faster than
// it, and are reaped once they stop. The SET tricklers' command was
// forwarded when its name was complete, so read_time_limit_ms applies to
// it: they are disconnected at the limit although still trickling.
func TestRelSlowloris(t *testing.T) {
	const inline, setters = 1000, 200
	loadCount(t, inline+setters+10)
	srv := redistest.Start(t)
	before := relCount()
	cfg := testConfig(srv.Addr)
	cfg.ClientIdleTimeoutMS = 3000
	cfg.ReadTimeLimitMS = 4000
	trickle := 6 * time.Second
	if *relLong {
		cfg.ReadTimeLimitMS = 20000
		trickle = 60 * time.Second
	}
	p := startProxy(t, cfg)
	addr := p.Addr().String()
	normal := redistest.MustDial(t, addr)
	baseline := pingLatencies(t, normal, 500)

	// A byte a second to each connected slowloris, from one goroutine,
	// from the first connection on (before, the idle timeout would take
	// the first ones while the others connect).
	var mu sync.Mutex
	var lorises []net.Conn
	stop := make(chan struct{})
	trickled := make(chan int64, 1)
	go func() {
		var sent int64
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			mu.Lock()
			conns := slices.Clone(lorises)
			mu.Unlock()
			for _, c := range conns {
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := c.Write([]byte{'x'}); err == nil {
					sent++
				}
			}
			select {
			case <-stop:
				trickled <- sent
				return
			case <-tick.C:
			}
		}
	}()
	parallel(inline+setters, 100, func(i int) {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		if i >= inline {
			fmt.Fprintf(c, "*3\r\n$3\r\nSET\r\n$10\r\nloris:%04d\r\n$1000000\r\n", i)
		} else {
			io.WriteString(c, "GET ")
		}
		mu.Lock()
		lorises = append(lorises, c)
		mu.Unlock()
	})
	if t.Failed() {
		t.FailNow()
	}
	waitFor(t, "every slowloris connected", func() bool { return p.Status().Clients == 1+inline+setters })
	tlBefore := p.Status().Counters.TimeLimitDisconnects

	start := time.Now()
	var during []time.Duration
	for time.Since(start) < trickle {
		during = append(during, pingLatencies(t, normal, 50)...)
	}
	b50, b99, _ := percentiles(baseline)
	d50, d99, dmax := percentiles(during)
	st := p.Status()
	t.Logf("normal client PING: p50 %v, p99 %v before; p50 %v, p99 %v, max %v (%d PINGs) during %v of %d slowloris",
		b50, b99, d50, d99, dmax, len(during), trickle, inline+setters)
	if d99 > max(20*b99, 50*time.Millisecond) {
		t.Errorf("the slowloris clients slowed a normal client down: p99 %v during, %v before", d99, b99)
	}
	// The trickle outlasts the time limit: only the inline tricklers
	// (and the normal client) are left.
	if st.Clients != 1+inline {
		t.Errorf("%d clients connected at the end of the trickle; want the %d inline tricklers and the normal client", st.Clients, inline)
	}
	if n := st.Counters.TimeLimitDisconnects - tlBefore; n != setters {
		t.Errorf("time_limit_disconnects %d, want the %d SET tricklers", n, setters)
	}
	normal.Close() // idle from now on: it would be reaped too
	waitFor(t, "the normal client gone", func() bool { return p.Status().Clients == inline })
	close(stop)
	sent := <-trickled
	stopped := time.Now()
	waitFor(t, "the tricklers reaped", func() bool { return p.Status().Clients == 0 })
	reaped := time.Since(stopped)
	if reaped > cfg.ClientIdleTimeout()+2*time.Second {
		t.Errorf("reaped %v after they went silent; idle timeout %v", reaped, cfg.ClientIdleTimeout())
	}
	t.Logf("%d bytes trickled; %d SET tricklers disconnected by read_time_limit_ms while trickling; %d inline tricklers stayed while trickling and were reaped by client_idle_timeout_ms (%v) %v after going silent",
		sent, setters, inline, cfg.ClientIdleTimeout(), reaped.Round(time.Millisecond))
	for _, c := range lorises {
		c.Close()
	}
	relShutdown(t, p)
	checkNoLeaks(t, before)
}
