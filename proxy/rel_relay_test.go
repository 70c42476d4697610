package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultRelay sits between the proxy and Redis (the proxy's uplink.addr is
// the relay's Addr) and injects what networks and servers do: a slow
// uplink (a delay before each chunk of replies), a stall (replies held
// back until Resume), a cut or a reset after exactly n more reply bytes,
// and a reset of every connection. With no fault armed it is a plain
// relay, so the same Redis can be reached under two addresses.
//
// Faults apply to the reply direction (Redis -> proxy); requests always
// pass. The delays are the fault being injected, not synchronisation.
type faultRelay struct {
	Addr   string
	ln     net.Listener
	target string

	mu      sync.Mutex
	pairs   map[*relayPair]struct{}
	delay   time.Duration // before each reply chunk
	chunk   int           // largest reply chunk forwarded at once (0: 32 KiB)
	stalled chan struct{} // non-nil while stalled; closed by Resume
	armed   int64         // > 0: this many more reply bytes, then fault
	fault   relayFault
	fired   chan struct{} // closed when the armed fault fires

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	accepted  atomic.Int64
}

type relayFault int

const (
	faultNone  relayFault = iota
	faultCut              // close both connections (FIN)
	faultReset            // reset both connections (RST)
	faultStall            // hold every later reply byte until Resume
)

// relayPair is one proxied connection: down is the proxy's side, up Redis's.
type relayPair struct {
	down, up  net.Conn
	closeOnce sync.Once
}

func (p *relayPair) close(reset bool) {
	p.closeOnce.Do(func() {
		if reset {
			for _, c := range []net.Conn{p.down, p.up} {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
			}
		}
		p.down.Close()
		p.up.Close()
	})
}

// startRelay starts a relay to target; it is closed at cleanup.
func startRelay(tb testing.TB, target string) *faultRelay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &faultRelay{
		Addr:   ln.Addr().String(),
		ln:     ln,
		target: target,
		pairs:  make(map[*relayPair]struct{}),
		closed: make(chan struct{}),
	}
	r.wg.Add(1)
	go r.accept()
	tb.Cleanup(r.Close)
	return r
}

func (r *faultRelay) accept() {
	defer r.wg.Done()
	for {
		down, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.accepted.Add(1)
		up, err := net.DialTimeout("tcp", r.target, 5*time.Second)
		if err != nil {
			down.Close()
			continue
		}
		p := &relayPair{down: down, up: up}
		r.mu.Lock()
		r.pairs[p] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(2)
		go r.requests(p)
		go r.replies(p)
	}
}

// requests copies proxy -> Redis, untouched.
func (r *faultRelay) requests(p *relayPair) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := p.down.Read(buf)
		if n > 0 {
			if _, werr := p.up.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	r.drop(p, false)
}

// replies copies Redis -> proxy, applying the faults.
func (r *faultRelay) replies(p *relayPair) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := p.up.Read(buf[:r.chunkSize()])
		for off := 0; off < n; {
			k, delay, stall, fault := r.plan(n - off)
			if delay > 0 && !r.sleep(delay) {
				r.drop(p, false)
				return
			}
			if stall != nil {
				select {
				case <-stall:
				case <-r.closed:
					r.drop(p, false)
					return
				}
			}
			if _, werr := p.down.Write(buf[off : off+k]); werr != nil {
				r.drop(p, false)
				return
			}
			off += k
			switch fault {
			case faultCut, faultReset:
				r.drop(p, fault == faultReset)
				return
			}
		}
		if err != nil {
			break
		}
	}
	r.drop(p, false)
}

func (r *faultRelay) chunkSize() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.chunk > 0 {
		return r.chunk
	}
	return 32 << 10
}

// plan says how many of the n reply bytes ready may go now, after which
// delay and stall, and which fault fires once they are written.
func (r *faultRelay) plan(n int) (k int, delay time.Duration, stall chan struct{}, fault relayFault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, delay, stall = n, r.delay, r.stalled
	if r.armed > 0 {
		k = int(min(int64(n), r.armed))
		r.armed -= int64(k)
		if r.armed == 0 {
			fault, r.fault = r.fault, faultNone
			if fault == faultStall {
				r.stalled = make(chan struct{})
				fault = faultNone
			}
			close(r.fired)
		}
	}
	return k, delay, stall, fault
}

func (r *faultRelay) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.closed:
		return false
	}
}

func (r *faultRelay) drop(p *relayPair, reset bool) {
	p.close(reset)
	r.mu.Lock()
	delete(r.pairs, p)
	r.mu.Unlock()
}

// SetDelay makes the uplink slow: every reply chunk (at most chunk bytes;
// 0 keeps 32 KiB) waits d before it is forwarded.
func (r *faultRelay) SetDelay(d time.Duration, chunk int) {
	r.mu.Lock()
	r.delay, r.chunk = d, chunk
	r.mu.Unlock()
}

// Stall holds every reply byte from now on until Resume.
func (r *faultRelay) Stall() {
	r.mu.Lock()
	if r.stalled == nil {
		r.stalled = make(chan struct{})
	}
	r.mu.Unlock()
}

// Resume ends a stall.
func (r *faultRelay) Resume() {
	r.mu.Lock()
	if r.stalled != nil {
		close(r.stalled)
		r.stalled = nil
	}
	r.mu.Unlock()
}

// After arms f to fire once exactly n more reply bytes (on whichever
// connections carry them) have been forwarded. The channel returned is
// closed when it fires.
func (r *faultRelay) After(n int64, f relayFault) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= 0 {
		panic("faultRelay.After: n must be > 0")
	}
	r.armed, r.fault, r.fired = n, f, make(chan struct{})
	return r.fired
}

// ResetAll resets every connection (RST both ways) and reports how many.
func (r *faultRelay) ResetAll() int {
	r.mu.Lock()
	pairs := make([]*relayPair, 0, len(r.pairs))
	for p := range r.pairs {
		pairs = append(pairs, p)
	}
	r.mu.Unlock()
	for _, p := range pairs {
		r.drop(p, true)
	}
	return len(pairs)
}

// Conns is the number of connections relayed now.
func (r *faultRelay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pairs)
}

// Close stops the relay and waits for its goroutines.
func (r *faultRelay) Close() { r.closeOnce.Do(r.close) }

func (r *faultRelay) close() {
	close(r.closed)
	r.ln.Close()
	r.Resume()
	r.mu.Lock()
	pairs := make([]*relayPair, 0, len(r.pairs))
	for p := range r.pairs {
		pairs = append(pairs, p)
	}
	r.mu.Unlock()
	for _, p := range pairs {
		p.close(false)
	}
	r.wg.Wait()
}
