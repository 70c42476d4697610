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

func (st *sessionStats) observe(ns int64) {
	if ns < 0 {
		ns = 0
	}
	sec := float64(ns) / 1e9
	for i, b := range latencyBounds {
		if sec <= b {
			st.buckets[i].Add(1)
			break
		}
	}
	st.count.Add(1)
	st.sumNs.Add(uint64(ns))
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
