package proxy

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Memory back to the system after a burst. Serving commands allocates
// nothing; what allocates is a burst of work that is then over: thousands
// of clients connecting (and dialing their uplink connections) at once,
// each holding pooled buffers for a moment. Once the burst is over the
// sessions are idle and hold next to nothing (park.go), but the process
// keeps the peak: the buffers wait in their pools, and the Go runtime
// gives freed memory back to the system only slowly. So a trimmer looks
// twice a second: when more than trimAfter bytes were allocated since it
// last trimmed, and almost nothing in the last half second, the burst is
// over, and it collects twice (pooled buffers survive one collection) and
// returns what is free. It does the same half a second after the sweeper
// (park.go) has parked many sides, whose goroutine stacks are then free.
// Under steady load (no allocations) it does nothing; after a burst it
// costs two collections.

const (
	trimEvery = 500 * time.Millisecond
	trimAfter = 8 << 20 // bytes allocated since the last trim
	trimQuiet = 1 << 20 // at most this much in the last interval
)

var (
	trimOnce sync.Once
	trimKick atomic.Int64 // sides the sweeper asked to park since the last look
)

// trimKicks is how many parked sides are worth a trim.
const trimKicks = 64

func startTrimmer() {
	trimOnce.Do(func() { go trimLoop() })
}

func trimLoop() {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	allocs := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	last := allocs()
	prev := last
	kicked := false
	for range time.Tick(trimEvery) {
		now := allocs()
		parked := kicked // asked a tick ago: parked by now
		kicked = trimKick.Swap(0) >= trimKicks
		if parked || now-last > trimAfter && now-prev < trimQuiet {
			runtime.GC()
			debug.FreeOSMemory()
			now = allocs()
			last = now
		}
		prev = now
	}
}
