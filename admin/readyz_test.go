package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
	"redis-proxy/proxy"
)

// startRealProxy starts a proxy in front of addr with health checks every
// interval, and the admin handler over it.
func startRealProxy(t *testing.T, addr string, interval time.Duration) (*proxy.Proxy, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Uplink.Addr = addr
	cfg.Uplink.CheckIntervalMS = int(interval / time.Millisecond)
	return startProxy(t, cfg)
}

func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitReadyz polls /readyz until it answers code, and returns how long
// that took and the body.
func waitReadyz(t *testing.T, base string, code int, within time.Duration) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	for {
		have, body := getText(t, base+"/readyz")
		if have == code {
			return time.Since(start), body
		}
		if time.Since(start) > within {
			t.Fatalf("/readyz: still %d %q after %v, want %d", have, body, within, code)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadyzFollowsUplink: /readyz turns 503 within two check intervals of
// the uplink dying, and 200 again once it is back.
func TestReadyzFollowsUplink(t *testing.T) {
	const interval = 200 * time.Millisecond
	srv := redistest.Start(t)
	_, base := startRealProxy(t, srv.Addr, interval)
	waitReadyz(t, base, 200, 5*time.Second)

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	took, body := waitReadyz(t, base, 503, 5*time.Second)
	if took > 2*interval {
		t.Errorf("/readyz turned 503 %v after the uplink died; want within two check intervals (%v)", took, 2*interval)
	}
	if !strings.HasPrefix(body, "uplink health check failed: ") {
		t.Errorf("/readyz body: %q", body)
	}
	// Liveness is not readiness: the proxy itself is fine.
	if code, _ := getText(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz with the uplink down: %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	took, body = waitReadyz(t, base, 200, 5*time.Second)
	if took > 2*interval || body != "ok\n" {
		t.Errorf("/readyz: %q %v after the restart; want ok within %v", body, took, 2*interval)
	}
	if code, _ := getText(t, base+"/metrics"); code != 200 {
		t.Errorf("/metrics: %d", code)
	}
}

// TestReadyzReplica: a proxy in front of a replica is alive, not ready.
func TestReadyzReplica(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.Start(t)
	host, port, _ := strings.Cut(primary.Addr, ":")
	if v, err := replica.Client(t).Do("REPLICAOF", host, port); err != nil || v.String() != "OK" {
		t.Fatal(v, err)
	}
	_, base := startRealProxy(t, replica.Addr, 50*time.Millisecond)
	if _, body := waitReadyz(t, base, 503, 5*time.Second); body != "uplink role is slave\n" && body != "no health check yet\n" {
		t.Errorf("/readyz: %q", body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := getText(t, base+"/readyz")
		if code == 503 && body == "uplink role is slave\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: have %d %q, want 503 uplink role is slave", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, metrics := getText(t, base+"/metrics")
	for _, want := range []string{`redis_proxy_uplink_role{role="slave"} 1`, `redis_proxy_uplink_role{role="master"} 0`, "redis_proxy_uplink_up 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestClientsJSONWithProxy: /clients.json over a real proxy lists its
// clients with what they set.
func TestClientsJSONWithProxy(t *testing.T) {
	srv := redistest.Start(t)
	p, base := startRealProxy(t, srv.Addr, 0)
	c := redistest.MustDial(t, p.Addr().String())
	for _, cmd := range [][]any{{"CLIENT", "SETNAME", "worker-7"}, {"SELECT", "4"}} {
		if v, err := c.Do(cmd...); err != nil || v.String() != "OK" {
			t.Fatal(cmd, v, err)
		}
	}
	res, err := http.Get(base + "/clients.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var cs []proxy.ClientInfo
	if err := json.NewDecoder(res.Body).Decode(&cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Name != "worker-7" || cs[0].DB != 4 || cs[0].Addr != c.Conn().LocalAddr().String() || cs[0].Flags == nil {
		t.Errorf("/clients.json: %+v", cs)
	}
}
