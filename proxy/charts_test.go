package proxy

import (
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

func TestQuantileMS(t *testing.T) {
	var d totals
	if have := quantileMS(&d, 0.5); have != 0 {
		t.Errorf("no observations: %v", have)
	}
	// 90 commands <= 0.1 ms, 9 <= 1 ms, 1 above 10 s.
	d.buckets[0], d.buckets[3], d.count = 90, 9, 100
	for _, tc := range []struct{ q, want float64 }{{0.5, 0.1}, {0.9, 0.1}, {0.95, 1}, {0.99, 1}, {1, 10000}} {
		if have := quantileMS(&d, tc.q); have != tc.want {
			t.Errorf("q %v: have %v ms, want %v", tc.q, have, tc.want)
		}
	}
}

// TestChartRing: samples are rates over the time since the last one, and
// the ring keeps the last chartSamples, oldest first.
func TestChartRing(t *testing.T) {
	p := &Proxy{}
	r := &p.charts
	start := time.Now()
	r.prevT = start
	var tot totals
	for i := 1; i <= chartSamples+50; i++ {
		tot.commands += uint64(2 * i) // 2i commands in the i-th half second
		tot.count += uint64(2 * i)
		tot.buckets[4] += uint64(2 * i) // all <= 2.5 ms
		r.sample(tot, start.Add(time.Duration(i)*500*time.Millisecond))
	}
	c := p.Charts()
	if len(c.CommandsPerS) != chartSamples || len(c.P50MS) != chartSamples || len(c.P99MS) != chartSamples {
		t.Fatalf("lengths %d %d %d", len(c.CommandsPerS), len(c.P50MS), len(c.P99MS))
	}
	if first, last := c.CommandsPerS[0], c.CommandsPerS[chartSamples-1]; first != 4*51 || last != 4*(chartSamples+50) {
		t.Errorf("oldest %v, newest %v commands/s", first, last)
	}
	if c.P50MS[0] != 2.5 || c.P99MS[chartSamples-1] != 2.5 || c.IntervalS != 1 {
		t.Errorf("p50 %v p99 %v interval %v", c.P50MS[0], c.P99MS[chartSamples-1], c.IntervalS)
	}
}

// TestCharts: commands through a running proxy show in the samples.
func TestCharts(t *testing.T) {
	srv := redistest.Start(t)
	p, err := New(testConfig(srv.Addr), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.charts.every = 20 * time.Millisecond
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relShutdown(t, p) })
	if c := p.Charts(); c.IntervalS != 0.02 || c.CommandsPerS == nil {
		t.Errorf("before any sample: %+v", c)
	}
	c := dial(t, p)
	waitFor(t, "a sample with commands", func() bool {
		expect(t, c, "PONG", "PING")
		ch := p.Charts()
		for i, v := range ch.CommandsPerS {
			if v > 0 && ch.P50MS[i] > 0 && ch.P99MS[i] >= ch.P50MS[i] {
				return true
			}
		}
		return false
	})
	relShutdown(t, p)
	n := len(p.Charts().CommandsPerS)
	time.Sleep(60 * time.Millisecond)
	if m := len(p.Charts().CommandsPerS); m != n {
		t.Errorf("sampling goes on after Shutdown: %d -> %d", n, m)
	}
}
