package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The switch's peers (switch.peers): other proxies in front of the same
// primary, driven through their admin API with this proxy's credentials.

// peerCmd posts one command to a peer's /cmd/, with this proxy's admin
// credentials, and checks the reply is {"ok": true}.
func (op *switchOp) peerCmd(ctx context.Context, peer string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(peer, "/")+"/cmd/", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	op.auth(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var body struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	json.Unmarshal(b, &body)
	if res.StatusCode != http.StatusOK || !body.OK {
		msg := body.Error
		if msg == "" {
			msg = strings.TrimSpace(string(bytes.ToValidUTF8(b[:min(len(b), 200)], nil)))
		}
		return fmt.Errorf("cmd=%s: %s: %s", form.Get("cmd"), res.Status, msg)
	}
	return nil
}

// peerState reads a peer's state from its /info.json.
func (op *switchOp) peerState(ctx context.Context, peer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(peer, "/")+"/info.json", nil)
	if err != nil {
		return "", err
	}
	op.auth(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var body struct {
		State string `json:"state"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 4<<20)).Decode(&body); err != nil {
		return "", err
	}
	return body.State, nil
}

// auth gives a request to a peer this proxy's admin credentials, unless
// the peer's URL carries its own.
func (op *switchOp) auth(req *http.Request) {
	if req.URL.User == nil && op.cfg.Admin.Pass != "" {
		req.SetBasicAuth(op.cfg.Admin.User, op.cfg.Admin.Pass)
	}
}

// redactPeer is a peer URL without its password, for logs and reports.
func redactPeer(peer string) string {
	u, err := url.Parse(peer)
	if err != nil || u.User == nil {
		return peer
	}
	return u.Redacted()
}
