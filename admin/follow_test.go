package admin

import (
	"strings"
	"testing"

	"redis-proxy/config"
	"redis-proxy/proxy"
)

// TestReadyzTwoMasters: while the proxy cannot follow (two servers report
// role master), /readyz is 503 and says why, even with a passing check.
func TestReadyzTwoMasters(t *testing.T) {
	cfg := config.Default()
	cfg.Uplink.CheckIntervalMS = 1000
	st := proxy.Status{State: proxy.StateRunning, Config: cfg,
		Uplink: proxy.UplinkInfo{Health: proxy.Health{OK: true, Role: "master", LastCheck: "2026-01-01T00:00:00Z"}}}
	if have := notReady(st); have != "" {
		t.Fatalf("healthy: %q", have)
	}
	st.Follow.Error = "more than one server reports role master: a:1, b:2; the proxy does not move"
	if have := notReady(st); !strings.HasPrefix(have, "failover: more than one server reports role master") {
		t.Errorf("two masters: %q", have)
	}
}
