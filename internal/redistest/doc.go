// Package redistest drives real redis-server processes for integration tests
// and for the switchtest program, and carries a small RESP2/RESP3 client of
// its own.
//
// The client is deliberately independent of the project's resp package: it
// is the oracle the proxy is checked against, so it must not share the
// proxy's bugs. It parses every reply type Redis sends (+ - : $ * _ , # ! =
// ( % ~ > and | attributes) strictly, and renders values the way redis-cli
// does.
//
// Servers are started with their own loopback port, their own directory and
// no persistence; readiness is the "Ready to accept connections" line on the
// server's output, never a sleep. internal/proc starts them, each in a
// process group of its own, and signals only the process a Server started,
// always by its PID.
//
// In tests, Start and MustDial tie everything to the test's cleanup. When
// redis-server is missing, Start skips the test, except when the environment
// variable CI is "true": there a missing redis-server is a failure, so that a
// broken CI image cannot turn the integration tests into silent skips.
//
// Of the project's own packages it imports only internal/proc.
package redistest
