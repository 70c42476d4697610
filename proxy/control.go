package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"redis-proxy/config"
	"redis-proxy/resp"
)

// The switch's own connections to servers (the target, the old primary),
// and how it compares addresses.

// sameAddr reports whether two HOST:PORT name the same server: the same
// port and a host resolving to a common address.
func sameAddr(a, b string) bool {
	ha, pa, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	hb, pb, err := net.SplitHostPort(b)
	if err != nil || pa != pb {
		return false
	}
	if strings.EqualFold(ha, hb) {
		return true
	}
	ipa, ipb := resolve(ha), resolve(hb)
	for _, x := range ipa {
		for _, y := range ipb {
			if x.Equal(y) {
				return true
			}
		}
	}
	return false
}

func resolve(host string) []net.IP {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	return addrs
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ctlConn is a connection of the proxy's own to one server (the target,
// the old primary), with the uplink credentials, for the commands of a
// switch.
type ctlConn struct {
	u     *uplink
	limit time.Duration
}

// dialNode dials addr with cfg's uplink settings (TLS verified for addr's
// host unless uplink.servername is set), AUTH included.
func (p *Proxy) dialNode(ctx context.Context, cfg *config.Config, addr string) (*ctlConn, error) {
	c := cfg.Clone()
	c.Uplink.Addr = addr
	t, err := newTarget(c, 0)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.ReadTimeLimit())
	defer cancel()
	u, err := t.dial(dctx, newReplay(), nil)
	if err != nil {
		return nil, err
	}
	return &ctlConn{u: u, limit: cfg.ReadTimeLimit()}, nil
}

func (c *ctlConn) close() { c.u.conn.Close() }

// replyError is an error reply from Redis.
type replyError string

func (e replyError) Error() string { return string(e) }

// do sends one command and returns its reply's payload: the line of a
// simple reply, the body of a bulk string.
func (c *ctlConn) do(ctx context.Context, args ...string) (string, error) {
	dl := time.Now().Add(c.limit)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.u.conn.SetDeadline(dl)
	c.u.w().Write(resp.AppendCommand(nil, args...))
	if err := c.u.flush(); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	rep, err := c.u.r.Forward(&buf)
	if err != nil {
		return "", err
	}
	if rep.IsError() {
		return "", replyError(rep.Line)
	}
	b := buf.Bytes()
	if rep.Type == '$' || rep.Type == '=' {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return strings.TrimSuffix(string(b), "\r\n"), nil
	}
	return string(rep.Line), nil
}

func (c *ctlConn) ping(ctx context.Context) error {
	s, err := c.do(ctx, "PING")
	if err != nil {
		return fmt.Errorf("PING: %w", err)
	}
	if s != "PONG" {
		return errNotPong
	}
	return nil
}

// info asks INFO replication.
func (c *ctlConn) info(ctx context.Context) (replInfo, error) {
	s, err := c.do(ctx, "INFO", "replication")
	if err != nil {
		return replInfo{}, err
	}
	return parseReplication(s), nil
}

// masterOffset reads a primary's master_repl_offset.
func (c *ctlConn) masterOffset(ctx context.Context) (int64, error) {
	ri, err := c.info(ctx)
	if err != nil {
		return 0, err
	}
	if ri.role != "master" {
		return 0, fmt.Errorf("INFO replication: role:%s, not master", ri.role)
	}
	return ri.masterReplOffset, nil
}
