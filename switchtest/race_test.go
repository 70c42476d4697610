//go:build race

package main

// raceEnabled: the tests run with -race, so the proxy they build and drive
// is built with it too.
const raceEnabled = true
