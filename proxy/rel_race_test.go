//go:build race

package proxy

// relRace: the race detector is on. It allows at most 8,128 goroutines
// alive at once, and slows everything down, so the load tests scale down.
const relRace = true
