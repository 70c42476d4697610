package proxy

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// relWriters are clients that pipeline RPUSH <own list> <seq> with seq
// counting up (0, 1, 2...): a write is acknowledged when its reply is the
// list's new length. Errors allowed (none by default) are counted, and
// their seqs kept: such a write may or may not have run, never twice. Only
// those seqs are kept, so that a long soak costs no memory per write.
type relWriters struct {
	prefix  string
	stop    chan struct{}
	wg      sync.WaitGroup
	acked   []atomic.Int64 // per writer: acknowledged writes
	sent    []int64        // per writer: seqs used, every one answered (owned by its goroutine until stop)
	errored [][]int64      // per writer: the seqs answered with an allowed error, in order (ditto)
	errs    atomic.Int64
	allowed []string
	failMu  sync.Mutex
	fail    error
}

// startWriters starts n writers, depth commands a batch; pace > 0 waits
// that long between a writer's batches (a steady rate for long runs).
func startWriters(t *testing.T, addr, prefix string, n, depth int, pace time.Duration, allowed ...string) *relWriters {
	t.Helper()
	w := &relWriters{prefix: prefix, stop: make(chan struct{}), acked: make([]atomic.Int64, n),
		sent: make([]int64, n), errored: make([][]int64, n), allowed: allowed}
	for i := range n {
		c, err := redistest.Dial(addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetTimeout(30 * time.Second)
		w.wg.Add(1)
		go w.run(c, i, depth, pace)
	}
	t.Cleanup(w.halt)
	return w
}

func (w *relWriters) key(i int) string { return fmt.Sprintf("%s:%d", w.prefix, i) }

func (w *relWriters) run(c *redistest.Client, i, depth int, pace time.Duration) {
	defer w.wg.Done()
	defer c.Close()
	var tick <-chan time.Time
	if pace > 0 {
		t := time.NewTicker(pace)
		defer t.Stop()
		tick = t.C
	}
	key := w.key(i)
	seq := int64(0)
	for {
		if tick != nil {
			select {
			case <-w.stop:
				return
			case <-tick:
			}
		} else if closed(w.stop) {
			return
		}
		for k := range int64(depth) {
			c.Send("RPUSH", key, seq+k)
		}
		if err := c.Flush(); err != nil {
			w.failed(fmt.Errorf("writer %d: flush: %w", i, err))
			return
		}
		for k := range int64(depth) {
			v, err := c.Receive()
			switch {
			case err != nil:
				w.failed(fmt.Errorf("writer %d: disconnected: %w", i, err))
				return
			case v.Err() != nil:
				if !w.isAllowed(v.Str) {
					w.failed(fmt.Errorf("writer %d: RPUSH %d: %s", i, seq+k, v.Str))
					return
				}
				w.errored[i] = append(w.errored[i], seq+k)
				w.errs.Add(1)
			case v.Type == ':' && v.Int > 0:
				w.acked[i].Add(1)
			default:
				w.failed(fmt.Errorf("writer %d: RPUSH %d: %v", i, seq+k, v))
				return
			}
		}
		seq += int64(depth)
		w.sent[i] = seq
	}
}

func (w *relWriters) isAllowed(msg string) bool { return isAllowed(w.allowed, msg) }

func (w *relWriters) failed(err error) {
	w.failMu.Lock()
	if w.fail == nil {
		w.fail = err
	}
	w.failMu.Unlock()
}

func (w *relWriters) err() error {
	w.failMu.Lock()
	defer w.failMu.Unlock()
	return w.fail
}

func (w *relWriters) total() int64 {
	var n int64
	for i := range w.acked {
		n += w.acked[i].Load()
	}
	return n
}

func (w *relWriters) waitAcked(t *testing.T, n int64) {
	t.Helper()
	target := w.total() + n
	waitFor(t, fmt.Sprintf("%d more acknowledged writes", n), func() bool {
		if err := w.err(); err != nil {
			t.Fatalf("writers: %v", err)
		}
		return w.total() >= target
	})
}

func (w *relWriters) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// verify stops the writers and reads each list back from Redis (10,000
// elements at a time): the seqs strictly increase (nothing twice, nothing
// reordered), every acknowledged seq is there, and nothing else but seqs
// whose write got an allowed error. It returns the acknowledged writes
// verified.
func (w *relWriters) verify(t *testing.T, direct *redistest.Client) int64 {
	t.Helper()
	w.halt()
	if err := w.err(); err != nil {
		t.Errorf("writers: %v", err)
	}
	direct.SetTimeout(60 * time.Second)
	var verified int64
	for i := range w.sent {
		key, sent, errored := w.key(i), w.sent[i], w.errored[i]
		next := int64(0) // the next seq expected
		e := 0           // errored[e] is the next errored seq >= next
		missing := func(upTo int64) bool {
			for ; next < upTo; next++ {
				for e < len(errored) && errored[e] < next {
					e++
				}
				if e < len(errored) && errored[e] == next {
					continue // its outcome is unknown: absent is fine
				}
				t.Errorf("%s: acknowledged write %d missing", key, next)
				return true
			}
			return false
		}
		bad := false
		for from := 0; !bad; from += 10000 {
			v, err := direct.Do("LRANGE", key, from, from+9999)
			if err != nil {
				t.Fatal(err)
			}
			for _, el := range v.Elems {
				n, err := strconv.ParseInt(el.Str, 10, 64)
				if err != nil || n < next || n >= sent {
					t.Errorf("%s: element %q where seq %d..%d was expected: duplicated, reordered or never sent", key, el.Str, next, sent-1)
					bad = true
					break
				}
				if bad = missing(n); bad {
					break
				}
				for e < len(errored) && errored[e] < n {
					e++
				}
				if e == len(errored) || errored[e] != n {
					verified++ // an acknowledged write (not an errored one that ran)
				}
				next = n + 1
			}
			if len(v.Elems) < 10000 {
				break
			}
		}
		if !bad {
			missing(sent)
		}
	}
	return verified
}

// TestRelOpsUnderLoad: 200 pause / unpause / reload operations in a burst
// while 50 clients pipeline writes. Reloads alternate the uplink between
// Redis's own address and a fault-free relay to it (a real switch: every
// client moves to a new uplink connection), and change max_clients in
// place; some reloads happen while paused. Then every acknowledged write
// is in Redis exactly once and in order, no write failed, and no client
// was disconnected.
func TestRelOpsUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	relay := startRelay(t, srv.Addr)
	before := relCount()
	f := newConfigFile(t, srv.Addr)
	p := f.start()
	w := startWriters(t, p.Addr().String(), "ops", 50, 10, 0)
	tx := startTxPipeliners(t, p.Addr().String(), "opstx", 10)
	w.waitAcked(t, 5000)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	addrs := [2]string{srv.Addr, relay.Addr}
	switched := 0
	reloadSwitch := func() {
		switched++
		f.cfg.Uplink.Addr = addrs[switched%2]
		f.write()
		if err := p.Reload(ctx); err != nil {
			t.Fatalf("reload (switch): %v", err)
		}
	}
	reloadInPlace := func() {
		if f.cfg.MaxClients == 10000 {
			f.cfg.MaxClients = 9999
		} else {
			f.cfg.MaxClients = 10000
		}
		f.write()
		if err := p.Reload(ctx); err != nil {
			t.Fatalf("reload (in place): %v", err)
		}
	}
	var longestPause time.Duration
	pauseOp := func() {
		start := time.Now()
		if err := p.Pause(ctx); err != nil {
			t.Fatalf("pause: %v", err)
		}
		longestPause = max(longestPause, time.Since(start))
	}
	unpauseOp := func() {
		if err := p.Unpause(); err != nil {
			t.Fatalf("unpause: %v", err)
		}
	}
	cycles := [][]func(){
		{pauseOp, reloadSwitch, unpauseOp, reloadInPlace}, // a switch while paused stays paused
		{reloadSwitch, pauseOp, unpauseOp, reloadInPlace},
	}
	const ops = 200
	start := time.Now()
	ackedAtStart := w.total()
	done := 0
	for i := 0; done < ops; i++ {
		for _, op := range cycles[i%2] {
			op()
			done++
		}
	}
	burst := time.Since(start)
	ackedDuring := w.total() - ackedAtStart
	w.waitAcked(t, 1000) // and it goes on after the burst
	tx.waitRounds(t, 100)
	st := p.Status()
	if st.Clients != 60 {
		t.Errorf("clients %d after the burst, want 60: some were disconnected", st.Clients)
	}
	// Transactions pipelined back to back hold no pause unit once
	// answered: every pause is short (the time limit is 5 s).
	if longestPause > time.Second {
		t.Errorf("the longest pause took %v, want far below read_time_limit_ms", longestPause)
	}
	if st.State != StateRunning {
		t.Errorf("state %s after the burst", st.State)
	}
	verified := w.verify(t, direct)
	txRounds := tx.verify(t, direct)
	st = p.Status()
	t.Logf("%d operations (%d pauses, the longest %v, %d unpauses, %d reloads of which %d switched the uplink) in %v while 50 clients pipelined writes and 10 pipelined transactions back to back: %d writes acknowledged during the burst; %d acknowledged writes verified in Redis exactly once and in order; %d rounds of two transactions verified; 0 errors, 0 disconnects; reloads counted %d, pauses %d",
		done, done/4, longestPause.Round(time.Millisecond), done/4, done/2, switched, burst.Round(time.Millisecond), ackedDuring, verified, txRounds, st.Counters.Reloads, st.Counters.Pauses)
	if w.errs.Load() != 0 {
		t.Errorf("%d writes got an error", w.errs.Load())
	}
	waitFor(t, "writers gone", func() bool { return p.Status().Clients == 0 })
	relShutdown(t, p)
	relay.Close()
	checkNoLeaks(t, before)
}

// relTxPipeliners are clients that send two transactions back to back in
// one write (MULTI INCR EXEC MULTI INCR EXEC), as ioredis and node-redis
// do for concurrent multi() calls on a shared connection, read the six
// replies, and go again. Each counts its rounds; its key must end at
// twice that.
type relTxPipeliners struct {
	prefix string
	rounds []atomic.Int64
	errs   atomic.Int64
	first  atomic.Value
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startTxPipeliners(t *testing.T, addr, prefix string, n int) *relTxPipeliners {
	x := &relTxPipeliners{prefix: prefix, rounds: make([]atomic.Int64, n), stop: make(chan struct{})}
	for i := range n {
		c := redistest.MustDial(t, addr)
		x.wg.Add(1)
		go x.run(c, i)
	}
	t.Cleanup(x.halt)
	return x
}

func (x *relTxPipeliners) run(c *redistest.Client, i int) {
	defer x.wg.Done()
	defer c.Close()
	key := fmt.Sprintf("%s:%d", x.prefix, i)
	for {
		select {
		case <-x.stop:
			return
		default:
		}
		vs, err := c.Pipeline([]any{"MULTI"}, []any{"INCR", key}, []any{"EXEC"}, []any{"MULTI"}, []any{"INCR", key}, []any{"EXEC"})
		if err == nil && (len(vs) != 6 || vs[2].Err() != nil || vs[5].Err() != nil) {
			err = fmt.Errorf("replies %v", vs)
		}
		if err != nil {
			x.errs.Add(1)
			x.first.CompareAndSwap(nil, err.Error())
			return
		}
		x.rounds[i].Add(1)
	}
}

func (x *relTxPipeliners) waitRounds(t *testing.T, n int64) {
	t.Helper()
	var start int64
	for i := range x.rounds {
		start += x.rounds[i].Load()
	}
	waitFor(t, "transaction rounds", func() bool {
		var sum int64
		for i := range x.rounds {
			sum += x.rounds[i].Load()
		}
		return sum-start >= n || x.errs.Load() > 0
	})
}

func (x *relTxPipeliners) halt() {
	select {
	case <-x.stop:
	default:
		close(x.stop)
	}
	x.wg.Wait()
}

// verify stops the clients and checks every acknowledged transaction ran
// once: each key is twice its client's rounds.
func (x *relTxPipeliners) verify(t *testing.T, direct *redistest.Client) int64 {
	t.Helper()
	x.halt()
	if n := x.errs.Load(); n > 0 {
		t.Errorf("%d transaction clients failed; first: %v", n, x.first.Load())
	}
	var total int64
	for i := range x.rounds {
		r := x.rounds[i].Load()
		total += r
		if have, want := do(t, direct, "GET", fmt.Sprintf("%s:%d", x.prefix, i)), fmt.Sprintf("%q", fmt.Sprint(2*r)); have != want && r > 0 {
			t.Errorf("%s:%d = %s, want %s (twice %d rounds)", x.prefix, i, have, want, r)
		}
	}
	return total
}
