package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"redis-proxy/config"
	"redis-proxy/proxy"
)

// TestWithProxy runs the admin server over a real proxy in front of two
// miniredis servers and drives a failover with HTTP requests, as a runbook
// does with curl: pause, reload onto the other Redis while paused, unpause;
// a waiting client's command lands on the new uplink.
func TestWithProxy(t *testing.T) {
	redisA, redisB := miniredis.RunT(t), miniredis.RunT(t)
	redisA.RequireAuth("UPLINK-PASS-A")
	redisB.RequireAuth("UPLINK-PASS-B")
	redisA.Set("who", "A")
	redisB.Set("who", "B")

	cfg := config.Default()
	cfg.Uplink.Addr, cfg.Uplink.Pass = redisA.Addr(), "UPLINK-PASS-A"
	cfg.Listen.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.ReadTimeLimitMS = 2000
	var mu sync.Mutex
	next, loadErr := cfg, error(nil) // what a reload reads
	setNext := func(c *config.Config, err error) {
		mu.Lock()
		defer mu.Unlock()
		next, loadErr = c, err
	}
	p, base := startProxyWith(t, cfg, proxy.Options{Version: "v-test", LoadConfig: func() (*config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, loadErr
	}})

	var all strings.Builder // every response, to look for passwords
	cmd := func(name string, wantCode int) map[string]any {
		t.Helper()
		res, err := http.PostForm(base+"/cmd/", url.Values{"cmd": {name}})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		all.Write(body)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("cmd=%s: %q: %v", name, body, err)
		}
		if res.StatusCode != wantCode {
			t.Fatalf("cmd=%s: have %d %s, want %d", name, res.StatusCode, body, wantCode)
		}
		return m
	}
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		all.Write(body)
		return res.StatusCode, string(body)
	}
	info := func() proxy.Status {
		t.Helper()
		_, body := get("/info.json")
		var st proxy.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	client := dialRESP(t, p.Addr().String())
	if have := client.get(t, "who"); have != "A" {
		t.Fatalf("GET who: have %q, want A", have)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}

	cmd("pause", 200)
	if st := info(); st.State != proxy.StatePaused || st.Counters.Pauses != 1 {
		t.Errorf("after pause: state %s, pauses %d", st.State, st.Counters.Pauses)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz while paused: %d", code)
	}
	// The client's next command waits for the end of the pause.
	reply := make(chan string, 1)
	go func() { reply <- client.getErr("who") }()

	// Refused reloads: nothing changes, 400 with the reason.
	setNext(nil, errors.New("config.json: uplink.addr: required"))
	if m := cmd("reload", 400); m["error"] != "config.json: uplink.addr: required" {
		t.Errorf("reload of a bad file: %v", m)
	}
	moved := cfg.Clone()
	moved.Listen.Addr = "127.0.0.1:1"
	setNext(moved, nil)
	if m := cmd("reload", 400); !strings.Contains(m["error"].(string), "listen.addr") {
		t.Errorf("reload changing listen.addr: %v", m)
	}
	wrongPass := cfg.Clone()
	wrongPass.Uplink.Addr, wrongPass.Uplink.Pass = redisB.Addr(), "nope"
	setNext(wrongPass, nil)
	if m := cmd("reload", 400); !strings.Contains(m["error"].(string), "does not prove") {
		t.Errorf("reload onto a Redis that refuses the password: %v", m)
	}

	// The switch, while paused: the proxy stays paused.
	toB := cfg.Clone()
	toB.Uplink.Addr, toB.Uplink.Pass = redisB.Addr(), "UPLINK-PASS-B"
	setNext(toB, nil)
	cmd("reload", 200)
	st := info()
	if st.State != proxy.StatePaused || st.Uplink.Addr != redisB.Addr() || st.Counters.Reloads != 1 || st.Counters.ReloadsFailed != 3 {
		t.Errorf("after reload: state %s, uplink %s, reloads %d/%d failed", st.State, st.Uplink.Addr, st.Counters.Reloads, st.Counters.ReloadsFailed)
	}
	if st.Config == nil || st.Config.Uplink.Pass != "***" {
		t.Errorf("info.json config: %+v", st.Config)
	}
	select {
	case r := <-reply:
		t.Fatalf("a command went through during the pause: %q", r)
	default:
	}

	cmd("unpause", 200)
	select {
	case r := <-reply:
		if r != "B" {
			t.Errorf("waiting GET who: have %q, want B (the new uplink)", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting command did not go on after unpause")
	}
	if m := cmd("unpause", 409); !strings.Contains(m["error"].(string), "not possible in this state") {
		t.Errorf("unpause while running: %v", m)
	}
	cmd("reload", 200) // unchanged: a no-op
	if m := cmd("terminate-raw-connections", 200); m["closed"] != 0.0 {
		t.Errorf("terminate-raw-connections: %v", m)
	}
	cmd("pause-async", 200)
	cmd("unpause", 200)
	cmd("reload-async", 200)
	cmd("flushall", 400)

	_, metrics := get("/metrics")
	e, err := parseExposition(metrics)
	if err != nil {
		t.Fatalf("%v\n%s", err, metrics)
	}
	if e.value(t, ns+"commands_total") < 2 || e.value(t, ns+"command_duration_seconds_count") < 2 ||
		e.value(t, ns+"pause_duration_seconds_count") < 1 || e.value(t, ns+"build_info", "version", "v-test") != 1 {
		t.Errorf("metrics do not show the traffic:\n%s", metrics)
	}
	if code, page := get("/"); code != 200 || !strings.Contains(page, redisB.Addr()) {
		t.Errorf("page: %d", code)
	}
	for _, secret := range []string{"UPLINK-PASS-A", "UPLINK-PASS-B"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("%s appears in a response", secret)
		}
	}
}

// respClient is just enough RESP for GET.
type respClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRESP(t *testing.T, addr string) *respClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &respClient{conn: conn, r: bufio.NewReader(conn)}
}

func (c *respClient) get(t *testing.T, key string) string {
	t.Helper()
	v := c.getErr(key)
	if strings.HasPrefix(v, "error: ") {
		t.Fatal(v)
	}
	return v
}

// getErr sends GET key and returns the bulk reply, or "error: ...".
func (c *respClient) getErr(key string) string {
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c.conn, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	if !strings.HasPrefix(line, "$") {
		return "error: " + strings.TrimSpace(line)
	}
	var n int
	fmt.Sscanf(line, "$%d", &n)
	if n < 0 {
		return "(nil)"
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return "error: " + err.Error()
	}
	return string(buf[:n])
}
