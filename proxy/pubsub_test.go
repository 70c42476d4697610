package proxy

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// TestPubSubSameBytesAsRedis: pub/sub exchanges give the same bytes
// directly and through the proxy, in RESP2 and RESP3.
func TestPubSubSameBytesAsRedis(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	cases := []string{
		"SUBSCRIBE a b\r\nPSUBSCRIBE p* q*\r\nSSUBSCRIBE s\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nSUNSUBSCRIBE\r\n",
		"UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nSUNSUBSCRIBE\r\n",
		"SUBSCRIBE a\r\nPING\r\nPING x\r\nGET k\r\nUNSUBSCRIBE a b\r\nGET k\r\n",
		"SUBSCRIBE a\r\nRESET\r\nPING\r\nGET k\r\n",
		"SUBSCRIBE\r\nPSUBSCRIBE a b\r\nPUNSUBSCRIBE a\r\n",
		"SUBSCRIBE a\r\nPUBSUB NUMSUB a b\r\nPUBSUB NUMPAT\r\nPUBSUB CHANNELS\r\nPUBSUB SHARDCHANNELS\r\n",
		"HELLO 3\r\nSUBSCRIBE a b\r\nGET k\r\nPING\r\nSSUBSCRIBE s\r\nUNSUBSCRIBE\r\nSUNSUBSCRIBE\r\nGET k\r\n",
		"HELLO 3\r\nSUBSCRIBE a\r\nPUBSUB NUMSUB a\r\nRESET\r\nPING\r\n",
		"MULTI\r\nSUBSCRIBE a\r\nEXEC\r\n",
	}
	for _, in := range cases {
		want := stripIDs(exchange(t, srv.Addr, in))
		have := stripIDs(exchange(t, p.Addr().String(), in))
		if have != want {
			t.Errorf("%q:\nhave %q\nwant %q", in, have, want)
		}
	}
	// Messages, as Redis sends them, between replies.
	for _, hello := range []string{"", "HELLO 3\r\n"} {
		var outs [2]string
		for i, addr := range []string{srv.Addr, p.Addr().String()} {
			conn := rawConn(t, addr)
			io.WriteString(conn, hello+"SUBSCRIBE ch\r\nPSUBSCRIBE c*\r\n")
			pub := srv.Client(t)
			waitFor(t, "subscribed", func() bool { return do(t, pub, "PUBSUB", "NUMPAT") == "(integer) 1" })
			do(t, pub, "PUBLISH", "ch", "hello")
			io.WriteString(conn, "PING\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nQUIT\r\n")
			b, err := io.ReadAll(conn)
			if err != nil {
				t.Fatal(err)
			}
			outs[i] = stripIDs(string(b))
		}
		if outs[0] != outs[1] {
			t.Errorf("messages %q:\nhave %q\nwant %q", hello, outs[1], outs[0])
		}
	}
}

// subscriber reads everything its connection receives and sorts it.
type subscriber struct {
	c        *redistest.Client
	msgs     chan string // "channel payload"
	extra    chan string // anything but a message after the first confirmations
	closed   chan error
	confirms int
}

func startSubscriber(t *testing.T, addr string, resp3 bool, cmds ...[]any) *subscriber {
	t.Helper()
	c := redistest.MustDial(t, addr)
	c.SetTimeout(time.Minute)
	if resp3 {
		do(t, c, "HELLO", "3")
	}
	sub := &subscriber{c: c, msgs: make(chan string, 10000), extra: make(chan string, 100), closed: make(chan error, 1)}
	for _, cmd := range cmds {
		if err := c.Send(cmd...); err != nil {
			t.Fatal(err)
		}
		sub.confirms += len(cmd) - 1
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for range sub.confirms {
		if _, err := c.Receive(); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for {
			v, err := c.Receive()
			if err != nil {
				sub.closed <- err
				return
			}
			if len(v.Elems) >= 3 {
				switch v.Elems[0].Str {
				case "message", "smessage":
					sub.msgs <- v.Elems[1].Str + " " + v.Elems[2].Str
					continue
				case "pmessage":
					sub.msgs <- v.Elems[2].Str + " " + v.Elems[3].Str
					continue
				}
			}
			sub.extra <- v.String()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return sub
}

// expectMessages checks that each subscriber receives exactly want, in
// order, and nothing else.
func expectMessages(t *testing.T, subs []*subscriber, want []string) {
	t.Helper()
	for i, sub := range subs {
		for _, w := range want {
			select {
			case have := <-sub.msgs:
				if have != w {
					t.Fatalf("subscriber %d: have %q, want %q", i, have, w)
				}
			case x := <-sub.extra:
				t.Fatalf("subscriber %d: received %q", i, x)
			case err := <-sub.closed:
				t.Fatalf("subscriber %d: closed: %v", i, err)
			case <-time.After(10 * time.Second):
				t.Fatalf("subscriber %d: %q not received", i, w)
			}
		}
	}
	for i, sub := range subs {
		select {
		case have := <-sub.msgs:
			t.Fatalf("subscriber %d: a message more: %q", i, have)
		case x := <-sub.extra:
			t.Fatalf("subscriber %d: received %q", i, x)
		default:
		}
	}
}

func startSubscribers(t *testing.T, addr string, n int) []*subscriber {
	var subs []*subscriber
	for i := range n {
		var cmds [][]any
		switch i % 3 {
		case 0:
			cmds = [][]any{{"SUBSCRIBE", "ch", "other"}}
		case 1:
			cmds = [][]any{{"PSUBSCRIBE", "c*"}}
		case 2:
			cmds = [][]any{{"SUBSCRIBE", "ch"}, {"SSUBSCRIBE", "sh"}}
		}
		subs = append(subs, startSubscriber(t, addr, i%2 == 1, cmds...))
	}
	return subs
}

// publishRound publishes through the proxy and returns what each kind of
// subscriber must receive, in order.
func publishRound(t *testing.T, pub *redistest.Client, round int) (channel, shard []string) {
	for k := range 3 {
		payload := fmt.Sprintf("r%d-%d", round, k)
		do(t, pub, "PUBLISH", "ch", payload)
		do(t, pub, "SPUBLISH", "sh", payload)
		channel = append(channel, "ch "+payload)
		shard = append(shard, "ch "+payload, "sh "+payload)
	}
	return channel, shard
}

func checkRound(t *testing.T, subs []*subscriber, channel, shard []string) {
	t.Helper()
	for i, sub := range subs {
		want := channel
		if i%3 == 2 {
			want = shard
		}
		expectMessages(t, []*subscriber{sub}, want)
	}
}

// TestSubscribersFollowEveryChange: subscribers (channels, patterns,
// shard channels; RESP2 and RESP3) are subscribed again at once on every
// change of uplink connection: 10 reloads A -> B -> A, a SIGKILL and
// restart of Redis, a CLIENT KILL of their connections. Every message
// published through the proxy afterwards reaches each exactly once, in
// order; no confirmation of the re-subscription reaches them; none is
// disconnected.
func TestSubscribersFollowEveryChange(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	f := newConfigFile(t, a.Addr)
	p := f.start()
	addr := p.Addr().String()
	subs := startSubscribers(t, addr, 50)
	pub := dial(t, p)
	round := 0
	check := func() {
		t.Helper()
		round++
		channel, shard := publishRound(t, pub, round)
		checkRound(t, subs, channel, shard)
	}
	check()
	servers := []*redistest.Server{a, b}
	for i := range 10 {
		to := servers[(i+1)%2]
		f.cfg.Uplink.Addr = to.Addr
		f.write()
		if err := f.reload(p); err != nil {
			t.Fatal(err)
		}
		check()
	}
	// Now on a. Redis killed and restarted: the subscribers come back by
	// themselves (they send nothing).
	numsub := func(srv *redistest.Server) func() bool {
		direct := srv.Client(t)
		return func() bool {
			list := do(t, direct, "CLIENT", "LIST", "TYPE", "pubsub")
			return strings.Count(list, "id=") == len(subs)
		}
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := a.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscribed again after the restart", numsub(a))
	check()
	// Their connections killed by an operator.
	direct := a.Client(t)
	do(t, direct, "CLIENT", "KILL", "TYPE", "pubsub")
	waitFor(t, "subscribed again after CLIENT KILL", numsub(a))
	check()
	if st := p.Status(); st.Clients != len(subs)+1 {
		t.Errorf("%d clients, want %d", st.Clients, len(subs)+1)
	}
	// The client list says who is subscribed to how much.
	pubsub := 0
	for _, ci := range p.Clients() {
		if slices.Contains(ci.Flags, "pubsub") {
			pubsub++
			if ci.Subs < 1 || ci.Subs > 2 {
				t.Errorf("client %d: subs %d", ci.ID, ci.Subs)
			}
		}
	}
	if pubsub != len(subs) {
		t.Errorf("%d clients flagged pubsub, want %d", pubsub, len(subs))
	}
}

// reload reloads p and fails the test on an error.
func (f *configFile) reload(p *Proxy) error { return p.Reload(f.t.Context()) }

// TestPauseWithManySubscribers: a subscribed client with no command in
// flight holds no pause unit.
func TestPauseWithManySubscribers(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	n := 1000
	if relRace {
		n = 300
	}
	for i := range n {
		c := redistest.MustDial(t, p.Addr().String())
		expect(t, c, "1) \"subscribe\"\n2) \"ch\"\n3) (integer) 1", "SUBSCRIBE", "ch")
		_ = i
		t.Cleanup(func() { c.Close() })
	}
	bound := 5 * time.Millisecond
	if relRace {
		bound = 100 * time.Millisecond
	}
	if d := pause(t, p); d > bound {
		t.Errorf("pause with %d subscribers took %v, want < %v", n, d, bound)
	}
	p.Unpause()
}

// TestMonitorAcrossReload: MONITOR is carried and issued again on a new
// uplink connection.
func TestMonitorAcrossReload(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	f := newConfigFile(t, a.Addr)
	p := f.start()
	mon := dial(t, p)
	expect(t, mon, "OK", "MONITOR")
	other := dial(t, p)
	seen := func(key string) {
		t.Helper()
		do(t, other, "SET", key, "v")
		for {
			v, err := mon.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(v.Str, `"SET" "`+key+`"`) || strings.Contains(v.Str, `"set" "`+key+`"`) {
				return
			}
		}
	}
	seen("before")
	f.cfg.Uplink.Addr = b.Addr
	f.write()
	if err := f.reload(p); err != nil {
		t.Fatal(err)
	}
	seen("after")
	flagged := 0
	for _, ci := range p.Clients() {
		if slices.Contains(ci.Flags, "monitor") {
			flagged++
		}
	}
	if flagged != 1 {
		t.Errorf("%d clients flagged monitor, want 1", flagged)
	}
	_ = net.ErrClosed
}

// TestSlowSubscriber: a subscriber that does not read costs the proxy
// bounded memory (no queue of its own beyond the socket buffers); once it
// has not taken a write for read_time_limit_ms it is disconnected, and
// other clients are not affected.
func TestSlowSubscriber(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ReadTimeLimitMS = 1000
	p := startProxy(t, cfg)
	slow := relDial(t, p.Addr().String())
	slow.SetReadBuffer(4096)
	if _, err := io.WriteString(slow, "SUBSCRIBE flood\r\n"); err != nil {
		t.Fatal(err)
	}
	direct := srv.Client(t)
	waitFor(t, "subscribed", func() bool { return do(t, direct, "PUBSUB", "NUMSUB", "flood") == "1) \"flood\"\n2) (integer) 1" })
	heap0 := heapInuse()
	payload := strings.Repeat("x", 100<<10)
	var peak uint64
	published := 0
	for i := 0; i < 400 && p.Status().Clients == 1; i++ { // up to 40 MiB
		do(t, direct, "PUBLISH", "flood", payload)
		published++
		if i%20 == 0 {
			peak = max(peak, heapInuse())
		}
	}
	if grew := int64(peak) - int64(heap0); grew > relMemBound {
		t.Errorf("the proxy's heap grew by %s for one slow subscriber", mib(uint64(grew)))
	}
	waitFor(t, "the slow subscriber disconnected", func() bool { return p.Status().Clients == 0 })
	other := dial(t, p)
	expect(t, other, "PONG", "PING")
	if n := p.Status().Counters.TimeLimitDisconnects; n != 0 && n != 1 {
		t.Errorf("time limit disconnects %d", n)
	}
	t.Logf("slow subscriber: heap peak +%s over %s published; disconnected", mib(max(peak, heap0)-heap0), mib(uint64(len(payload)*published)))
}

// TestMoveWaitsForAHalfCommand: a subscriber half-way through sending a
// command when a reload moves it keeps its connection. The move waits for
// the command's end, without holding up the reload (the command would
// wait for the reload at the pause); the command is answered on the new
// server, and a message published after it reaches the subscriber once.
func TestMoveWaitsForAHalfCommand(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		name := "tcp"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			a, b := redistest.Start(t), redistest.Start(t)
			f := newConfigFile(t, a.Addr)
			certs := writeCerts(t)
			if withTLS {
				f.cfg.Listen.TLS = true
				f.cfg.Listen.CertFile, f.cfg.Listen.KeyFile = certs.ServerCert, certs.ServerKey
				f.write()
			}
			p := f.start()
			addr := p.Addr().String()
			connect := func() *redistest.Client {
				if !withTLS {
					return redistest.MustDial(t, addr)
				}
				c, err := redistest.DialTLS(addr, clientTLS(t, certs, false), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			sub := connect()
			sub.SetTimeout(20 * time.Second)
			if v, err := sub.Do("SUBSCRIBE", "ch"); err != nil || len(v.Elems) != 3 {
				t.Fatalf("SUBSCRIBE: %v %v", v, err)
			}
			// One write: a whole PING, then the start of another. Once the
			// first is answered, the proxy holds the start of the second.
			if err := sub.WriteRaw([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nPI")); err != nil {
				t.Fatal(err)
			}
			if v, err := sub.Receive(); err != nil || v.String() != `1) "pong"`+"\n"+`2) ""` {
				t.Fatalf("first PING: %q %v", v.String(), err)
			}
			f.cfg.Uplink.Addr = b.Addr
			f.write()
			reloaded := make(chan error, 1)
			go func() { reloaded <- f.reload(p) }()
			// The reload returns once the subscriber is moved, or its move
			// deferred; not after waiting read_time_limit_ms for it.
			select {
			case err := <-reloaded:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(time.Duration(f.cfg.ReadTimeLimitMS) * time.Millisecond / 2):
				t.Fatal("the reload waits for the half command")
			}
			if err := sub.WriteRaw([]byte("NG\r\n$2\r\nhi\r\n")); err != nil {
				t.Fatal(err)
			}
			if v, err := sub.Receive(); err != nil || v.String() != `1) "pong"`+"\n"+`2) "hi"` {
				t.Fatalf("second PING: %q %v", v.String(), err)
			}
			expect(t, connect(), "(integer) 1", "PUBLISH", "ch", "after")
			if v, err := sub.Receive(); err != nil || len(v.Elems) != 3 || v.Elems[2].Str != "after" {
				t.Fatalf("message after the reload: %v %v", v, err)
			}
			direct := b.Client(t)
			expect(t, direct, `1) "ch"`+"\n"+`2) (integer) 1`, "PUBSUB", "NUMSUB", "ch")
		})
	}
}
