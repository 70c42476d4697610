package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

// testConfig is a configuration for a proxy in front of upAddr, listening
// on a free loopback port.
func testConfig(upAddr string) *config.Config {
	return &config.Config{
		Uplink:          config.Uplink{Addr: upAddr},
		Listen:          config.Listen{Addr: "127.0.0.1:0"},
		Admin:           config.Admin{Addr: "127.0.0.1:0"},
		ReadTimeLimitMS: 5000,
		MaxClients:      10000,
	}
}

// startProxy starts a proxy for cfg and stops it at cleanup.
func startProxy(tb testing.TB, cfg *config.Config, opts ...func(*Options)) *Proxy {
	tb.Helper()
	var o Options
	for _, f := range opts {
		f(&o)
	}
	p, err := New(cfg, o)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if err := p.Start(); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
	})
	return p
}

// dial connects a test client to the proxy.
func dial(tb testing.TB, p *Proxy) *redistest.Client {
	tb.Helper()
	return redistest.MustDial(tb, p.Addr().String())
}

// do sends one command and returns the reply rendered as redis-cli does.
func do(tb testing.TB, c *redistest.Client, args ...any) string {
	tb.Helper()
	v, err := c.Do(args...)
	if err != nil {
		tb.Fatalf("%v: %v", args, err)
	}
	return v.String()
}

// expect checks one command's rendered reply.
func expect(tb testing.TB, c *redistest.Client, want string, args ...any) {
	tb.Helper()
	if have := do(tb, c, args...); have != want {
		tb.Fatalf("%v: have %q, want %q", args, have, want)
	}
}

// expectPrefix checks that one command's rendered reply starts with want.
func expectPrefix(tb testing.TB, c *redistest.Client, want string, args ...any) {
	tb.Helper()
	if have := do(tb, c, args...); !strings.HasPrefix(have, want) {
		tb.Fatalf("%v: have %q, want prefix %q", args, have, want)
	}
}
