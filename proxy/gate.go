package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// gate is the pause gate. Sessions pass it before each unit of work (a
// command, or a whole MULTI ... EXEC block) and hold it until the unit's
// reply has reached the client; the state machine closes it and waits
// until every unit that got through is done. It owns all of the pause
// bookkeeping: sessions and the state machine use its methods only.
//
// A session's units are counted in its hold; the gate counts the holds
// with at least one unit (busy). Entering announces the unit first and
// then looks at the gate, while closing sets the gate first and then looks
// at busy (Dekker-style), so a pause waits exactly for the units that got
// through.
type gate struct {
	closed  atomic.Bool
	busy    atomic.Int64 // holds with a unit in flight
	waiting atomic.Int64 // sessions waiting for the gate to open

	mu      sync.Mutex
	resume  chan struct{} // closed when the gate opens
	drained chan struct{} // closed (and replaced) when busy reaches 0 with the gate closed
}

// hold is one session's units in flight. Its count is changed only
// through the gate.
type hold struct {
	n atomic.Int32
}

// held reports whether the session holds a unit (for the stragglers).
func (h *hold) held() bool { return h.n.Load() > 0 }

func newGate() *gate {
	g := &gate{resume: make(chan struct{}), drained: make(chan struct{})}
	close(g.resume)
	return g
}

// enter passes the gate for one unit; while the gate is closed it backs
// out and waits for it to open (or for done). beforeWait runs before each
// wait (the session flushes what it forwarded).
func (g *gate) enter(h *hold, done <-chan struct{}, beforeWait func()) error {
	for {
		if g.tryEnterN(h, 1) {
			return nil
		}
		beforeWait()
		if err := g.wait(done); err != nil {
			return err
		}
	}
}

// tryEnterN passes the gate for n units (n > 0) if it is open; closed,
// it backs out and reports false.
func (g *gate) tryEnterN(h *hold, n int32) bool {
	if h.n.Add(n) == n {
		g.busy.Add(1)
	}
	if !g.closed.Load() {
		return true
	}
	g.leave(h, n)
	return false
}

// leave ends k units of h: the one place where a unit ends.
func (g *gate) leave(h *hold, k int32) {
	if k <= 0 || h.n.Add(-k) != 0 {
		return
	}
	g.idle()
}

// release ends whatever h still holds (its session is gone).
func (g *gate) release(h *hold) {
	if h.n.Swap(0) > 0 {
		g.idle()
	}
}

// idle is a hold's move from busy to idle.
func (g *gate) idle() {
	if g.busy.Add(-1) == 0 && g.closed.Load() {
		g.mu.Lock()
		close(g.drained)
		g.drained = make(chan struct{})
		g.mu.Unlock()
	}
}

// close makes new units wait.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed.Load() {
		g.resume = make(chan struct{})
		g.closed.Store(true)
	}
}

// open lets the waiting units go on, in order.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() {
		g.closed.Store(false)
		close(g.resume)
	}
}

// wait blocks until the gate opens (nil) or done closes.
func (g *gate) wait(done <-chan struct{}) error {
	g.mu.Lock()
	ch, open := g.resume, !g.closed.Load()
	g.mu.Unlock()
	if open {
		return nil
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case <-ch:
		return nil
	case <-done:
		return errSessionClosed
	}
}

// waitDrained waits until no unit is in flight, or cancel closes. After
// kickAfter it calls kick (which disconnects the sessions still holding a
// unit), so it returns in bounded time unless cancelled.
func (g *gate) waitDrained(cancel <-chan struct{}, kickAfter time.Duration, kick func()) error {
	timer := time.NewTimer(kickAfter)
	defer timer.Stop()
	for {
		g.mu.Lock()
		ch := g.drained
		g.mu.Unlock()
		if g.busy.Load() == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			kick()
		case <-cancel:
			return errCancelled
		}
	}
}
