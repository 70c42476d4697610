package proxy

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

func TestBlockTimeout(t *testing.T) {
	args := func(ss ...string) [][]byte {
		var out [][]byte
		for _, s := range ss {
			out = append(out, []byte(s))
		}
		return out
	}
	cases := []struct {
		cmd  string
		args [][]byte
		want int64
	}{
		{"BLPOP", args("a", "b", "7"), int64(7 * time.Second)},
		{"brpop", args("a", "0.25"), int64(250 * time.Millisecond)},
		{"BLPOP", args("a", "0"), noLimit},
		{"BLPOP", args("a", "-1"), notBlocking},
		{"BLPOP", args("a", "x"), notBlocking},
		{"BLMOVE", args("a", "b", "LEFT", "RIGHT", "1.5"), int64(1500 * time.Millisecond)},
		{"BRPOPLPUSH", args("a", "b", "2"), int64(2 * time.Second)},
		{"BZPOPMIN", args("z", "3"), int64(3 * time.Second)},
		{"BZPOPMAX", args("z", "0"), noLimit},
		{"BLMPOP", args("4", "1", "a", "LEFT"), int64(4 * time.Second)},
		{"BZMPOP", args("0", "1", "z", "MIN"), noLimit},
		{"XREAD", args("COUNT", "1", "BLOCK", "6000", "STREAMS", "s", "$"), int64(6 * time.Second)},
		{"XREAD", args("BLOCK", "0", "STREAMS", "s", "$"), noLimit},
		{"XREAD", args("STREAMS", "BLOCK", "5"), notBlocking}, // BLOCK as a key name
		{"XREAD", args("COUNT", "1", "STREAMS", "s", "0"), notBlocking},
		{"XREADGROUP", args("GROUP", "g", "c", "BLOCK", "100", "STREAMS", "s", ">"), int64(100 * time.Millisecond)},
		{"WAIT", args("1", "0"), noLimit},
		{"WAIT", args("1", "250"), int64(250 * time.Millisecond)},
	}
	for _, tc := range cases {
		kind := blockingKind([]byte(tc.cmd))
		if kind == 0 {
			t.Errorf("%s: not known to block", tc.cmd)
			continue
		}
		if have := blockTimeout(kind, tc.args); have != tc.want {
			t.Errorf("%s %q: have %d, want %d", tc.cmd, tc.args, have, tc.want)
		}
	}
	for _, name := range []string{"GET", "LPOP", "XADD", "WAITAOF"} {
		if blockingKind([]byte(name)) != 0 {
			t.Errorf("%s: taken for a blocking command", name)
		}
	}
}

// TestBlockingCommandTimeLimits: with the default 5000 ms limit, blocking
// commands run to their own timeout, or without limit at 0, and keep
// their client; anything else is still cut at the limit.
func TestBlockingCommandTimeLimits(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	t.Run("BLPOP k 7 times out after 7 s", func(t *testing.T) {
		t.Parallel()
		c := dial(t, p)
		c.SetTimeout(20 * time.Second)
		start := time.Now()
		expect(t, c, "(nil)", "BLPOP", "bt:none", "7")
		if d := time.Since(start); d < 7*time.Second || d > 9*time.Second {
			t.Errorf("answered after %v, want about 7s", d)
		}
		expect(t, c, "PONG", "PING")
	})
	// served checks that a command blocks for 30 s (the limit is 5 s)
	// and is then answered when push releases it.
	served := func(t *testing.T, c *redistest.Client, want string, push func(), args ...any) {
		c.SetTimeout(60 * time.Second)
		got := make(chan string, 1)
		go func() {
			v, err := c.Do(args...)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- v.String()
		}()
		timer := time.NewTimer(30 * time.Second)
		defer timer.Stop()
		select {
		case have := <-got:
			t.Fatalf("answered before it was released: %s", have)
		case <-timer.C:
		}
		push()
		if have := <-got; !strings.Contains(have, want) {
			t.Fatalf("%v: have %q, want %q in it", args, have, want)
		}
		expect(t, c, "PONG", "PING")
	}
	t.Run("BLPOP k 0 served 30 s later", func(t *testing.T) {
		t.Parallel()
		direct := srv.Client(t) // each parallel subtest its own
		served(t, dial(t, p), "1) \"bt:list\"\n2) \"v\"", func() { do(t, direct, "LPUSH", "bt:list", "v") }, "BLPOP", "bt:list", "0")
	})
	t.Run("XREAD BLOCK 0 served 30 s later", func(t *testing.T) {
		t.Parallel()
		direct := srv.Client(t)
		served(t, dial(t, p), "1-1", func() { do(t, direct, "XADD", "bt:stream", "1-1", "f", "v") }, "XREAD", "BLOCK", "0", "STREAMS", "bt:stream", "$")
	})
	t.Run("WAIT 1 0 released 30 s later", func(t *testing.T) {
		t.Parallel()
		c := dial(t, p)
		id := strings.TrimPrefix(do(t, c, "CLIENT", "ID"), "(integer) ")
		// No replica will ever acknowledge: released as a replica's ACK would.
		direct := srv.Client(t)
		served(t, c, "(integer) 0", func() { do(t, direct, "CLIENT", "UNBLOCK", id) }, "WAIT", "1", "0")
	})
	t.Run("DEBUG SLEEP 6 is cut at the limit", func(t *testing.T) {
		t.Parallel()
		// Its own Redis: DEBUG SLEEP stalls the whole server.
		sleepy := redistest.Start(t, "--enable-debug-command", "yes")
		c := dial(t, startProxy(t, testConfig(sleepy.Addr)))
		c.SetTimeout(20 * time.Second)
		start := time.Now()
		expect(t, c, "(error) ERR proxy: command exceeded read_time_limit_ms", "DEBUG", "SLEEP", "6")
		if d := time.Since(start); d < 5*time.Second || d > 6*time.Second {
			t.Errorf("cut after %v, want 5s", d)
		}
		expectEOF(t, c)
	})
}

// blockers are clients that each loop on one blocking command: a timeout
// reply counts as released and the command is sent again; any other
// reply counts as served.
type blockers struct {
	released, served, failed atomic.Int64
	firstErr                 atomic.Value
	wg                       sync.WaitGroup
}

func (b *blockers) start(t *testing.T, addr string, n int, timeout string, args ...any) {
	t.Cleanup(b.wg.Wait) // after every client is closed: cleanups run last first
	for range n {
		c := redistest.MustDial(t, addr)
		c.SetTimeout(time.Minute)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				v, err := c.Do(args...)
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						b.failed.Add(1)
						b.firstErr.CompareAndSwap(nil, err.Error())
					}
					return
				}
				switch s := v.String(); {
				case s == timeout:
					b.released.Add(1)
				case v.Err() != nil:
					b.failed.Add(1)
					b.firstErr.CompareAndSwap(nil, s)
					return
				default:
					b.served.Add(1)
				}
			}
		}()
		t.Cleanup(func() { c.Close() })
	}
}

func blockedClients(t *testing.T, c *redistest.Client) int {
	t.Helper()
	m := regexp.MustCompile(`blocked_clients:(\d+)`).FindStringSubmatch(do(t, c, "INFO", "clients"))
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestPauseReleasesBlockedCommands: a pause does not wait for blocked
// commands: each gets Redis's own timeout reply at once, its client sends
// it again, and that waits at the gate; after the unpause they block
// again, and a push is served by exactly one. A reload moves them to the
// new Redis the same way.
func TestPauseReleasesBlockedCommands(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	f := newConfigFile(t, a.Addr)
	p := f.start()
	addr := p.Addr().String()
	var lists, streams, waits blockers
	lists.start(t, addr, 100, "(nil)", "BLPOP", "bq", "0")
	streams.start(t, addr, 20, "(nil)", "XREAD", "BLOCK", "0", "STREAMS", "bs", "$")
	waits.start(t, addr, 5, "(integer) 0", "WAIT", "5", "0")
	const all = 125
	direct := a.Client(t)
	waitFor(t, "125 clients blocked in Redis", func() bool { return blockedClients(t, direct) == all })

	bound := 50 * time.Millisecond
	if relRace {
		bound = time.Second
	}
	if d := pause(t, p); d > bound {
		t.Errorf("pause with %d blocked clients took %v, want < %v", all, d, bound)
	}
	waitFor(t, "every blocked command released and sent again", func() bool { return p.Status().WaitingRequests == all })
	for _, x := range []*blockers{&lists, &streams, &waits} {
		if x.released.Load() == 0 || x.failed.Load() != 0 {
			t.Fatalf("released %d, failed %d (%v)", x.released.Load(), x.failed.Load(), x.firstErr.Load())
		}
	}
	if n := lists.released.Load() + streams.released.Load() + waits.released.Load(); n != all {
		t.Errorf("%d released, want %d", n, all)
	}
	if n := blockedClients(t, direct); n != 0 {
		t.Errorf("%d clients still blocked in Redis while paused", n)
	}
	if err := p.Unpause(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "blocked again after the unpause", func() bool { return blockedClients(t, direct) == all })
	do(t, direct, "LPUSH", "bq", "one")
	waitFor(t, "the push served", func() bool { return lists.served.Load() == 1 })
	waitFor(t, "the served client blocked again", func() bool { return blockedClients(t, direct) == all })
	if lists.served.Load() != 1 {
		t.Errorf("the push was served %d times", lists.served.Load())
	}

	// A reload to another Redis releases them the same way and moves them.
	f.cfg.Uplink.Addr = b.Addr
	f.write()
	start := time.Now()
	if err := p.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*bound {
		t.Errorf("reload with %d blocked clients took %v", all, d)
	}
	directB := b.Client(t)
	waitFor(t, "blocked on the new Redis", func() bool { return blockedClients(t, directB) == all })
	do(t, directB, "LPUSH", "bq", "two")
	waitFor(t, "the push on the new Redis served", func() bool { return lists.served.Load() == 2 })
	if st := p.Status(); st.Clients != all || st.Counters.TimeLimitDisconnects != 0 {
		t.Errorf("clients %d, time limit disconnects %d", st.Clients, st.Counters.TimeLimitDisconnects)
	}
	for _, x := range []*blockers{&lists, &streams, &waits} {
		if x.failed.Load() != 0 {
			t.Errorf("failed %d (%v)", x.failed.Load(), x.firstErr.Load())
		}
	}
}
