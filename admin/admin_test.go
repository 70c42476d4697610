package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"redis-proxy/config"
	"redis-proxy/proxy"
)

// fake is a Controller that records calls, returns programmed errors and
// moves its state on pause and unpause.
type fake struct {
	mu     sync.Mutex
	st     proxy.Status
	cfg    *config.Config
	errs   map[string]error // by cmd name
	calls  []string
	closed int
	ctx    context.Context // of the last Pause or Reload
	block  bool            // Pause and Reload wait for their context
	cls    []proxy.ClientInfo
	charts proxy.Charts
}

func newFake() *fake {
	cfg := config.Default()
	cfg.Uplink.Addr = "127.0.0.1:6379"
	cfg.Listen.Addr = "127.0.0.1:7010"
	cfg.Admin.Addr = "127.0.0.1:7012"
	return &fake{
		cfg:  cfg,
		errs: map[string]error{},
		st: proxy.Status{
			State:   proxy.StateRunning,
			Version: "v1.2.3-test",
			UptimeS: 3725,
			Uplink: proxy.UplinkInfo{Addr: cfg.Uplink.Addr, Health: proxy.Health{OK: true, Role: "master",
				LastCheck: "2026-01-02T03:04:05Z", MasterReplOffset: 42, LatencyMS: 0.3}},
			Listen:  cfg.Listen.Addr,
			Clients: 3, ActiveRequests: 2, WaitingRequests: 1, RawConnections: 4,
			Counters: proxy.Counters{Commands: 1234, Errors: 5, Pauses: 2, Reloads: 1, ReloadsFailed: 1,
				LastPauseMS: 1.5, LastReloadMS: 42, PausedSeconds: 3.25},
			Config: cfg.Sanitized(),
			Latency: proxy.Histogram{Bounds: []float64{0.001, 0.01, 0.1}, Counts: []uint64{10, 20, 30},
				Count: 31, Sum: 0.5},
		},
	}
}

func (f *fake) Status() proxy.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fake) Config() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *fake) setState(s proxy.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.State = s
}

func (f *fake) setConfig(cfg *config.Config) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
}

func (f *fake) call(name string, ctx context.Context) error {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	err, block := f.errs[name], f.block
	if ctx != nil {
		f.ctx = ctx
	}
	f.mu.Unlock()
	if block && ctx != nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fake) Pause(ctx context.Context) error {
	err := f.call("pause", ctx)
	if err == nil {
		f.setState(proxy.StatePaused)
	}
	return err
}

func (f *fake) PauseAsync() error {
	err := f.call("pause-async", nil)
	if err == nil {
		f.setState(proxy.StatePaused)
	}
	return err
}

func (f *fake) Unpause() error {
	err := f.call("unpause", nil)
	if err == nil {
		f.setState(proxy.StateRunning)
	}
	return err
}

func (f *fake) Reload(ctx context.Context) error { return f.call("reload", ctx) }
func (f *fake) ReloadAsync() error               { return f.call("reload-async", nil) }

func (f *fake) Switch(ctx context.Context, to string, attach bool) (proxy.SwitchReport, error) {
	err := f.call("switch", ctx)
	rep := proxy.SwitchReport{State: "done", OK: err == nil, From: f.cfg.Uplink.Addr, To: to, Phases: []proxy.Phase{}}
	if err != nil {
		rep.State, rep.Error = "failed", err.Error()
	}
	return rep, err
}
func (f *fake) SwitchAsync(to string, attach bool) error { return f.call("switch-async", nil) }
func (f *fake) Retarget(ctx context.Context, to string) error {
	return f.call("retarget", ctx)
}

func (f *fake) Clients() []proxy.ClientInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cls)
}

func (f *fake) Charts() proxy.Charts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.charts
}

func (f *fake) TerminateRawConnections() int {
	f.call("terminate-raw-connections", nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// request is one request to the handler; Host is "admin.test".
type request struct {
	method, path, body string
	header             map[string]string
}

func serve(t testing.TB, h http.Handler, rq request) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(rq.method, "http://admin.test"+rq.path, strings.NewReader(rq.body))
	if rq.body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func post(cmd string) request {
	return request{method: "POST", path: "/cmd/", body: url.Values{"cmd": {cmd}}.Encode()}
}

// decodeReply checks that w holds a /cmd/-style JSON reply and returns it.
func decodeReply(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: have %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", w.Body, err)
	}
	if _, ok := m["ok"].(bool); !ok {
		t.Errorf("body %s: no boolean ok", w.Body)
	}
	return m
}

func TestRoutes(t *testing.T) {
	h := Handler(newFake(), nil)
	for _, tc := range []struct {
		method, path string
		code         int
		ctype        string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/info.json", 200, "application/json"},
		{"GET", "/metrics", 200, "text/plain; version=0.0.4; charset=utf-8"},
		{"GET", "/healthz", 200, "text/plain; charset=utf-8"},
		{"GET", "/readyz", 200, "text/plain; charset=utf-8"},
		{"GET", "/clients.json", 200, "application/json"},
		{"GET", "/debug/pprof/", 200, "text/html; charset=utf-8"},
		{"GET", "/debug/pprof/cmdline", 200, "text/plain; charset=utf-8"},
		{"GET", "/debug/pprof/goroutine?debug=1", 200, "text/plain; charset=utf-8"},
		{"GET", "/index.html", 404, ""},
		{"GET", "/info", 404, ""},
		{"GET", "/cmd/pause", 404, ""},
		{"POST", "/", 405, ""},
		{"POST", "/info.json", 405, ""},
		{"GET", "/cmd/", 405, "application/json"},
		{"GET", "/cmd", 405, "application/json"},
		{"PUT", "/cmd/", 405, "application/json"},
		{"DELETE", "/cmd/", 405, "application/json"},
		{"OPTIONS", "/cmd/", 405, "application/json"},
	} {
		w := serve(t, h, request{method: tc.method, path: tc.path})
		if w.Code != tc.code {
			t.Errorf("%s %s: have %d, want %d (%s)", tc.method, tc.path, w.Code, tc.code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); tc.ctype != "" && ct != tc.ctype {
			t.Errorf("%s %s: Content-Type: have %q, want %q", tc.method, tc.path, ct, tc.ctype)
		}
		if tc.code == 405 && strings.HasPrefix(tc.path, "/cmd") {
			if allow := w.Header().Get("Allow"); allow != "POST" {
				t.Errorf("%s %s: Allow: have %q, want POST", tc.method, tc.path, allow)
			}
			if m := decodeReply(t, w); m["ok"] != false || m["error"] == "" {
				t.Errorf("%s %s: body %s", tc.method, tc.path, w.Body)
			}
		}
		// Headers on every response, whatever it is.
		if v := w.Header().Get("X-Content-Type-Options"); v != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options: have %q", tc.method, tc.path, v)
		}
		if v := w.Header().Get("Cache-Control"); v != "no-store" {
			t.Errorf("%s %s: Cache-Control: have %q", tc.method, tc.path, v)
		}
	}
}

func TestCmd(t *testing.T) {
	valid := "valid: pause, pause-async, unpause, reload, reload-async, terminate-raw-connections"
	for _, tc := range []struct {
		name    string
		rq      request
		err     error // returned by the controller
		code    int
		calls   []string
		errText string // substring of "error"
	}{
		{"pause", post("pause"), nil, 200, []string{"pause"}, ""},
		{"pause-async", post("pause-async"), nil, 200, []string{"pause-async"}, ""},
		{"unpause", post("unpause"), nil, 200, []string{"unpause"}, ""},
		{"reload", post("reload"), nil, 200, []string{"reload"}, ""},
		{"reload-async", post("reload-async"), nil, 200, []string{"reload-async"}, ""},
		{"no slash", request{method: "POST", path: "/cmd", body: "cmd=unpause"}, nil, 200, []string{"unpause"}, ""},
		{"query", request{method: "POST", path: "/cmd/?cmd=unpause"}, nil, 200, []string{"unpause"}, ""},
		{"missing", request{method: "POST", path: "/cmd/"}, nil, 400, nil, "missing cmd; " + valid},
		{"empty", post(""), nil, 400, nil, `unknown cmd ""; ` + valid},
		{"unknown", post("flushall"), nil, 400, nil, `unknown cmd "flushall"; ` + valid},
		{"case", post("PAUSE"), nil, 400, nil, "unknown cmd"},
		{"twice", request{method: "POST", path: "/cmd/?cmd=pause", body: "cmd=unpause"}, nil, 400, nil, "more than once"},
		{"bad form", request{method: "POST", path: "/cmd/", body: "cmd=%zz"}, nil, 400, nil, "bad form"},
		{"too big", request{method: "POST", path: "/cmd/", body: "cmd=pause&x=" + strings.Repeat("a", maxCmdBody)}, nil, 400, nil, "too large"},
		{"config error", post("reload"), fmt.Errorf("reload: %w", &proxy.ConfigError{Err: errors.New("uplink.addr: required")}), 400, []string{"reload"}, "reload: uplink.addr: required"},
		{"async config error", post("reload-async"), &proxy.ConfigError{Err: errors.New("bad json")}, 400, []string{"reload-async"}, "bad json"},
		{"state", post("unpause"), fmt.Errorf("unpause while running: %w", proxy.ErrState), 409, []string{"unpause"}, "unpause while running: not possible in this state"},
		{"state pause", post("pause"), proxy.ErrState, 409, []string{"pause"}, "not possible"},
		{"other", post("reload"), errors.New("uplink 10.0.0.2:6379: connection refused"), 500, []string{"reload"}, "connection refused"},
		{"other pause", post("pause"), context.DeadlineExceeded, 500, []string{"pause"}, "deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			for _, c := range commands {
				f.errs[c] = tc.err
			}
			w := serve(t, Handler(f, nil), tc.rq)
			if w.Code != tc.code {
				t.Errorf("code: have %d, want %d (%s)", w.Code, tc.code, w.Body)
			}
			m := decodeReply(t, w)
			if ok := m["ok"] == true; ok != (tc.code == 200) {
				t.Errorf("ok: have %v with code %d", m["ok"], w.Code)
			}
			if e, _ := m["error"].(string); !strings.Contains(e, tc.errText) || (tc.errText == "") != (e == "") {
				t.Errorf("error: have %q, want it to contain %q", e, tc.errText)
			}
			if have := f.Calls(); !slices.Equal(have, tc.calls) {
				t.Errorf("calls: have %q, want %q", have, tc.calls)
			}
		})
	}
}

func TestCmdTerminateRaw(t *testing.T) {
	f := newFake()
	f.closed = 7
	w := serve(t, Handler(f, nil), post("terminate-raw-connections"))
	if w.Code != 200 || w.Body.String() != `{"ok":true,"closed":7}`+"\n" {
		t.Errorf("have %d %q", w.Code, w.Body)
	}
	f.closed = 0
	w = serve(t, Handler(f, nil), post("terminate-raw-connections"))
	if w.Code != 200 || w.Body.String() != `{"ok":true,"closed":0}`+"\n" {
		t.Errorf("have %d %q", w.Code, w.Body)
	}
}

func TestCmdMultipart(t *testing.T) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("cmd", "unpause")
	mw.Close()
	f := newFake()
	r := httptest.NewRequest("POST", "http://admin.test/cmd/", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	Handler(f, nil).ServeHTTP(w, r)
	if w.Code != 200 || !slices.Equal(f.Calls(), []string{"unpause"}) {
		t.Errorf("have %d %s, calls %q", w.Code, w.Body, f.Calls())
	}
}

// TestCmdContext checks that pause and reload run with the request's
// context: a client that goes away cancels them.
func TestCmdContext(t *testing.T) {
	for _, cmd := range []string{"pause", "reload"} {
		f := newFake()
		f.block = true
		ctx, cancel := context.WithCancel(context.Background())
		r := httptest.NewRequestWithContext(ctx, "POST", "http://admin.test/cmd/", strings.NewReader("cmd="+cmd))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			Handler(f, nil).ServeHTTP(w, r)
		}()
		cancel()
		<-done
		if w.Code != 500 || !strings.Contains(w.Body.String(), "context canceled") {
			t.Errorf("%s: have %d %s", cmd, w.Code, w.Body)
		}
	}
}

func TestCrossSite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header map[string]string
		code   int
	}{
		{"curl", nil, 200},
		{"same origin", map[string]string{"Origin": "http://admin.test"}, 200},
		{"same origin https", map[string]string{"Origin": "https://ADMIN.test"}, 200},
		{"other origin", map[string]string{"Origin": "http://evil.example"}, 403},
		{"other port", map[string]string{"Origin": "http://admin.test:8080"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"bad origin", map[string]string{"Origin": "::"}, 403},
		{"same referer", map[string]string{"Referer": "http://admin.test/"}, 200},
		{"other referer", map[string]string{"Referer": "http://evil.example/admin.test"}, 403},
		{"userinfo referer", map[string]string{"Referer": "http://admin.test@evil.example/"}, 403},
		{"origin wins over referer", map[string]string{"Origin": "http://admin.test", "Referer": "http://x/"}, 200},
		{"other origin same referer", map[string]string{"Origin": "http://evil.example", "Referer": "http://admin.test/"}, 403},
		{"fetch same-origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://admin.test"}, 200},
		{"fetch none", map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"fetch cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"fetch cross-site same origin", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://admin.test"}, 403},
		{"fetch same-site", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			rq := post("unpause")
			rq.header = tc.header
			w := serve(t, Handler(f, nil), rq)
			if w.Code != tc.code {
				t.Fatalf("have %d, want %d (%s)", w.Code, tc.code, w.Body)
			}
			m := decodeReply(t, w)
			if tc.code == 403 {
				if m["ok"] != false || !strings.Contains(m["error"].(string), "cross-site") {
					t.Errorf("body %s", w.Body)
				}
				if len(f.Calls()) != 0 {
					t.Errorf("calls: have %q, want none", f.Calls())
				}
			}
		})
	}
	// A cross-site GET of the page is a navigation, and harmless.
	w := serve(t, Handler(newFake(), nil), request{method: "GET", path: "/", header: map[string]string{"Sec-Fetch-Site": "cross-site"}})
	if w.Code != 200 {
		t.Errorf("cross-site GET /: have %d", w.Code)
	}
}

func TestAuth(t *testing.T) {
	f := newFake()
	cfg := f.Config().Clone()
	cfg.Admin.User, cfg.Admin.Pass = "ops", "s3cret"
	f.setConfig(cfg)
	h := Handler(f, nil)
	basic := func(user, pass string) map[string]string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return map[string]string{"Authorization": r.Header.Get("Authorization")}
	}
	paths := []request{
		{method: "GET", path: "/"}, {method: "GET", path: "/info.json"}, {method: "GET", path: "/metrics"},
		{method: "GET", path: "/debug/pprof/"}, {method: "GET", path: "/nope"}, {method: "GET", path: "/cmd/"},
		post("pause"), {method: "GET", path: "/readyz"}, {method: "GET", path: "/clients.json"},
	}
	for _, creds := range []map[string]string{
		nil, basic("ops", "wrong"), basic("root", "s3cret"), basic("", "s3cret"), basic("ops", ""),
		basic("ops", "s3cret2"), {"Authorization": "Bearer s3cret"}, {"Authorization": "Basic !!!"},
	} {
		for _, rq := range paths {
			rq.header = creds
			w := serve(t, h, rq)
			if w.Code != 401 {
				t.Errorf("%s %s with %q: have %d, want 401", rq.method, rq.path, creds, w.Code)
				continue
			}
			if v := w.Header().Get("WWW-Authenticate"); v != `Basic realm="redis-proxy", charset="UTF-8"` {
				t.Errorf("WWW-Authenticate: have %q", v)
			}
			decodeReply(t, w)
		}
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("unauthenticated calls went through: %q", calls)
	}
	wantCodes := []int{200, 200, 200, 200, 404, 405, 200, 200, 200}
	for i, rq := range paths {
		rq.header = basic("ops", "s3cret")
		if w := serve(t, h, rq); w.Code != wantCodes[i] {
			t.Errorf("%s %s authenticated: have %d, want %d", rq.method, rq.path, w.Code, wantCodes[i])
		}
	}
	// /healthz never needs auth.
	if w := serve(t, h, request{method: "GET", path: "/healthz"}); w.Code != 200 {
		t.Errorf("/healthz without auth: have %d", w.Code)
	}

	// A reload changes the password: it applies at the next request.
	cfg = cfg.Clone()
	cfg.Admin.Pass = "n3w"
	f.setConfig(cfg)
	if w := serve(t, h, request{method: "GET", path: "/info.json", header: basic("ops", "s3cret")}); w.Code != 401 {
		t.Errorf("old password after reload: have %d, want 401", w.Code)
	}
	if w := serve(t, h, request{method: "GET", path: "/info.json", header: basic("ops", "n3w")}); w.Code != 200 {
		t.Errorf("new password after reload: have %d, want 200", w.Code)
	}

	// Without admin.user any user name goes with the password.
	cfg = cfg.Clone()
	cfg.Admin.User = ""
	f.setConfig(cfg)
	for _, user := range []string{"", "anyone"} {
		if w := serve(t, h, request{method: "GET", path: "/", header: basic(user, "n3w")}); w.Code != 200 {
			t.Errorf("user %q, no admin.user: have %d, want 200", user, w.Code)
		}
	}
	if w := serve(t, h, request{method: "GET", path: "/", header: basic("", "nope")}); w.Code != 401 {
		t.Errorf("wrong password, no admin.user: have %d, want 401", w.Code)
	}

	// Without admin.pass there is no auth at all.
	cfg = cfg.Clone()
	cfg.Admin.Pass = ""
	f.setConfig(cfg)
	if w := serve(t, h, request{method: "GET", path: "/"}); w.Code != 200 {
		t.Errorf("no admin.pass: have %d, want 200", w.Code)
	}
	// No configuration at all: closed.
	f.setConfig(nil)
	if w := serve(t, h, request{method: "GET", path: "/"}); w.Code != 500 {
		t.Errorf("nil config: have %d, want 500", w.Code)
	}
}

func TestHealthz(t *testing.T) {
	f := newFake()
	h := Handler(f, nil)
	for _, s := range proxy.AllStates {
		f.setState(s)
		w := serve(t, h, request{method: "GET", path: "/healthz"})
		code, body := 503, string(s)+"\n"
		if s == proxy.StateRunning || s == proxy.StatePaused {
			code, body = 200, "ok\n"
		}
		if w.Code != code || w.Body.String() != body {
			t.Errorf("%s: have %d %q, want %d %q", s, w.Code, w.Body, code, body)
		}
	}
}

func TestReadyz(t *testing.T) {
	good := proxy.Health{OK: true, Role: "master", LastCheck: "2026-01-02T03:04:05Z"}
	for _, tc := range []struct {
		name     string
		state    proxy.State
		health   proxy.Health
		interval int
		code     int
		body     string
	}{
		{"running, master", proxy.StateRunning, good, 1000, 200, "ok\n"},
		{"paused, master", proxy.StatePaused, good, 1000, 200, "ok\n"},
		{"pausing", proxy.StatePausing, good, 1000, 503, "state pausing\n"},
		{"reloading", proxy.StateReloading, good, 1000, 503, "state reloading\n"},
		{"stopping", proxy.StateStopping, good, 1000, 503, "state stopping\n"},
		{"starting", proxy.StateStarting, good, 1000, 503, "state starting\n"},
		{"no check yet", proxy.StateRunning, proxy.Health{}, 1000, 503, "no health check yet\n"},
		{"check failed", proxy.StateRunning, proxy.Health{LastCheck: good.LastCheck, Error: "dial tcp: connection refused"}, 1000,
			503, "uplink health check failed: dial tcp: connection refused\n"},
		{"replica", proxy.StateRunning, proxy.Health{OK: true, Role: "slave", LastCheck: good.LastCheck}, 1000, 503, "uplink role is slave\n"},
		{"no role", proxy.StateRunning, proxy.Health{OK: true, LastCheck: good.LastCheck}, 1000, 503, "uplink role is unknown\n"},
		{"checks off", proxy.StateRunning, proxy.Health{}, 0, 200, "ok\n"},
		{"checks off, paused", proxy.StatePaused, proxy.Health{}, 0, 200, "ok\n"},
		{"checks off, stopping", proxy.StateStopping, proxy.Health{}, 0, 503, "state stopping\n"},
	} {
		f := newFake()
		f.st.State, f.st.Uplink.Health = tc.state, tc.health
		f.st.Config.Uplink.CheckIntervalMS = tc.interval
		w := serve(t, Handler(f, nil), request{method: "GET", path: "/readyz"})
		if w.Code != tc.code || w.Body.String() != tc.body {
			t.Errorf("%s: have %d %q, want %d %q", tc.name, w.Code, w.Body, tc.code, tc.body)
		}
	}
}

func TestClientsJSON(t *testing.T) {
	f := newFake()
	h := Handler(f, nil)
	if w := serve(t, h, request{method: "GET", path: "/clients.json"}); w.Body.String() != "[]\n" {
		t.Errorf("no clients: %q", w.Body)
	}
	f.cls = []proxy.ClientInfo{
		{ID: 7, Addr: "10.0.0.9:5123", Name: "<app>", DB: 2, Proto: 3, AgeS: 12.5, IdleS: 0.5, Cmd: "BLPOP", Flags: []string{"blocked"}},
		{ID: 9, Addr: "10.0.0.9:5124", Proto: 2, Flags: []string{}},
	}
	w := serve(t, h, request{method: "GET", path: "/clients.json"})
	var have []map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &have); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	if len(have) != 2 {
		t.Fatalf("%s", w.Body)
	}
	for _, k := range []string{"id", "addr", "name", "db", "proto", "age_s", "idle_s", "cmd", "flags", "subs"} {
		if _, ok := have[1][k]; !ok {
			t.Errorf("no %s in %v", k, have[1])
		}
	}
	if have[0]["name"] != "<app>" || have[0]["cmd"] != "BLPOP" || have[0]["flags"].([]any)[0] != "blocked" || have[0]["db"] != 2.0 {
		t.Errorf("client: %v", have[0])
	}
}

func TestInfoJSON(t *testing.T) {
	f := newFake()
	f.charts = proxy.Charts{IntervalS: 1, CommandsPerS: []float64{3, 4}, P50MS: []float64{0.1, 0.25}, P99MS: []float64{1, 2.5}}
	f.st.Switch = proxy.SwitchReport{State: "idle", Phases: []proxy.Phase{}}
	f.st.History = []proxy.Event{}
	w := serve(t, Handler(f, nil), request{method: "GET", path: "/info.json"})
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("have %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if !strings.HasPrefix(w.Body.String(), "{\n  \"state\": \"running\",\n") {
		t.Errorf("not indented, or state not first: %.60q", w.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	// The keys doc/admin-api.md promises.
	for _, path := range []string{
		"state", "version", "uptime_s", "uplink.addr", "uplink.tls", "clients", "active_requests",
		"waiting_requests", "raw_connections", "counters.commands", "counters.errors",
		"counters.time_limit_disconnects", "counters.uplink_dial_errors", "counters.reloads",
		"counters.pauses", "config.uplink.addr", "config.admin.pass",
		"uplink.health.ok", "uplink.health.role", "uplink.health.last_check", "uplink.health.error",
		"uplink.health.master_repl_offset", "counters.switches", "counters.failovers",
		"charts.interval_s", "charts.commands_per_s", "charts.p50_ms", "charts.p99_ms",
		"switch.state", "switch.phases", "history",
	} {
		var v any = m
		for _, k := range strings.Split(path, ".") {
			obj, _ := v.(map[string]any)
			v = obj[k]
		}
		if v == nil {
			t.Errorf("info.json has no %s", path)
		}
	}
	if ch, _ := m["charts"].(map[string]any); fmt.Sprint(ch["commands_per_s"], ch["p99_ms"]) != "[3 4] [1 2.5]" {
		t.Errorf("charts: %v", m["charts"])
	}
	if m["state"] != "running" || m["version"] != "v1.2.3-test" || m["clients"] != 3.0 {
		t.Errorf("values: %s", w.Body)
	}
}

// TestNoPasswordLeak sets distinctive passwords everywhere, hands the
// handler an unsanitized config in Status too, and looks for them in every
// response body and header and in the logs.
func TestNoPasswordLeak(t *testing.T) {
	f := newFake()
	cfg := f.Config().Clone()
	cfg.Uplink.User, cfg.Uplink.Pass = "ulser", "UPLINK-PASS-a9f3"
	cfg.Listen.Pass = "LISTEN-PASS-7c1e"
	cfg.Admin.User, cfg.Admin.Pass = "ops", "ADMIN-PASS-42d8"
	f.setConfig(cfg)
	f.mu.Lock()
	f.st.Config = cfg // as if the proxy forgot to sanitize
	f.errs["reload"] = &proxy.ConfigError{Err: errors.New("uplink.addr: required")}
	f.mu.Unlock()
	var logs bytes.Buffer
	h := Handler(f, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	auth := func(pass string) map[string]string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth("ops", pass)
		return map[string]string{"Authorization": r.Header.Get("Authorization")}
	}
	var out strings.Builder
	var sawStars bool
	for _, creds := range []map[string]string{auth("ADMIN-PASS-42d8"), auth("wrong"), nil} {
		for _, rq := range []request{
			{method: "GET", path: "/"}, {method: "GET", path: "/info.json"}, {method: "GET", path: "/metrics"},
			{method: "GET", path: "/healthz"}, {method: "GET", path: "/cmd/"}, {method: "GET", path: "/nope"},
			{method: "GET", path: "/debug/pprof/cmdline"},
			post("reload"), post("unpause"), post("bogus"), post("terminate-raw-connections"),
		} {
			rq.header = creds
			w := serve(t, h, rq)
			fmt.Fprintf(&out, "%s %s -> %d\n", rq.method, rq.path, w.Code)
			for k, vs := range w.Header() {
				fmt.Fprintf(&out, "%s: %s\n", k, strings.Join(vs, ", "))
			}
			out.Write(w.Body.Bytes())
			sawStars = sawStars || strings.Contains(w.Body.String(), `"pass": "***"`)
		}
	}
	out.Write(logs.Bytes())
	for _, secret := range []string{"UPLINK-PASS-a9f3", "LISTEN-PASS-7c1e", "ADMIN-PASS-42d8"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("%s appears in the output", secret)
		}
	}
	if !sawStars {
		t.Errorf(`no "pass": "***" in the output: is the config shown at all?`)
	}
}

var handlerAttrRE = regexp.MustCompile(`\son[a-z]+=`)

func TestPage(t *testing.T) {
	f := newFake()
	h := Handler(f, nil)
	nonceRE := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9+/=]+)'`)
	var nonces []string
	for _, s := range proxy.AllStates {
		f.setState(s)
		w := serve(t, h, request{method: "GET", path: "/"})
		body := w.Body.String()
		if w.Code != 200 {
			t.Fatalf("%s: have %d", s, w.Code)
		}
		hd := w.Header()
		csp := hd.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "connect-src 'self'", "img-src data:",
			"form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("CSP allows unsafe: %q", csp)
		}
		m := nonceRE.FindStringSubmatch(csp)
		if m == nil {
			t.Fatalf("CSP has no script nonce: %q", csp)
		}
		nonces = append(nonces, m[1])
		if !strings.Contains(csp, "style-src 'nonce-"+m[1]+"'") {
			t.Errorf("CSP has no style nonce: %q", csp)
		}
		if strings.Count(body, `nonce="`+m[1]+`"`) != 2 {
			t.Errorf("the style and script blocks do not carry the nonce %s", m[1])
		}
		if strings.Count(body, "<script") != 1 || strings.Count(body, "<style") != 1 ||
			strings.Contains(body, "style=") || handlerAttrRE.MatchString(body) {
			t.Errorf("page has inline styles or handlers the CSP would block")
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
			"X-Content-Type-Options": "nosniff", "Content-Type": "text/html; charset=utf-8"} {
			if hd.Get(k) != v {
				t.Errorf("%s: have %q, want %q", k, hd.Get(k), v)
			}
		}
		wantBadge := fmt.Sprintf(`<span id="state" class="badge state-%s">%s</span>`, s, s)
		if !strings.Contains(body, wantBadge) {
			t.Errorf("%s: no %s", s, wantBadge)
		}
		for _, id := range []string{"result", "uplink-addr", "uplink-tls", "uptime", "version", "clients",
			"active_requests", "waiting_requests", "raw_connections", "c-commands", "c-errors",
			"c-time_limit_disconnects", "c-uplink_dial_errors", "c-pauses", "c-reloads", "c-reloads_failed",
			"c-last_pause_ms", "c-last_reload_ms", "c-paused_seconds_total", "c-switches", "c-failovers", "follow", "config", "updated",
			"btn-pause", "btn-pause-async", "btn-unpause", "btn-reload", "btn-reload-async",
			"btn-terminate-raw-connections"} {
			if !strings.Contains(body, `id="`+id+`"`) {
				t.Errorf("no id %q", id)
			}
		}
		for _, want := range []string{`name="viewport"`, ">127.0.0.1:6379<", ">v1.2.3-test<", ">1h 02m<",
			">1234<", ">1.5 ms<", ">42 ms<", ">3s<", `&#34;read_time_limit_ms&#34;: 5000`, "plain TCP"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "src=") {
			t.Errorf("page refers to outside assets")
		}
	}
	if slices.Sort(nonces); len(slices.Compact(nonces)) != len(proxy.AllStates) {
		t.Errorf("nonces repeat: %q", nonces)
	}
}

// TestPageEscapes checks that data reaches the page as text, never markup.
func TestPageEscapes(t *testing.T) {
	f := newFake()
	f.st.Version = `<script>alert(1)</script>`
	f.st.Uplink.Addr = `"><img src=x>`
	w := serve(t, Handler(f, nil), request{method: "GET", path: "/"})
	if strings.Contains(w.Body.String(), "<script>alert") || strings.Contains(w.Body.String(), "<img") {
		t.Errorf("data not escaped")
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		s    float64
		want string
	}{
		{0, "0s"}, {59.9, "59s"}, {60, "1m 00s"}, {3599, "59m 59s"}, {3600, "1h 00m"},
		{86399, "23h 59m"}, {86400, "1d 00h"}, {90061, "1d 01h"},
	} {
		if have := formatDuration(tc.s); have != tc.want {
			t.Errorf("formatDuration(%v): have %q, want %q", tc.s, have, tc.want)
		}
	}
	for _, tc := range []struct {
		v    float64
		want string
	}{{0, "0.0 ms"}, {1.24, "1.2 ms"}, {9.9, "9.9 ms"}, {10, "10 ms"}, {1234.5, "1234 ms"}} {
		if have := formatMS(tc.v); have != tc.want {
			t.Errorf("formatMS(%v): have %q, want %q", tc.v, have, tc.want)
		}
	}
}

func TestLogsCommands(t *testing.T) {
	var logs bytes.Buffer
	f := newFake()
	f.errs["reload"] = errors.New("dial tcp: refused")
	h := Handler(f, slog.New(slog.NewJSONHandler(&logs, nil)))
	serve(t, h, post("pause"))
	serve(t, h, post("reload"))
	var lines []map[string]any
	dec := json.NewDecoder(&logs)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["cmd"] != "pause" || lines[0]["level"] != "INFO" ||
		lines[1]["cmd"] != "reload" || lines[1]["level"] != "WARN" || lines[1]["err"] != "dial tcp: refused" {
		t.Errorf("logs: %v", lines)
	}
}
