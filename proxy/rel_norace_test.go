//go:build !race

package proxy

const relRace = false
