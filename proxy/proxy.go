// Package proxy is redis-proxy's core: the managed RESP listener with one
// session (a goroutine pair) per client, each with its own uplink
// connection; the raw relay; and the one state machine behind pause,
// unpause and reload (CONTRACT.md §3 and §4).
//
// It imports resp and config, and nothing above it.
package proxy

import (
	"context"
	"log/slog"

	"redis-proxy/config"
)

// Options are what New needs besides the configuration.
type Options struct {
	// Logger receives every log line; nil discards.
	Logger *slog.Logger
	// Version is shown in Status.
	Version string
	// LoadConfig reads the configuration again for a reload (the file
	// named by -f). Reload fails with a ConfigError when it is nil.
	LoadConfig func() (*config.Config, error)
}

// Proxy is the running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	// filled in by the data-path work
}

// New prepares a proxy for cfg (already validated); it opens nothing.
func New(cfg *config.Config, opts Options) (*Proxy, error) { panic("todo") }

// Start opens the listeners and starts serving. The uplink may be down.
func (p *Proxy) Start() error { panic("todo") }

// Shutdown stops accepting, lets commands in flight finish (bounded by ctx
// and read_time_limit_ms), closes every connection and returns.
func (p *Proxy) Shutdown(ctx context.Context) error { panic("todo") }

// Pause stops forwarding new commands and returns once every command in
// flight has finished (state paused).
func (p *Proxy) Pause(ctx context.Context) error { panic("todo") }

// PauseAsync starts a pause and returns at once.
func (p *Proxy) PauseAsync() error { panic("todo") }

// Unpause lets waiting commands go on, in order.
func (p *Proxy) Unpause() error { panic("todo") }

// Reload reads the configuration again, proves it, pauses, switches every
// client to the new uplink and resumes. It returns once done or refused.
func (p *Proxy) Reload(ctx context.Context) error { panic("todo") }

// ReloadAsync starts a reload and returns at once.
func (p *Proxy) ReloadAsync() error { panic("todo") }

// TerminateRawConnections closes every raw relay connection and reports
// how many there were.
func (p *Proxy) TerminateRawConnections() int { panic("todo") }

// Status returns a snapshot for the admin API.
func (p *Proxy) Status() Status { panic("todo") }

// Config returns the configuration in force (not sanitized; do not modify).
func (p *Proxy) Config() *config.Config { panic("todo") }

// Prove checks that cfg's uplink works: dial (TCP or TLS), AUTH, PING,
// within ctx. It is the proof used by -t and by reload.
func Prove(ctx context.Context, cfg *config.Config) error { panic("todo") }
