package proxy

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"sync"
	"time"

	"redis-proxy/resp"
)

// What lives on the server but is not replicated, carried across a change
// of server: the scripts loaded through the proxy, and SCAN cursors
// (which mean nothing on another server).

// scriptCache is every script loaded through the proxy (SCRIPT LOAD, or
// run by EVAL), by SHA, the oldest forgotten first past its bounds.
type scriptCache struct {
	mu    sync.Mutex
	body  map[string]string
	order []string
	bytes int
	seen  map[string]bool // server instances (run_id) that have them
}

const (
	maxScripts     = 10000
	maxScriptBytes = 64 << 20
)

func (c *scriptCache) add(body []byte) {
	sum := sha1.Sum(body)
	sha := hex.EncodeToString(sum[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.body[sha]; ok {
		return
	}
	if c.body == nil {
		c.body = make(map[string]string)
	}
	c.body[sha] = string(body)
	c.order = append(c.order, sha)
	c.bytes += len(body)
	for len(c.order) > maxScripts || c.bytes > maxScriptBytes {
		old := c.order[0]
		c.order = c.order[1:]
		c.bytes -= len(c.body[old])
		delete(c.body, old)
	}
}

func (c *scriptCache) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.order))
	for _, sha := range c.order {
		out = append(out, c.body[sha])
	}
	return out
}

// loadScripts loads every known script into t's server, before clients
// resume on it, within d. A script Redis refuses is skipped.
func (p *Proxy) loadScripts(t *target, d time.Duration) error {
	bodies := p.scripts.all()
	if len(bodies) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	u, err := t.dial(ctx, newReplay(), nil)
	if err != nil {
		return err
	}
	defer u.conn.Close()
	if err := loadScriptsOn(u, bodies, time.Now().Add(d)); err != nil {
		return err
	}
	p.log.Info("scripts loaded into the new uplink", "uplink", t.addr, "scripts", len(bodies))
	return nil
}

// loadScriptsOn sends SCRIPT LOAD for each body on u, pipelined, and reads
// the replies, by deadline.
func loadScriptsOn(u *uplink, bodies []string, deadline time.Time) error {
	u.conn.SetDeadline(deadline)
	defer u.conn.SetDeadline(time.Time{})
	w := u.w()
	for _, b := range bodies {
		w.Write(resp.AppendCommand(nil, "SCRIPT", "LOAD", b))
	}
	if err := u.flush(); err != nil {
		return err
	}
	for range bodies {
		if _, err := u.r.Forward(nil); err != nil {
			return err
		}
	}
	return nil
}

// A server restarted in place (the same address) has lost its scripts
// too. While the proxy knows scripts, a new connection asks INFO server
// in its set-up round trip; the first one to meet a server instance (its
// run_id) the proxy has not seen loads the scripts into it, on its own
// connection, before its first command.

// newInstance records runID and reports whether it is one not seen yet.
func (c *scriptCache) newInstance(runID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string]bool)
	}
	if runID == "" || c.seen[runID] {
		return false
	}
	c.seen[runID] = true
	return true
}

func (c *scriptCache) known() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order) > 0
}

// runID finds run_id in an INFO server reply.
func runID(info []byte) string {
	_, rest, ok := bytes.Cut(info, []byte("\nrun_id:"))
	if !ok {
		return ""
	}
	id, _, _ := bytes.Cut(rest, []byte("\r"))
	return string(id)
}

// carryScripts loads the scripts into the server of a session's new
// connection when it is an instance not seen before. The request
// goroutine's, before the connection is handed over.
func (s *session) carryScripts(u *uplink, limit time.Duration) {
	if u.runID == "" || !s.p.scripts.newInstance(u.runID) {
		return
	}
	bodies := s.p.scripts.all()
	if u.timed != nil {
		u.timed.dialing = true
		defer func() { u.timed.dialing = false }()
	}
	if err := loadScriptsOn(u, bodies, time.Now().Add(limit)); err != nil {
		s.logWarn("scripts not loaded into a new server instance", "err", err)
		return
	}
	s.p.log.Info("scripts loaded into a new server instance", "uplink", s.p.conf().target.addr, "run_id", u.runID, "scripts", len(bodies))
}

// script remembers the script of SCRIPT LOAD or EVAL / EVAL_RO (its first
// argument after the subcommand or name) and forwards the command.
func (s *session) script(argc int, load bool) error {
	if load {
		if argc < 2 {
			return s.forward(record{kind: kindPlain})
		}
		sub, err := s.take()
		if err != nil {
			return s.forwardIfTooLong(err)
		}
		if !resp.Equal(sub, "LOAD") || argc != 3 {
			return s.forward(record{kind: kindPlain})
		}
	} else if argc < 2 {
		return s.forward(record{kind: kindPlain})
	}
	body, err := s.take()
	if err != nil {
		return s.forwardIfTooLong(err)
	}
	s.p.scripts.add(body)
	return s.forward(record{kind: kindPlain})
}

// scan forwards SCAN, SSCAN, HSCAN or ZSCAN noting where its cursor is:
// forward restarts a cursor from another server at 0 (fixCursor).
func (s *session) scan(argc int, keyed bool) error {
	if keyed {
		if argc < 3 {
			return s.forward(record{kind: kindPlain})
		}
		if _, err := s.take(); err != nil {
			return s.forwardIfTooLong(err)
		}
	} else if argc < 2 {
		return s.forward(record{kind: kindPlain})
	}
	cursor, err := s.cr.Arg()
	if err != nil {
		return s.forwardIfTooLong(err)
	}
	s.cursorAt = len(s.hdr)
	s.cursorZero = string(cursor) == "0"
	s.hdr = resp.AppendBulk(s.hdr, cursor)
	return s.forward(record{kind: kindPlain, flags: flagScan})
}

// fixCursor restarts at 0 a SCAN continuation whose cursor came from
// another server than the one it goes to: on another server a cursor
// means nothing, and restarting keeps SCAN's promise (every element
// present throughout is returned; some may repeat).
func (s *session) fixCursor() {
	gen := s.up.gen
	if !s.cursorZero && s.scanGen != 0 && s.scanGen != gen {
		s.hdr = resp.AppendBulkString(s.hdr[:s.cursorAt], "0")
	}
	s.scanGen = gen
}
