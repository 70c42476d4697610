package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// ---- clients under load that accept only right replies or errors ----

// relLoad runs clients that pipeline ECHOs of unique values and check
// each reply: the right value, or one of the errors allowed. An I/O error
// or any other reply is a failure: no client may be disconnected, and no
// wrong reply may pass.
type relLoad struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	ok      atomic.Int64
	errs    sync.Map // error text -> *atomic.Int64
	failMu  sync.Mutex
	fail    error
	allowed []string
}

func startLoad(t *testing.T, addr string, clients, depth int, allowed ...string) *relLoad {
	t.Helper()
	l := &relLoad{stop: make(chan struct{}), allowed: allowed}
	for i := range clients {
		c, err := redistest.Dial(addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetTimeout(30 * time.Second)
		l.wg.Add(1)
		go l.run(c, i, depth)
	}
	t.Cleanup(l.halt)
	return l
}

func (l *relLoad) run(c *redistest.Client, id, depth int) {
	defer l.wg.Done()
	defer c.Close()
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		for i := range depth {
			c.Send("ECHO", fmt.Sprintf("%d-%d-%d", id, n, i))
		}
		if err := c.Flush(); err != nil {
			l.failed(fmt.Errorf("client %d: flush: %w", id, err))
			return
		}
		for i := range depth {
			v, err := c.Receive()
			want := fmt.Sprintf("%d-%d-%d", id, n, i)
			switch {
			case err != nil:
				l.failed(fmt.Errorf("client %d: disconnected: %w", id, err))
				return
			case v.Err() == nil && v.Str == want:
				l.ok.Add(1)
			case v.Err() != nil && l.isAllowed(v.Str):
				l.count(v.Str)
			default:
				l.failed(fmt.Errorf("client %d: have %q, want %q", id, v.String(), want))
				return
			}
		}
	}
}

func (l *relLoad) isAllowed(msg string) bool {
	for _, a := range l.allowed {
		if strings.HasPrefix(msg, a) {
			return true
		}
	}
	return false
}

func (l *relLoad) count(msg string) {
	// Group by the allowed prefix: causes vary (ports, addresses).
	for _, a := range l.allowed {
		if strings.HasPrefix(msg, a) {
			msg = a
			break
		}
	}
	n, _ := l.errs.LoadOrStore(msg, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func (l *relLoad) failed(err error) {
	l.failMu.Lock()
	if l.fail == nil {
		l.fail = err
	}
	l.failMu.Unlock()
}

func (l *relLoad) errCount() int64 {
	var total int64
	l.errs.Range(func(_, v any) bool { total += v.(*atomic.Int64).Load(); return true })
	return total
}

// waitOK waits (bounded) for n more right replies.
func (l *relLoad) waitOK(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	waitFor(t, fmt.Sprintf("%d more right replies", n), func() bool {
		l.failMu.Lock()
		err := l.fail
		l.failMu.Unlock()
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return l.ok.Load() >= target
	})
}

func (l *relLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// finish stops the load and reports: right replies, errors by kind.
func (l *relLoad) finish(t *testing.T) string {
	t.Helper()
	l.halt()
	if l.fail != nil {
		t.Errorf("load: %v", l.fail)
	}
	var parts []string
	l.errs.Range(func(k, v any) bool {
		parts = append(parts, fmt.Sprintf("%d x %q", v.(*atomic.Int64).Load(), k))
		return true
	})
	return fmt.Sprintf("%d right replies, errors: [%s]", l.ok.Load(), strings.Join(parts, ", "))
}

// idleClients connects n clients that set some session state (db, name)
// and then idle; checkIdle later requires each to work at the first
// command with that state intact.
func idleClients(t *testing.T, addr string, n int) []*redistest.Client {
	t.Helper()
	cs := make([]*redistest.Client, n)
	for i := range cs {
		c := redistest.MustDial(t, addr)
		expect(t, c, "OK", "SELECT", "3")
		expect(t, c, "OK", "CLIENT", "SETNAME", fmt.Sprintf("idle-%d", i))
		cs[i] = c
	}
	return cs
}

func checkIdle(t *testing.T, cs []*redistest.Client) {
	t.Helper()
	for i, c := range cs {
		expect(t, c, fmt.Sprintf(`"idle-%d"`, i), "CLIENT", "GETNAME")
		v, err := c.Do("CLIENT", "INFO")
		if err != nil || !strings.Contains(v.Str, " db=3 ") {
			t.Errorf("idle client %d: state not replayed: %v %v", i, v, err)
		}
	}
}

const (
	errLost        = "ERR proxy: uplink connection lost"
	errUnavailable = "ERR proxy: uplink unavailable: "
	errTimeLimitM  = "ERR proxy: command exceeded read_time_limit_ms"
)

// TestRelKillUnderLoad: redis-server is SIGKILLed under load and
// restarted, 3 times (20 with -long). Commands in flight get
// "uplink connection lost", commands while it is down "uplink
// unavailable: ... connection refused"; no client is disconnected, no
// reply is wrong, idle clients recover transparently with their state,
// and nothing leaks.
func TestRelKillUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	before := relCount()
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 2000
	p := startProxy(t, cfg)
	addr := p.Addr().String()
	idle := idleClients(t, addr, 10)
	load := startLoad(t, addr, 20, 10, errLost, errUnavailable)
	cycles := 3
	if *relLong {
		cycles = 20
	}
	for range cycles {
		load.waitOK(t, 2000)
		errs := load.errCount()
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "errors while Redis is down", func() bool { return load.errCount() > errs })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := srv.Restart(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		load.waitOK(t, 2000)
	}
	checkIdle(t, idle)
	t.Logf("SIGKILL + restart under load, %d times: 20 pipelining clients, none disconnected, no wrong reply: %s; 10 idle clients recovered with db and name", cycles, load.finish(t))
	for _, c := range idle {
		c.Close()
	}
	relShutdown(t, p)
	checkNoLeaks(t, before)
}

// TestRelHungRedis: redis-server is SIGSTOPped (hung) under load, then
// SIGCONTinued. Commands in flight get the time-limit error at
// read_time_limit_ms and their clients are disconnected; a pause
// completes within the limit and a margin anyway; idle clients go on
// after SIGCONT as if nothing happened.
func TestRelHungRedis(t *testing.T) {
	srv := redistest.Start(t)
	before := relCount()
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 500
	p := startProxy(t, cfg)
	addr := p.Addr().String()
	idle := idleClients(t, addr, 10)
	const busy = 10
	results := make(chan string, busy)
	var opened relClients
	for i := range busy {
		c := opened.dial(t, addr)
		expect(t, c, "PONG", "PING")
		go func() {
			// One pipelined batch after another until the hang cuts it.
			for n := 0; ; n++ {
				for k := range 5 {
					c.Send("ECHO", fmt.Sprintf("%d-%d-%d", i, n, k))
				}
				c.Flush()
				for k := range 5 {
					v, err := c.Receive()
					if err != nil {
						results <- "io: " + err.Error()
						return
					}
					if want := fmt.Sprintf("%d-%d-%d", i, n, k); v.Str != want {
						if v.Str == errTimeLimitM {
							results <- v.Str + " then " + eofString(c)
						} else {
							results <- fmt.Sprintf("have %q, want %q", v.String(), want)
						}
						return
					}
				}
			}
		}()
	}
	waitFor(t, "Commands > 1000", func() bool { return p.Status().Counters.Commands > 1000 })
	stopped := time.Now()
	if err := srv.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer srv.Signal(syscall.SIGCONT)
	// Every busy client has its next batch stuck (replies already on
	// their way when the signal came are not).
	waitFor(t, "every busy client's batch stuck", func() bool { return p.Status().ActiveRequests == busy*5 })

	// A pause while Redis hangs still completes: the stragglers are
	// disconnected past the limit.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	pauseStart := time.Now()
	if err := p.Pause(ctx); err != nil {
		t.Fatalf("pause with a hung Redis: %v", err)
	}
	cancel()
	pauseTook := time.Since(pauseStart)
	// The stragglers' commands were sent about when Redis stopped: the
	// pause ends once their limit has passed (counted from then, since a
	// loaded machine may take a while to see them all stuck), and not
	// long after it.
	if since := time.Since(stopped); since < 400*time.Millisecond || pauseTook > 500*time.Millisecond+drainMargin+time.Second {
		t.Errorf("pause took %v (ended %v after Redis stopped) with a 500ms limit and a hung Redis", pauseTook, since)
	}
	// Commands that waited at the gate meet the hang after the unpause.
	p.Unpause()
	for range busy {
		if r := <-results; r != errTimeLimitM+" then EOF" {
			t.Errorf("client with commands in flight: %s", r)
		}
	}
	hit := time.Since(stopped)
	// A new client's command during the hang: its connection's set-up
	// round trip (CLIENT ID) does not complete within the limit, so the
	// uplink is unavailable for it; it stays connected.
	late := opened.dial(t, addr)
	start := time.Now()
	expectPrefix(t, late, "(error) ERR proxy: uplink unavailable: ", "PING")
	lateTook := time.Since(start)
	if lateTook < 450*time.Millisecond || lateTook > 2*time.Second {
		t.Errorf("a new connection to a hung Redis failed after %v; want about 500ms", lateTook)
	}
	if err := srv.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	checkIdle(t, idle)
	n := p.Status().Counters.TimeLimitDisconnects
	t.Logf("SIGSTOP: %d clients with commands in flight got the time-limit error and were disconnected (all within %v); a pause took %v; a new client's dial failed after %v; SIGCONT: 10 idle clients and the new one went on; time_limit_disconnects %d",
		busy, hit.Round(time.Millisecond), pauseTook.Round(time.Millisecond), lateTook.Round(time.Millisecond), n)
	if n != busy {
		t.Errorf("time_limit_disconnects = %d, want %d", n, busy)
	}
	expect(t, late, "PONG", "PING") // after SIGCONT
	for _, c := range idle {
		c.Close()
	}
	opened.close()
	relShutdown(t, p)
	checkNoLeaks(t, before)
}

func eofString(c *redistest.Client) string {
	if err := c.ReadEOF(); err != nil {
		return err.Error()
	}
	return "EOF"
}

// TestRelUplinkCut: the relay between proxy and Redis cuts or resets the
// connection at chosen byte counts. At a reply boundary, the replies
// before the cut arrive whole, the commands after it get "uplink
// connection lost", and the client stays connected (its next command
// dials again). In the middle of a reply (a bulk, an array, an element),
// the client's connection is closed: what it received is never a whole
// value. A time limit in the middle of a reply does the same.
func TestRelUplinkCut(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	expect(t, direct, "OK", "SET", "big", strings.Repeat("b", 1<<20))
	args := []any{"RPUSH", "list"}
	for i := range 1000 {
		args = append(args, fmt.Sprintf("element-%04d", i))
	}
	expect(t, direct, "(integer) 1000", args...)
	expect(t, direct, "OK", "MSET", "k1", "aaaa", "k2", "bbbb")
	before := relCount()
	relay := startRelay(t, srv.Addr)
	cfg := testConfig(relay.Addr)
	cfg.ReadTimeLimitMS = 500
	p := startProxy(t, cfg)
	addr := p.Addr().String()
	var opened relClients

	// At a reply boundary: 4 of 10 PONGs, then errors; still connected.
	for _, f := range []relayFault{faultCut, faultReset} {
		c := opened.dial(t, addr)
		expect(t, c, "PONG", "PING")
		relay.After(4*int64(len("+PONG\r\n")), f)
		for range 10 {
			c.Send("PING")
		}
		c.Flush()
		lost := false
		for i := range 10 {
			v, err := c.Receive()
			switch {
			case err != nil:
				t.Fatalf("fault %d: reply %d: %v", f, i, err)
			case v.Str == "PONG" && !lost && i < 4:
			case v.Str == errLost:
				lost = true
			default:
				t.Fatalf("fault %d: reply %d: %v", f, i, v)
			}
		}
		if !lost {
			t.Errorf("fault %d: no command got %q", f, errLost)
		}
		expect(t, c, "PONG", "PING") // dials again, through the relay
		c.Close()
	}

	// In the middle of a reply: closed, never a whole value.
	mid := []struct {
		name  string
		cmd   []any
		after int64
		fault relayFault
		// Nothing of the reply was forwarded yet (its first line is
		// incomplete): an error at the value boundary is right too.
		boundaryOK bool
	}{
		{"a 1 MiB bulk cut at 300 KiB", []any{"GET", "big"}, 300 << 10, faultCut, false},
		{"a 1 MiB bulk reset at 300 KiB", []any{"GET", "big"}, 300 << 10, faultReset, false},
		{"a 1000-element array cut after 500", []any{"LRANGE", "list", "0", "-1"}, int64(len("*1000\r\n") + 500*len("$12\r\nelement-0000\r\n")), faultCut, false},
		{"an array cut inside an element", []any{"LRANGE", "list", "0", "-1"}, int64(len("*1000\r\n") + 5), faultCut, false},
		{"an array header cut", []any{"LRANGE", "list", "0", "-1"}, 3, faultCut, true},
		{"MGET stalled after its first element: the time limit", []any{"MGET", "k1", "k2"}, int64(len("*2\r\n$4\r\naaaa\r\n")), faultStall, false},
		{"a bulk stalled in its payload: the time limit", []any{"GET", "big"}, 100 << 10, faultStall, false},
	}
	for _, m := range mid {
		c := opened.dial(t, addr)
		expect(t, c, "PONG", "PING")
		tl := p.Status().Counters.TimeLimitDisconnects
		fired := relay.After(m.after, m.fault)
		v, err := c.Do(m.cmd...)
		switch {
		case err == nil && m.boundaryOK && v.Str == errLost:
			expect(t, c, "PONG", "PING") // still connected
		case err == nil:
			t.Errorf("%s: the client received a whole value: %.200s", m.name, v.String())
		default:
			if eof := c.ReadEOF(); eof != nil {
				t.Errorf("%s: cut (%v), but not closed: %v", m.name, err, eof)
			}
		}
		<-fired
		if m.fault == faultStall {
			relay.Resume()
			if n := p.Status().Counters.TimeLimitDisconnects; n != tl+1 {
				t.Errorf("%s: time_limit_disconnects %d, want %d", m.name, n, tl+1)
			}
		}
		// The proxy goes on.
		expect(t, opened.dial(t, addr), "PONG", "PING")
	}
	t.Logf("uplink cut: 2 faults at a reply boundary (errors after it, client kept), %d in the middle of a reply (client closed, no whole value)", len(mid))
	opened.close()
	relShutdown(t, p)
	relay.Close()
	checkNoLeaks(t, before)
}

// TestRelSlowUplink: replies come 4 KiB at a time, 20 ms apart. Small
// commands are slower but right; a 128 KiB value (0.64 s) arrives whole
// within the 3 s limit; a 1 MiB value (5.1 s) is cut by the time limit
// and its client closed, never given a whole value.
func TestRelSlowUplink(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	medium := strings.Repeat("m", 128<<10)
	expect(t, direct, "OK", "SET", "medium", medium)
	expect(t, direct, "OK", "SET", "big", strings.Repeat("b", 1<<20))
	before := relCount()
	relay := startRelay(t, srv.Addr)
	cfg := testConfig(relay.Addr)
	cfg.ReadTimeLimitMS = 3000
	p := startProxy(t, cfg)
	addr := p.Addr().String()
	c := redistest.MustDial(t, addr)
	expect(t, c, "PONG", "PING")
	relay.SetDelay(20*time.Millisecond, 4<<10)
	lats := pingLatencies(t, c, 10)
	p50, _, worst := percentiles(lats)
	start := time.Now()
	v, err := c.Do("GET", "medium")
	mediumTook := time.Since(start)
	if err != nil || v.Str != medium {
		t.Fatalf("GET medium over a slow uplink: %d bytes, %v", len(v.Str), err)
	}
	b := redistest.MustDial(t, addr)
	start = time.Now()
	if v, err := b.Do("GET", "big"); err == nil {
		t.Errorf("a 1 MiB value at 200 KiB/s with a 3s limit arrived whole: %d bytes", len(v.Str))
	}
	bigTook := time.Since(start)
	if bigTook < 2900*time.Millisecond || bigTook > 5*time.Second {
		t.Errorf("the time limit cut the slow value after %v; want about 3s", bigTook)
	}
	relay.SetDelay(0, 0)
	expect(t, c, "PONG", "PING")
	t.Logf("slow uplink (4 KiB / 20 ms): PING p50 %v, max %v; 128 KiB whole in %v; 1 MiB cut by the 3s limit after %v (client closed)",
		p50.Round(time.Millisecond), worst.Round(time.Millisecond), mediumTook.Round(time.Millisecond), bigTook.Round(time.Millisecond))
	c.Close()
	b.Close()
	relShutdown(t, p)
	relay.Close()
	checkNoLeaks(t, before)
}

// TestRelHostileUplink: something that is not Redis answers on the
// uplink: an unknown type byte, an overflowing length, a reply nobody
// asked for, a huge bulk that never ends. The client's connection is
// closed (a bulk is never passed on whole), the proxy stays up and its
// heap bounded. (Deep nesting is legitimate: TestDeepRepliesForwarded.)
func TestRelHostileUplink(t *testing.T) {
	replies := []struct {
		name    string
		reply   string
		timeout bool // ends with the time limit
	}{
		{"unknown type byte", "?what\r\n", false},
		{"bulk length overflows int64", "$9223372036854775808\r\n", false},
		{"negative bulk length", "$-5\r\n", false},
		{"array count overflows", "*99999999999999999999\r\n", false},
		{"a line over 64 KiB", "+" + strings.Repeat("x", 70000) + "\r\n", false},
		{"two replies for one command", "+OK\r\n+EXTRA\r\n", false},
		{"a 512 MiB bulk of which 1 MiB comes", "$536870912\r\n" + strings.Repeat("z", 1<<20), true},
	}
	before := relCount()
	heap0 := heapInuse()
	for _, r := range replies {
		up, stop := fakeUplink(t, r.reply)
		cfg := testConfig(up)
		cfg.ReadTimeLimitMS = 500
		p := startProxy(t, cfg)
		c := redistest.MustDial(t, p.Addr().String())
		v, err := c.Do("GET", "x")
		switch {
		case r.name == "two replies for one command":
			// The first is GET's reply; the second nobody asked for: the
			// client is closed rather than given it as the next reply.
			if err != nil || v.Str != "OK" {
				t.Errorf("%s: first reply %v %v", r.name, v, err)
			}
			if eof := c.ReadEOF(); eof != nil {
				t.Errorf("%s: not closed: %v", r.name, eof)
			}
		case r.timeout:
			if err == nil && v.Str != errTimeLimitM {
				t.Errorf("%s: have %.100s", r.name, v.String())
			}
		default:
			if err == nil {
				t.Errorf("%s: the client received a value: %.100s", r.name, v.String())
			}
		}
		relShutdown(t, p)
		c.Close()
		stop()
	}
	if grew := int64(heapInuse()) - int64(heap0); grew > relMemBound {
		t.Errorf("heap grew by %s", mib(uint64(grew)))
	}
	t.Logf("hostile uplink: %d kinds of garbage from 'Redis', each ended with the client closed", len(replies))
	checkNoLeaks(t, before)
}

// fakeUplink listens on a loopback port and answers every read with
// reply, except the first of each connection (the proxy's CLIENT ID when
// it dials), answered with an id; stop (also called at cleanup) closes it
// and waits.
func fakeUplink(t *testing.T, reply string) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				br := bufio.NewReader(conn)
				buf := make([]byte, 4096)
				answer := ":1\r\n"
				for {
					if _, err := br.Read(buf); err != nil {
						return
					}
					if _, err := io.WriteString(conn, answer); err != nil {
						return
					}
					answer = reply
				}
			}()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}
