package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"redis-proxy/config"
	"redis-proxy/internal/proc"
	"redis-proxy/internal/redistest"
	"redis-proxy/proxy"
)

// TestBrowser drives the status page in headless Chromium through
// chromedriver's W3C WebDriver HTTP API: pause and unpause with the
// buttons, confirm the dialogs, watch the state badge, and save
// screenshots (desktop and phone widths).
func TestBrowser(t *testing.T) {
	chromium := needBrowser(t)

	f := newFake()
	var infoHits atomic.Int64
	h := Handler(f, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/info.json" {
			infoHits.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	d := startDriver(t, chromium)
	d.post("/url", map[string]any{"url": srv.URL + "/"}, nil)

	state := d.find("#state")
	if have := d.text(state); have != "running" {
		t.Fatalf("#state: have %q, want running", have)
	}
	// The nonce'd stylesheet applies: the badge is green.
	var bg string
	d.get("/element/"+state+"/css/background-color", &bg)
	if bg != "rgba(26, 127, 55, 1)" && bg != "rgb(26, 127, 55)" {
		t.Errorf("#state background: have %q, want the running green (is the CSP blocking the style?)", bg)
	}

	d.click("#btn-pause")
	if msg := d.acceptAlert(); !strings.Contains(msg, "Pause the proxy?") {
		t.Errorf("confirm text: %q", msg)
	}
	d.waitText("#state", "paused")
	d.waitText("#result", `pause → HTTP 200  {"ok":true}`)
	d.screenshot("admin-page-paused.png", 1200, 500)

	d.click("#btn-unpause")
	d.acceptAlert()
	d.waitText("#state", "running")
	d.waitText("#result", `unpause → HTTP 200  {"ok":true}`)

	// Dismissing the confirmation sends nothing: the next command is the
	// only one the controller sees.
	calls := len(f.Calls())
	d.click("#btn-reload")
	d.post("/alert/dismiss", map[string]any{}, nil)
	d.click("#btn-terminate-raw-connections")
	d.acceptAlert()
	d.waitText("#result", `terminate-raw-connections → HTTP 200  {"ok":true,"closed":0}`)
	if have := f.Calls()[calls:]; len(have) != 1 || have[0] != "terminate-raw-connections" {
		t.Errorf("after a dismissed reload: calls %q", have)
	}

	// A refused command shows its error, and the page refreshes on its
	// own (every 2 s) without losing the result.
	f.mu.Lock()
	f.errs["reload"] = &proxy.ConfigError{Err: errors.New(`config.json: uplink.addr: required`)}
	f.mu.Unlock()
	d.click("#btn-reload")
	d.acceptAlert()
	d.waitText("#result", `reload → HTTP 400  {"ok":false,"error":"config.json: uplink.addr: required"}`)
	f.setState(proxy.StateReloading)
	f.mu.Lock()
	f.st.Clients = 1234567
	f.mu.Unlock()
	d.waitText("#state", "reloading")
	d.waitText("#clients", "1234567")
	d.waitText("#result", `reload → HTTP 400`)
	f.setState(proxy.StateRunning)
	d.waitText("#state", "running")

	// The uplink's health, the clients, a switch phase by phase, the
	// history and the charts, as /info.json and /clients.json say.
	d.waitText("#uplink-health", "ok")
	d.waitText("#uplink-health-detail", "role master · offset 42")
	f.mu.Lock()
	f.cls = []proxy.ClientInfo{
		{ID: 1, Addr: "10.1.2.3:40001", Name: "<b>bold</b>", DB: 3, Proto: 3, AgeS: 75, IdleS: 2, Cmd: "BLPOP", Flags: []string{"blocked"}},
		{ID: 2, Addr: "10.1.2.3:40002", Proto: 2, Flags: []string{"multi", "waiting"}},
	}
	f.st.History = []proxy.Event{
		{Time: time.Now(), Event: "reload", OK: false, DurationMS: 12, Detail: "new uplink does not prove"},
		{Time: time.Now().Add(-time.Minute), Event: "pause", OK: true, DurationMS: 1.5},
	}
	f.st.Switch = proxy.SwitchReport{State: "running", Phase: "catchup", From: "10.0.0.1:6379", To: "10.0.0.2:6379",
		Phases: []proxy.Phase{{Name: "prove", MS: 3}, {Name: "attach", MS: 0}, {Name: "catchup"}, {Name: "pause"}}}
	f.charts = proxy.Charts{IntervalS: 1, CommandsPerS: []float64{0, 10, 30, 20}, P50MS: []float64{0, 0.1, 0.25, 0.1}, P99MS: []float64{0, 1, 2.5, 1}}
	f.st.Uplink.Health = proxy.Health{OK: false, LastCheck: "2026-01-02T03:04:05Z", Error: "dial tcp 10.0.0.1:6379: connection refused"}
	f.mu.Unlock()
	d.waitText("#uplink-health", "failing")
	d.waitText("#uplink-health-detail", "connection refused")
	d.waitText("#clients-body", "<b>bold</b>") // text, not markup
	if n := len(d.findAll("#clients-body tr")); n != 2 {
		t.Errorf("client rows: %d, want 2", n)
	}
	d.waitText("#clients-body", "BLPOP")
	d.waitText("#clients-body", "multi")
	if n := len(d.findAll("#clients-body b")); n != 0 {
		t.Errorf("a client's name was rendered as HTML")
	}
	d.waitText("#clients-count", "2")
	d.waitText("#history-body", "new uplink does not prove")
	if n := len(d.findAll("#history-body tr")); n != 2 {
		t.Errorf("history rows: %d, want 2", n)
	}
	d.waitText("#switch-state", "running")
	d.waitText("#switch-summary", "10.0.0.1:6379 → 10.0.0.2:6379 · phase catchup")
	if n := len(d.findAll("#switch-phases li")); n != 4 {
		t.Errorf("switch phases: %d, want 4", n)
	}
	d.waitText("#switch-phases li.current", "catchup")
	d.waitText("#switch-result", "running · 10.0.0.1:6379 → 10.0.0.2:6379 · phase catchup (3/4)")
	// While a switch runs the page polls every 250 ms, not every 2 s.
	n0 := infoHits.Load()
	time.Sleep(1500 * time.Millisecond)
	if n := infoHits.Load() - n0; n < 4 {
		t.Errorf("/info.json fetched %d times in 1.5 s of a running switch, want 4 or more", n)
	}
	var disabled bool
	d.post("/execute/sync", map[string]any{"script": `return document.querySelector("#btn-switch").disabled;`, "args": []any{}}, &disabled)
	if dis := disabled; !dis {
		t.Errorf("#btn-switch disabled=%v while a switch runs", dis)
	}
	d.waitAttr("#chart-commands", "data-points", "4")
	d.waitAttr("#chart-latency", "data-points", "4")
	if n := len(d.findAll("#chart-latency polyline")); n != 2 {
		t.Errorf("latency lines: %d, want 2 (p50, p99)", n)
	}
	if pts := d.attrOf("#chart-commands polyline", "points"); len(strings.Fields(pts)) != 4 {
		t.Errorf("commands polyline points: %q", pts)
	}
	d.waitText("#chart-commands-max", "max 30/s")
	// More samples arrive: the charts grow.
	f.mu.Lock()
	f.charts.CommandsPerS = append(f.charts.CommandsPerS, 40, 50)
	f.charts.P50MS = append(f.charts.P50MS, 0.1, 0.1)
	f.charts.P99MS = append(f.charts.P99MS, 5, 1)
	f.mu.Unlock()
	d.waitAttr("#chart-commands", "data-points", "6")
	d.waitText("#chart-latency-max", "max 5.0 ms")

	// The switch ends, and a refused switch-async shows why in #switch-result.
	f.mu.Lock()
	f.st.Switch = proxy.SwitchReport{State: "failed", From: "10.0.0.1:6379", To: "10.0.0.2:6379", RolledBack: true,
		Error: "switch: catchup: timed out", Phases: []proxy.Phase{{Name: "prove", MS: 3}, {Name: "attach"}, {Name: "catchup", MS: 5000}, {Name: "pause"}}}
	f.errs["switch-async"] = fmt.Errorf("%w: a switch, a reload or a retarget is in progress", proxy.ErrState)
	f.mu.Unlock()
	d.waitText("#switch-result", "failed: failed · 10.0.0.1:6379 → 10.0.0.2:6379 · paused 0.0 ms · switch: catchup: timed out · rolled back")
	d.waitText("#switch-phases li.failed", "catchup")
	d.post("/element/"+d.find("#switch-to")+"/value", map[string]any{"text": "10.0.0.3:6379"}, nil)
	calls = len(f.Calls())
	d.click("#btn-switch")
	if msg := d.acceptAlert(); !strings.HasPrefix(msg, "Switch to 10.0.0.3:6379?") {
		t.Errorf("switch confirm text: %q", msg)
	}
	d.waitText("#switch-result", "refused: HTTP 409 not possible in this state")
	d.waitText("#switch-result", "in progress")
	if have := f.Calls()[calls:]; len(have) != 1 || have[0] != "switch-async" {
		t.Errorf("after the switch button: calls %q", have)
	}

	d.screenshot("admin-page.png", 1200, 1100)
	d.screenshot("admin-page-phone.png", 390, 844)
}

// needBrowser skips the test with -short or without chromium and
// chromedriver (fails it then with CI=true), and returns chromium's path.
func needBrowser(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no browser")
	}
	for _, bin := range []string{"chromium", "chromedriver"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true and %s is not installed (apt-get install chromium chromium-driver): %v", bin, err)
			}
			t.Skipf("%s not on PATH (apt-get install chromium chromium-driver): %v", bin, err)
		}
	}
	chromium, _ := exec.LookPath("chromium")
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		chromium = "/usr/bin/chromium"
	}
	return chromium
}

// TestBrowserSwitch clicks through a switch on the status page of a real
// proxy over two real redis-server processes: type the second's address,
// tick attach, confirm, and watch the phases and the result; then the
// proxy is on the second server and its clients still read and write.
func TestBrowserSwitch(t *testing.T) {
	chromium := needBrowser(t)
	args := []string{"--repl-diskless-sync-delay", "0"}
	a, b := redistest.Start(t, args...), redistest.Start(t, args...)
	cfg := config.Default()
	cfg.Uplink.Addr = a.Addr
	p, base := startProxy(t, cfg) // no admin.pass: the browser needs no credentials

	c := redistest.MustDial(t, p.Addr().String())
	defer c.Close()
	do := func(want string, args ...any) {
		t.Helper()
		v, err := c.Do(args...)
		if err == nil {
			err = v.Err()
		}
		if err != nil || v.Str != want {
			t.Fatalf("%v through the proxy: %v %v, want %s", args, v, err, want)
		}
	}
	do("OK", "SET", "before", "v1")

	d := startDriver(t, chromium)
	d.timeout = 30 * time.Second // a switch with attach waits for a full sync
	d.post("/url", map[string]any{"url": base + "/"}, nil)
	d.waitText("#uplink-addr", a.Addr)
	d.waitText("#switch-state", "idle")

	d.post("/element/"+d.find("#switch-to")+"/value", map[string]any{"text": b.Addr}, nil)
	d.click("#switch-attach")
	d.click("#btn-switch")
	if msg := d.acceptAlert(); !strings.Contains(msg, "Switch to "+b.Addr+" (attach") {
		t.Errorf("confirm text: %q", msg)
	}
	d.waitText("#result", `switch-async → HTTP 200  {"ok":true}`)
	d.waitText("#switch-result", "done: ok · "+a.Addr+" → "+b.Addr)
	d.waitText("#switch-state", "done")

	var names []string
	d.post("/execute/sync", map[string]any{
		"script": `return Array.from(document.querySelectorAll("#switch-phases li"), e => e.getAttribute("data-phase"));`,
		"args":   []any{},
	}, &names)
	want := []string{"prove", "attach", "catchup", "pause", "gate", "promote", "fence", "retarget", "persist", "unpause"}
	if !slices.Equal(names, want) {
		t.Errorf("#switch-phases: %q, want %q", names, want)
	}
	if n := len(d.findAll("#switch-phases li.done")); n != len(want) {
		t.Errorf("#switch-phases: %d done, want %d", n, len(want))
	}
	d.waitText("#uplink-addr", b.Addr)

	res, err := http.Get(base + "/info.json")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Uplink struct{ Addr string }
		Switch proxy.SwitchReport
	}
	err = json.NewDecoder(res.Body).Decode(&info)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.Uplink.Addr != b.Addr || info.Switch.State != "done" || !info.Switch.OK || info.Switch.RolledBack {
		t.Errorf("/info.json after the switch: uplink %s, switch %+v", info.Uplink.Addr, info.Switch)
	}

	// The same connection, now on b: the data came along, writes go on.
	do("v1", "GET", "before")
	do("OK", "SET", "after", "v2")
	do("v2", "GET", "after")
	bc := redistest.MustDial(t, b.Addr)
	defer bc.Close()
	if v, err := bc.Do("GET", "after"); err != nil || v.Str != "v2" {
		t.Errorf("GET after on %s itself: %v %v", b.Addr, v, err)
	}

	// The charts draw from the proxy's own samples (one a second).
	d.waitFor("the commands chart to draw", func() (bool, string) {
		pts := d.attrOf("#chart-commands polyline", "points")
		return len(strings.Fields(pts)) >= 2, fmt.Sprintf("points %q", pts)
	})
	if n := len(d.findAll("#chart-latency polyline")); n != 2 {
		t.Errorf("latency lines: %d, want 2", n)
	}
	d.screenshot("admin-page-switched.png", 1200, 1100)
	d.post("/window/rect", map[string]any{"width": 390, "height": 844}, nil)
	d.post("/execute/sync", map[string]any{"script": `document.getElementById("switch-box").scrollIntoView()`, "args": []any{}}, nil)
	d.screenshot("admin-page-switched-phone.png", 390, 844)
}

// driver is a WebDriver session on a chromedriver this test started.
type driver struct {
	t       *testing.T
	base    string // http://127.0.0.1:port/session/id
	client  *http.Client
	timeout time.Duration // for every wait
}

func startDriver(t *testing.T, chromium string) *driver {
	t.Helper()
	addr, err := redistest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)

	logs := &proc.Output{Keep: 200}
	p, err := proc.Start("chromedriver", []string{"--port=" + port, "--allowed-ips=127.0.0.1"},
		proc.Options{Stdout: logs, Stderr: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The browser has quit with the session, deleted before this.
		p.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("chromedriver output:\n%s", logs)
		}
	})

	d := &driver{t: t, base: "http://" + addr, client: &http.Client{Timeout: 30 * time.Second}, timeout: 15 * time.Second}
	d.waitFor("chromedriver ready", func() (bool, string) {
		var st struct{ Ready bool }
		err := d.call("GET", "/status", nil, &st)
		return err == nil && st.Ready, fmt.Sprintf("ready %v, %v", st.Ready, err)
	})

	var session struct{ SessionID string }
	err = d.call("POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
				"--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
				"--disable-sync", "--user-data-dir=" + t.TempDir(), "--window-size=1200,1100"},
		},
	}}}, &session)
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	d.base += "/session/" + session.SessionID
	t.Cleanup(func() { d.call("DELETE", "", nil, nil) })
	return d
}

// call sends one WebDriver command and decodes its "value" into out.
func (d *driver) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var r struct{ Value json.RawMessage }
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s %s: %d, %v", method, path, res.StatusCode, err)
	}
	if res.StatusCode != 200 {
		var e struct{ Error, Message string }
		json.Unmarshal(r.Value, &e)
		return fmt.Errorf("%s %s: %s: %.300s", method, path, e.Error, e.Message)
	}
	if out != nil {
		return json.Unmarshal(r.Value, out)
	}
	return nil
}

func (d *driver) post(path string, in, out any) {
	d.t.Helper()
	if err := d.call("POST", path, in, out); err != nil {
		d.t.Fatal(err)
	}
}

func (d *driver) get(path string, out any) {
	d.t.Helper()
	if err := d.call("GET", path, nil, out); err != nil {
		d.t.Fatal(err)
	}
}

// screenshot saves a PNG of the page at the given window size in the
// test's temp dir and in os.TempDir() (to look at after the test).
func (d *driver) screenshot(name string, width, height int) {
	d.t.Helper()
	d.post("/window/rect", map[string]any{"width": width, "height": height}, nil)
	var b64 string
	d.get("/screenshot", &b64)
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		d.t.Fatalf("screenshot is not a PNG: %v", err)
	}
	for _, p := range []string{filepath.Join(d.t.TempDir(), name), filepath.Join(os.TempDir(), name)} {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			d.t.Error(err)
		}
	}
	d.t.Logf("screenshot: %s (%dx%d)", filepath.Join(os.TempDir(), name), width, height)
}

// find returns the element id of the CSS selector's first match.
func (d *driver) find(css string) string {
	d.t.Helper()
	var el map[string]string
	d.post("/element", map[string]any{"using": "css selector", "value": css}, &el)
	return el["element-6066-11e4-a52e-4f735466cecf"]
}

// findAll returns the element ids of every match of the CSS selector.
func (d *driver) findAll(css string) []string {
	d.t.Helper()
	var els []map[string]string
	d.post("/elements", map[string]any{"using": "css selector", "value": css}, &els)
	ids := make([]string, len(els))
	for i, e := range els {
		ids[i] = e["element-6066-11e4-a52e-4f735466cecf"]
	}
	return ids
}

// attrOf is the attribute of the first element matching css, or "",
// read in the page in one step: the page re-renders its parts (every
// 250 ms while a switch runs), and an element id found a moment before
// may be stale by the time it is read.
func (d *driver) attrOf(css, name string) string {
	d.t.Helper()
	var have string
	d.post("/execute/sync", map[string]any{
		"script": `var e = document.querySelector(arguments[0]); return e ? (e.getAttribute(arguments[1]) || "") : "";`,
		"args":   []any{css, name},
	}, &have)
	return have
}

// waitAttr waits until the element's attribute is want.
func (d *driver) waitAttr(css, name, want string) {
	d.t.Helper()
	d.find(css)
	d.waitFor(fmt.Sprintf("%s[%s=%q]", css, name, want), func() (bool, string) {
		have := d.attrOf(css, name)
		return have == want, fmt.Sprintf("have %q", have)
	})
}

func (d *driver) text(el string) string {
	d.t.Helper()
	var s string
	d.get("/element/"+el+"/text", &s)
	return s
}

func (d *driver) click(css string) {
	d.t.Helper()
	d.post("/element/"+d.find(css)+"/click", map[string]any{}, nil)
}

// acceptAlert waits for a dialog, accepts it and returns its text.
func (d *driver) acceptAlert() string {
	d.t.Helper()
	var msg string
	d.waitFor("an alert", func() (bool, string) {
		err := d.call("GET", "/alert/text", nil, &msg)
		return err == nil, fmt.Sprint(err)
	})
	d.post("/alert/accept", map[string]any{}, nil)
	return msg
}

// waitText waits until the element's text contains want. The text is
// read by selector each time: the page re-renders its parts, and a
// reference to a replaced element goes stale.
func (d *driver) waitText(css, want string) {
	d.t.Helper()
	d.find(css)
	d.waitFor(fmt.Sprintf("%s to show %q", css, want), func() (bool, string) {
		have := d.textOf(css)
		return strings.Contains(have, want), fmt.Sprintf("have %q", have)
	})
}

// textOf is the rendered text of the first element matching css, or "".
func (d *driver) textOf(css string) string {
	d.t.Helper()
	var s string
	d.post("/execute/sync", map[string]any{
		"script": `var e = document.querySelector(arguments[0]); return e ? e.innerText : "";`,
		"args":   []any{css},
	}, &s)
	return s
}

// waitFor checks cond every 50 ms until it holds, and fails the test
// after d.timeout with cond's last description of the state: the browser
// is another process, and WebDriver has no way to wait for a DOM change.
func (d *driver) waitFor(what string, cond func() (ok bool, state string)) {
	d.t.Helper()
	err := proc.WaitFor(context.Background(), d.timeout, 50*time.Millisecond, func() (bool, string, error) {
		ok, state := cond()
		return ok, state, nil
	})
	if err != nil {
		d.t.Fatalf("waiting for %s: %v", what, err)
	}
}
