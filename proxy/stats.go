package proxy

import (
	"sync/atomic"
	"time"
)

// Statistics: each session's counters and latency histogram, and the
// proxy's pause histogram.

// latencyBounds are the command latency histogram's buckets, in seconds.
var latencyBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// sessionStats are one session's counters, each written by one goroutine
// and read by Status.
type sessionStats struct {
	commands atomic.Uint64
	errors   atomic.Uint64
	buckets  [16]atomic.Uint64 // len(latencyBounds); the +Inf bucket is count - sum(buckets)
	count    atomic.Uint64
	sumNs    atomic.Uint64
}

// latencyNs are latencyBounds in nanoseconds.
var latencyNs = func() (ns [16]int64) {
	for i, b := range latencyBounds {
		ns[i] = int64(b * 1e9)
	}
	return ns
}()

// statPending is what a session has counted and not yet added to its
// sessionStats: plain fields, since a locked add per command (four per
// reply) was a cost on every one. A session publishes them before the
// client can see what they count: commands before they are flushed to
// the uplink, replies before they are flushed to the client.
type statPending struct {
	commands uint64 // the request goroutine's

	// The reply side's (whoever holds outMu).
	replies, sumNs, errors uint64
	bucket                 int // the latency bucket of the replies counted since the last publish
}

// observeN counts k replies of one latency.
func (p *statPending) observeN(ns int64, k uint64, st *sessionStats) {
	p.observe(ns, st)
	p.replies += k - 1
	p.sumNs += (k - 1) * uint64(max(ns, 0))
}

// observe counts a reply's latency. Replies of one batch most often fall
// in one bucket: one that does not publishes those before it.
func (p *statPending) observe(ns int64, st *sessionStats) {
	ns = max(ns, 0)
	b := len(latencyNs) // +Inf
	for i, bound := range latencyNs {
		if ns <= bound {
			b = i
			break
		}
	}
	if b != p.bucket && p.replies > 0 {
		p.publishReplies(st)
	}
	p.bucket = b
	p.replies++
	p.sumNs += uint64(ns)
}

// publishReplies adds the replies counted to st: the count first, so that
// a reader never sees more in the buckets than in the count.
func (p *statPending) publishReplies(st *sessionStats) {
	if p.errors > 0 {
		st.errors.Add(p.errors)
		p.errors = 0
	}
	if p.replies == 0 {
		return
	}
	st.count.Add(p.replies)
	st.sumNs.Add(p.sumNs)
	if p.bucket < len(st.buckets) {
		st.buckets[p.bucket].Add(p.replies)
	}
	p.replies, p.sumNs = 0, 0
}

// publishCommands adds the commands counted to st.
func (p *statPending) publishCommands(st *sessionStats) {
	if p.commands > 0 {
		st.commands.Add(p.commands)
		p.commands = 0
	}
}

// addTo adds these counters into the totals t.
func (st *sessionStats) addTo(t *totals) {
	t.commands += st.commands.Load()
	t.errors += st.errors.Load()
	for i := range st.buckets {
		t.buckets[i] += st.buckets[i].Load()
	}
	t.count += st.count.Load()
	t.sumNs += st.sumNs.Load()
}

type totals struct {
	commands, errors uint64
	buckets          [16]uint64
	count, sumNs     uint64
}

// pauseBounds are the pause duration histogram's buckets, in seconds.
var pauseBounds = [...]float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30}

func (p *Proxy) observePause(d time.Duration) {
	p.statMu.Lock()
	defer p.statMu.Unlock()
	for i, b := range pauseBounds {
		if d.Seconds() <= b {
			p.pauseHist[i]++
			break
		}
	}
	p.pauseCount++
	p.pauseSum += d
	p.lastPause = d
}
