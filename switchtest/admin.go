package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// adminClient speaks to the proxy's admin HTTP API (doc/admin-api.md), as an
// operator's script would with curl.
type adminClient struct {
	base string
	hc   *http.Client
}

func newAdminClient(addr string) *adminClient {
	// No proxy from the environment: the admin API is on loopback.
	return &adminClient{
		base: "http://" + addr,
		hc:   &http.Client{Transport: &http.Transport{Proxy: nil}},
	}
}

func (a *adminClient) close() { a.hc.CloseIdleConnections() }

// command posts cmd=name to /cmd/ and returns nil for {"ok":true} with 200,
// else an error carrying the proxy's reason and the status code. Deadlines
// come from ctx.
func (a *adminClient) command(ctx context.Context, name string) error {
	form := url.Values{"cmd": {name}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/cmd/", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cmd=%s: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("cmd=%s: reading the reply: %w", name, err)
	}
	var r struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("cmd=%s: HTTP %d, not the JSON reply of doc/admin-api.md: %q", name, resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusOK || !r.OK {
		return fmt.Errorf("cmd=%s: HTTP %d: %s", name, resp.StatusCode, r.Error)
	}
	return nil
}

// proxyInfo is the part of /info.json switchtest reads.
type proxyInfo struct {
	State   string `json:"state"`
	Version string `json:"version"`
	Uplink  struct {
		Addr string `json:"addr"`
	} `json:"uplink"`
	Clients         int `json:"clients"`
	ActiveRequests  int `json:"active_requests"`
	WaitingRequests int `json:"waiting_requests"`
	Counters        struct {
		Commands             uint64  `json:"commands"`
		Errors               uint64  `json:"errors"`
		TimeLimitDisconnects uint64  `json:"time_limit_disconnects"`
		UplinkDialErrors     uint64  `json:"uplink_dial_errors"`
		Reloads              uint64  `json:"reloads"`
		ReloadsFailed        uint64  `json:"reloads_failed"`
		Pauses               uint64  `json:"pauses"`
		Switches             uint64  `json:"switches"`
		ClientsAccepted      uint64  `json:"clients_accepted"`
		LastPauseMS          float64 `json:"last_pause_ms"`
		LastReloadMS         float64 `json:"last_reload_ms"`
	} `json:"counters"`
}

// info reads /info.json.
func (a *adminClient) info(ctx context.Context) (proxyInfo, error) {
	var info proxyInfo
	body, code, err := a.get(ctx, "/info.json")
	if err != nil {
		return info, err
	}
	if code != http.StatusOK {
		return info, fmt.Errorf("GET /info.json: HTTP %d: %q", code, body)
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return info, fmt.Errorf("GET /info.json: %w", err)
	}
	return info, nil
}

// healthz returns nil when /healthz answers 200.
func (a *adminClient) healthz(ctx context.Context) error {
	body, code, err := a.get(ctx, "/healthz")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET /healthz: HTTP %d: %q", code, strings.TrimSpace(string(body)))
	}
	return nil
}

func (a *adminClient) get(ctx context.Context, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	return body, resp.StatusCode, nil
}
