package proxy

import (
	"context"
	"sync"
	"time"
)

// The charts of the status page: once a second, the commands per second
// and the latency p50 and p99 of the second just over, derived from the
// latency histogram's totals (the difference since the last sample); the
// last chartSamples samples are kept in a fixed ring.

// chartSamples is how many samples the charts keep: 5 minutes.
const chartSamples = 300

// chartInterval is the time between samples.
const chartInterval = time.Second

// chartRing is the samples, written by the sampler and read by Charts.
type chartRing struct {
	mu    sync.Mutex
	cmds  [chartSamples]float64
	p50   [chartSamples]float64 // milliseconds
	p99   [chartSamples]float64
	next  int
	n     int
	prev  totals
	prevT time.Time
	every time.Duration // chartInterval; tests shorten it before Start
}

// Charts returns the samples, oldest first.
func (p *Proxy) Charts() Charts {
	r := &p.charts
	r.mu.Lock()
	defer r.mu.Unlock()
	c := Charts{IntervalS: r.interval().Seconds(), CommandsPerS: make([]float64, 0, r.n),
		P50MS: make([]float64, 0, r.n), P99MS: make([]float64, 0, r.n)}
	for i := r.n; i > 0; i-- {
		j := (r.next - i + chartSamples) % chartSamples
		c.CommandsPerS = append(c.CommandsPerS, r.cmds[j])
		c.P50MS = append(c.P50MS, r.p50[j])
		c.P99MS = append(c.P99MS, r.p99[j])
	}
	return c
}

func (r *chartRing) interval() time.Duration {
	if r.every > 0 {
		return r.every
	}
	return chartInterval
}

// chartLoop samples until ctx ends (Shutdown).
func (p *Proxy) chartLoop(ctx context.Context) {
	defer p.wg.Done()
	r := &p.charts
	r.mu.Lock()
	every := r.interval()
	r.prev, r.prevT = p.totals(), time.Now()
	r.mu.Unlock()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.sample(p.totals(), now)
		}
	}
}

// sample adds the sample of the time since the last one.
func (r *chartRing) sample(t totals, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := now.Sub(r.prevT).Seconds()
	if secs <= 0 {
		return
	}
	var d totals
	d.commands = t.commands - r.prev.commands
	d.count = t.count - r.prev.count
	for i := range d.buckets {
		d.buckets[i] = t.buckets[i] - r.prev.buckets[i]
	}
	r.cmds[r.next] = float64(d.commands) / secs
	r.p50[r.next] = quantileMS(&d, 0.5)
	r.p99[r.next] = quantileMS(&d, 0.99)
	r.next = (r.next + 1) % chartSamples
	r.n = min(r.n+1, chartSamples)
	r.prev, r.prevT = t, now
}

// quantileMS is the upper bound, in milliseconds, of the latency bucket
// that holds the q-quantile of d's observations (the last bound for the
// +Inf bucket), or 0 without observations.
func quantileMS(d *totals, q float64) float64 {
	if d.count == 0 {
		return 0
	}
	rank := q * float64(d.count)
	var cum uint64
	for i, b := range latencyBounds {
		cum += d.buckets[i]
		if float64(cum) >= rank {
			return b * 1000
		}
	}
	return latencyBounds[len(latencyBounds)-1] * 1000
}

// totals adds up every session's counters, closed ones included.
func (p *Proxy) totals() totals {
	p.sessMu.Lock()
	defer p.sessMu.Unlock()
	t := p.closed
	for s := range p.sessions {
		s.stats.addTo(&t)
	}
	return t
}
