package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"redis-proxy/resp"
)

// Health checks: every uplink.check_interval_ms, PING and INFO replication,
// pipelined in one round trip, on the proxy's own connection to the uplink
// (never a client's). The connection stays open between checks and is
// dialed again after a failure or when the uplink moves (a reload). The
// result is Status().Uplink.Health, /readyz and the uplink metrics.

// minCheckTimeout is the least time a check may take before it fails; a
// check also fails past check_interval_ms (when longer) or
// read_time_limit_ms (when shorter).
const minCheckTimeout = 250 * time.Millisecond

// maxInfoReply bounds the INFO replication reply a check reads (a few
// hundred bytes, plus a line per replica).
const maxInfoReply = 256 << 10

// checkCommands is what a check sends.
var checkCommands = resp.AppendCommand(resp.AppendCommand(nil, "PING"), "INFO", "replication")

// healthState is the last check's result, written by the check loop and
// read by Status, Health and the readiness probe.
type healthState struct {
	mu       sync.Mutex
	h        Health
	repl     replInfo
	latency  time.Duration // the last successful check's round trip
	failures uint64

	kick chan struct{} // buffered: the configuration changed, check now
}

// reconfigured tells the check loop that the configuration in force
// changed (a reload): the interval, or the uplink, may differ.
func (hs *healthState) reconfigured() {
	select {
	case hs.kick <- struct{}{}:
	default:
	}
}

// Health returns the result of the last health check of the uplink; the
// zero Health (LastCheck "") before the first one or with checks off.
func (p *Proxy) Health() Health {
	p.health.mu.Lock()
	defer p.health.mu.Unlock()
	h := p.health.h
	h.LatencyMS = float64(p.health.latency.Microseconds()) / 1000
	h.Failures = p.health.failures
	return h
}

// lastReplication is the last INFO replication a check read (zero before
// the first successful check).
func (p *Proxy) lastReplication() replInfo {
	p.health.mu.Lock()
	defer p.health.mu.Unlock()
	return p.health.repl
}

// healthLoop runs the checks until ctx ends (Shutdown). With
// check_interval_ms 0 it waits for a reload to turn them on.
func (p *Proxy) healthLoop(ctx context.Context) {
	defer p.wg.Done()
	var c *uplink
	defer func() {
		if c != nil {
			c.conn.Close()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.health.kick:
		case <-timer.C:
		}
		conf := p.conf()
		interval := conf.cfg.Uplink.CheckInterval()
		if interval <= 0 {
			timer.Stop()
			if c != nil {
				c.conn.Close()
				c = nil
			}
			p.health.mu.Lock()
			p.health.h, p.health.repl, p.health.latency = Health{}, replInfo{}, 0
			p.health.mu.Unlock()
			continue
		}
		c = p.check(ctx, conf, c)
		timer.Reset(interval)
	}
}

// check runs one check on c (dialing when c is nil or for another
// uplink), records the result, and returns the connection to keep (nil
// after a failure).
func (p *Proxy) check(ctx context.Context, conf *runtimeConfig, c *uplink) *uplink {
	timeout := max(conf.cfg.Uplink.CheckInterval(), minCheckTimeout)
	if conf.limit > 0 {
		timeout = min(timeout, max(conf.limit, minCheckTimeout))
	}
	if c != nil && c.gen != conf.target.gen {
		c.conn.Close()
		c = nil
	}
	if c == nil {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		u, err := conf.target.dial(dctx, newReplay(), nil)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				p.checked(conf, time.Time{}, replInfo{}, err)
			}
			return nil
		}
		c = u
	}
	// Shutdown closes the connection: a check never holds it up.
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	start := time.Now()
	c.conn.SetDeadline(start.Add(timeout))
	info, err := roundTrip(c)
	if !stop() {
		err = errShutdown
	}
	if err != nil {
		c.conn.Close()
		if ctx.Err() == nil {
			p.checked(conf, time.Time{}, replInfo{}, err)
		}
		return nil
	}
	p.checked(conf, start, parseReplication(info), nil)
	return c
}

// roundTrip sends PING and INFO replication and reads both replies; it
// returns INFO's text.
func roundTrip(c *uplink) (string, error) {
	c.w().Write(checkCommands)
	if err := c.flush(); err != nil {
		return "", err
	}
	rep, err := c.r.Forward(nil)
	switch {
	case err != nil:
		return "", err
	case rep.IsError():
		return "", fmt.Errorf("PING: %s", rep.Line)
	case rep.Type != '+' || string(rep.Line) != "PONG":
		return "", errNotPong
	}
	var buf limitedBuffer
	rep, err = c.r.Forward(&buf)
	switch {
	case err != nil:
		return "", err
	case rep.IsError():
		return "", fmt.Errorf("INFO replication: %s", rep.Line)
	case rep.Type != '$' && rep.Type != '=':
		return "", fmt.Errorf("INFO replication: unexpected reply type %q", rep.Type)
	}
	b := buf.Bytes()
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:] // the bulk header
	}
	return string(b), nil
}

// checked records a check's outcome; start is when its round trip began
// (for the latency) and err nil for a success. Changes are logged, not
// every check.
func (p *Proxy) checked(conf *runtimeConfig, start time.Time, ri replInfo, err error) {
	defer p.replicas.kickCheck() // the replicas are checked against this result (replicas.go)
	now := time.Now()
	h := Health{OK: err == nil, LastCheck: now.UTC().Format(time.RFC3339)}
	if err != nil {
		h.Error = err.Error()
	} else {
		h.Role, h.MasterReplOffset = ri.role, ri.masterReplOffset
	}
	hs := &p.health
	hs.mu.Lock()
	prev := hs.h
	hs.h = h
	if err != nil {
		hs.failures++
	} else {
		hs.repl = ri
		hs.latency = now.Sub(start)
	}
	hs.mu.Unlock()
	p.follow.observe(h)
	addr := conf.target.addr
	switch {
	case err != nil && (prev.OK || prev.LastCheck == "" || prev.Error != h.Error):
		p.log.Warn("uplink health check failed", "uplink", addr, "err", err)
	case err == nil && !prev.OK:
		p.log.Info("uplink health check passed", "uplink", addr, "role", h.Role)
	case err == nil && prev.Role != h.Role:
		p.log.Warn("uplink role changed", "uplink", addr, "from", prev.Role, "role", h.Role)
	}
}

// limitedBuffer collects a reply up to maxInfoReply bytes.
type limitedBuffer struct{ bytes.Buffer }

var errInfoTooLong = errors.New("INFO replication: reply too long")

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxInfoReply {
		return 0, errInfoTooLong
	}
	return b.Buffer.Write(p)
}

// replInfo is what INFO replication says of a server: what the health
// check shows, and what a switch needs to know of a primary and its
// replicas.
type replInfo struct {
	role             string // "master", "slave", or "" when not said
	masterReplOffset int64
	slaveReplOffset  int64  // a replica's applied offset
	masterHost       string // a replica's primary
	masterPort       int
	masterLinkStatus string // a replica's link to its primary: "up", "down"
	// master_sync_in_progress: "1" while a replica loads a full copy
	masterSyncInProgress string
	slaves               []replSlave
}

// streaming reports a replica whose link to its primary is up.
func (ri replInfo) streaming() bool { return ri.role == "slave" && ri.masterLinkStatus == "up" }

// replSlave is one connected replica, as its primary lists it.
type replSlave struct {
	ip     string
	port   int
	state  string // "online", "wait_bgsave", "send_bulk"...
	offset int64
	lag    int64
}

// parseReplication reads the fields of INFO replication's text ("key:value"
// lines, CRLF or LF). Unknown keys, comments and malformed numbers are
// ignored (a number left 0).
func parseReplication(info string) replInfo {
	var ri replInfo
	for line := range strings.Lines(info) {
		line = strings.TrimRight(line, "\r\n")
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch key {
		case "role":
			ri.role = val
		case "master_repl_offset":
			ri.masterReplOffset, _ = strconv.ParseInt(val, 10, 64)
		case "slave_repl_offset":
			ri.slaveReplOffset, _ = strconv.ParseInt(val, 10, 64)
		case "master_host":
			ri.masterHost = val
		case "master_port":
			ri.masterPort, _ = strconv.Atoi(val)
		case "master_link_status":
			ri.masterLinkStatus = val
		case "master_sync_in_progress":
			ri.masterSyncInProgress = val
		default:
			if n, ok := strings.CutPrefix(key, "slave"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
				ri.slaves = append(ri.slaves, parseSlave(val))
			}
		}
	}
	return ri
}

// parseSlave reads "ip=10.0.0.2,port=6379,state=online,offset=123,lag=0".
func parseSlave(val string) replSlave {
	var s replSlave
	for _, kv := range strings.Split(val, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "ip":
			s.ip = v
		case "port":
			s.port, _ = strconv.Atoi(v)
		case "state":
			s.state = v
		case "offset":
			s.offset, _ = strconv.ParseInt(v, 10, 64)
		case "lag":
			s.lag, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return s
}
