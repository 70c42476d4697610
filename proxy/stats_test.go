package proxy

import (
	"testing"

	"redis-proxy/internal/redistest"
)

// The counters are counted in plain fields and published before the
// flush that carries their command or reply: whoever has seen a reply
// sees it counted, with no wait. Pipelined batches and errors included.
func TestCountersCountedByTheReply(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	base := p.Status()
	for i := 1; i <= 20; i++ {
		expect(t, c, "OK", "SET", "k", i)
		st := p.Status()
		if have := st.Counters.Commands - base.Counters.Commands; have != uint64(i) {
			t.Fatalf("after %d replies: %d commands counted", i, have)
		}
		if have := st.Latency.Count - base.Latency.Count; have != uint64(i) {
			t.Fatalf("after %d replies: %d latencies counted", i, have)
		}
	}
	cmds := [][]any{{"GET", "k"}, {"INCR", "nope", "x"}, {"LPUSH", "k", "v"}, {"GET", "k"}}
	if _, err := c.Pipeline(cmds...); err != nil {
		t.Fatal(err)
	}
	st := p.Status()
	if have := st.Counters.Commands - base.Counters.Commands; have != 24 {
		t.Errorf("after the pipeline: %d commands counted, want 24", have)
	}
	if have := st.Latency.Count - base.Latency.Count; have != 24 {
		t.Errorf("after the pipeline: %d latencies counted, want 24", have)
	}
	if have := st.Counters.Errors - base.Counters.Errors; have != 2 {
		t.Errorf("after the pipeline: %d errors counted, want 2 (INCR's arity, LPUSH's WRONGTYPE)", have)
	}
}

// Replies of one batch in different buckets: each run is published when
// the next begins, the count before the buckets; nothing is lost.
func TestStatPendingBuckets(t *testing.T) {
	var st sessionStats
	var p statPending
	lat := []int64{50_000, 60_000, 300_000, 300_000, 20e9, 70_000} // 50 µs, 300 µs, past the last bound
	for _, ns := range lat {
		p.observe(ns, &st)
		var inBuckets uint64
		for i := range st.buckets {
			inBuckets += st.buckets[i].Load()
		}
		if inBuckets > st.count.Load() {
			t.Fatalf("buckets hold %d, count %d", inBuckets, st.count.Load())
		}
	}
	p.errors = 3
	p.publishReplies(&st)
	if st.count.Load() != 6 || st.errors.Load() != 3 {
		t.Fatalf("count %d errors %d, want 6 and 3", st.count.Load(), st.errors.Load())
	}
	if have := st.buckets[0].Load(); have != 3 { // <= 100 µs
		t.Errorf("bucket 0: %d, want 3", have)
	}
	if have := st.buckets[2].Load(); have != 2 { // <= 500 µs
		t.Errorf("bucket 2: %d, want 2", have)
	}
	var sum uint64
	for i := range st.buckets {
		sum += st.buckets[i].Load()
	}
	if sum != 5 { // the 20 s reply is in +Inf: count - sum
		t.Errorf("buckets hold %d, want 5", sum)
	}
	if st.sumNs.Load() != uint64(50_000+60_000+300_000+300_000+20e9+70_000) {
		t.Errorf("sum %d", st.sumNs.Load())
	}
}
