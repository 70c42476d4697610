package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
	"redis-proxy/proxy"
)

// startAdminProxy starts a proxy in front of upAddr with its admin API
// (Basic auth admin/secret) and returns it with the admin base URL.
func startAdminProxy(t *testing.T, upAddr string, peers ...string) (*proxy.Proxy, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Uplink.Addr = upAddr
	cfg.Listen.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Admin.User, cfg.Admin.Pass = "admin", "secret"
	cfg.Switch.Peers = peers
	return startProxy(t, cfg)
}

// startProxy starts a proxy with cfg (listen and admin addresses
// 127.0.0.1:0) and its admin server, and returns it with the admin base URL.
func startProxy(t *testing.T, cfg *config.Config) (*proxy.Proxy, string) {
	t.Helper()
	return startProxyWith(t, cfg, proxy.Options{})
}

// startProxyWith is startProxy with Options.
func startProxyWith(t *testing.T, cfg *config.Config, opts proxy.Options) (*proxy.Proxy, string) {
	t.Helper()
	cfg.Listen.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
	p, err := proxy.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	s := NewServer(p, nil)
	if err := s.Start("127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return p, "http://" + s.Addr().String()
}

// post sends a /cmd/ form with the admin credentials and decodes the reply.
func postCmd(t *testing.T, base string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/cmd/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", "secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	m := map[string]any{}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, m
}

var reportKeys = []string{"ok", "error", "rolled_back", "from", "to", "paused_ms", "phases", "state", "phase"}

// TestSwitchCommands: cmd=switch, switch-async and retarget through the
// admin API of a coordinator with two peers (admin credentials passed
// on), with their status codes and the report's keys.
func TestSwitchCommands(t *testing.T) {
	args := []string{"--repl-diskless-sync-delay", "0"}
	a, b, c := redistest.Start(t, args...), redistest.Start(t, args...), redistest.Start(t, args...)
	p1, u1 := startAdminProxy(t, a.Addr)
	p2, u2 := startAdminProxy(t, a.Addr)
	p, base := startAdminProxy(t, a.Addr, u1, u2)
	nobody, err := redistest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		form url.Values
		code int
		text string
	}{
		{url.Values{"cmd": {"switch"}}, 400, "missing to"},
		{url.Values{"cmd": {"switch"}, "to": {"nohost"}}, 400, "HOST:PORT"},
		{url.Values{"cmd": {"switch"}, "to": {nobody}}, 400, "refused"},
		{url.Values{"cmd": {"switch"}, "to": {b.Addr}}, 400, "attach=yes"},
		{url.Values{"cmd": {"switch"}, "to": {b.Addr}, "attach": {"maybe"}}, 400, "want yes or no"},
	} {
		code, m := postCmd(t, base, tc.form)
		e, _ := m["error"].(string)
		if code != tc.code || m["ok"] != false || !strings.Contains(e, tc.text) {
			t.Errorf("%v: %d %v; want %d with %q", tc.form, code, m, tc.code, tc.text)
		}
		if tc.form.Get("attach") == "" {
			for _, k := range reportKeys {
				if _, ok := m[k]; !ok {
					t.Errorf("%v: no key %q in %v", tc.form, k, m)
				}
			}
		}
	}
	if code, m := postCmd(t, base, url.Values{"cmd": {"retarget"}, "to": {nobody}}); code != 400 || m["ok"] != false {
		t.Errorf("retarget to nobody: %d %v", code, m)
	}

	code, m := postCmd(t, base, url.Values{"cmd": {"switch"}, "to": {b.Addr}, "attach": {"yes"}})
	if code != 200 || m["ok"] != true || m["error"] != "" || m["rolled_back"] != false || m["to"] != b.Addr || m["from"] != a.Addr {
		t.Fatalf("switch: %d %v", code, m)
	}
	if phases, _ := m["phases"].([]any); len(phases) != 10 {
		t.Errorf("phases: %v", m["phases"])
	}
	for i, q := range []*proxy.Proxy{p, p1, p2} {
		if st := q.Status(); st.Uplink.Addr != b.Addr || st.State != proxy.StateRunning {
			t.Errorf("proxy %d after the switch: %s %s", i, st.Uplink.Addr, st.State)
		}
	}

	// switch-async: at once; the outcome in /info.json.
	if code, m := postCmd(t, base, url.Values{"cmd": {"switch-async"}, "to": {c.Addr}, "attach": {"yes"}}); code != 200 || m["ok"] != true {
		t.Fatalf("switch-async: %d %v", code, m)
	}
	deadline := time.Now().Add(20 * time.Second)
	for p.Status().Switch.State == "running" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if sw := p.Status().Switch; sw.State != "done" || !sw.OK || sw.To != c.Addr || p2.Status().Uplink.Addr != c.Addr {
		t.Errorf("after switch-async: %+v", sw)
	}
	if n := p.Status().Counters.Switches; n != 2 {
		t.Errorf("counters.switches %d", n)
	}

	// retarget: only the clients move.
	if code, m := postCmd(t, u1, url.Values{"cmd": {"retarget"}, "to": {b.Addr}}); code != 200 || m["ok"] != true || p1.Status().Uplink.Addr != b.Addr {
		t.Errorf("retarget: %d %v", code, m)
	}
}
