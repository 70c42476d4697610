package proxy

import (
	"sync"
	"time"
)

// historySize is how many events the history keeps.
const historySize = 50

// Event is one operation in the history: a pause, unpause, reload,
// switch, retarget or failover.
type Event struct {
	Time       time.Time `json:"time"`
	Event      string    `json:"event"`
	OK         bool      `json:"ok"`
	DurationMS float64   `json:"duration_ms"`
	Detail     string    `json:"detail"`
}

// history is a fixed ring of the last events.
type history struct {
	mu   sync.Mutex
	buf  [historySize]Event
	next int
	n    int
}

func (h *history) add(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf[h.next] = e
	h.next = (h.next + 1) % historySize
	h.n = min(h.n+1, historySize)
}

// list returns the events, newest first.
func (h *history) list() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Event, 0, h.n)
	for i := 1; i <= h.n; i++ {
		out = append(out, h.buf[(h.next-i+historySize)%historySize])
	}
	return out
}

// record adds an event to the history; start is when the operation began.
func (p *Proxy) record(event string, ok bool, start time.Time, detail string) {
	p.hist.add(Event{Time: time.Now().UTC(), Event: event, OK: ok,
		DurationMS: float64(time.Since(start).Microseconds()) / 1000, Detail: detail})
}
