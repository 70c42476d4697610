package proxy

import (
	"context"
	"math"
	"strconv"
	"time"

	"redis-proxy/resp"
)

// Blocking commands. Their time limit is their own timeout plus
// read_time_limit_ms (a timeout of 0: no limit), and a pause does not wait
// for them: it releases each with Redis's own timeout reply (CLIENT
// UNBLOCK <id> TIMEOUT on the proxy's own connection), so the client
// retries as after any timeout, and its retry waits at the gate.

// Where a blocking command keeps its timeout.
const (
	blockLastSec  uint8 = iota + 1 // the last argument, in seconds (BLPOP, BLMOVE, BZPOPMIN...)
	blockFirstSec                  // the first argument, in seconds (BLMPOP, BZMPOP)
	blockOptionMs                  // the BLOCK option, in milliseconds (XREAD, XREADGROUP)
	blockSecondMs                  // the second argument, in milliseconds (WAIT)
)

// blockingKind says where name keeps its timeout, or 0 for a command that
// does not block.
func blockingKind(name []byte) uint8 {
	switch len(name) {
	case 4:
		if resp.Equal(name, "WAIT") {
			return blockSecondMs
		}
	case 5:
		switch {
		case resp.Equal(name, "BLPOP"), resp.Equal(name, "BRPOP"):
			return blockLastSec
		case resp.Equal(name, "XREAD"):
			return blockOptionMs
		}
	case 6:
		switch {
		case resp.Equal(name, "BLMOVE"):
			return blockLastSec
		case resp.Equal(name, "BLMPOP"), resp.Equal(name, "BZMPOP"):
			return blockFirstSec
		}
	case 8:
		if resp.Equal(name, "BZPOPMIN") || resp.Equal(name, "BZPOPMAX") {
			return blockLastSec
		}
	case 10:
		switch {
		case resp.Equal(name, "BRPOPLPUSH"):
			return blockLastSec
		case resp.Equal(name, "XREADGROUP"):
			return blockOptionMs
		}
	}
	return 0
}

// blockTimeout reads a blocking command's timeout from its arguments: the
// time it may block in nanoseconds, noLimit for a timeout of 0, or
// notBlocking (an XREAD without BLOCK, or a timeout Redis will refuse).
func blockTimeout(kind uint8, args [][]byte) int64 {
	var arg []byte
	ms := false
	switch kind {
	case blockLastSec:
		if len(args) > 0 {
			arg = args[len(args)-1]
		}
	case blockFirstSec:
		if len(args) > 0 {
			arg = args[0]
		}
	case blockSecondMs:
		if len(args) > 1 {
			arg, ms = args[1], true
		}
	case blockOptionMs:
		for i := 0; i+1 < len(args); i++ {
			if resp.Equal(args[i], "STREAMS") {
				break
			}
			if resp.Equal(args[i], "BLOCK") {
				arg, ms = args[i+1], true
			}
		}
	}
	if arg == nil {
		return notBlocking
	}
	if ms {
		n, ok := resp.ParseInt(arg)
		if !ok || n < 0 {
			return notBlocking
		}
		if n == 0 {
			return noLimit
		}
		return int64(min(time.Duration(n)*time.Millisecond, maxBlock))
	}
	f, err := strconv.ParseFloat(string(arg), 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return notBlocking
	}
	if f == 0 {
		return noLimit
	}
	return int64(min(time.Duration(f*float64(time.Second)), maxBlock))
}

const (
	notBlocking int64 = 0
	noLimit     int64 = -1
	maxBlock          = 100 * 365 * 24 * time.Hour
)

// blocking forwards a command that may block, with its own time limit.
// Inside MULTI nothing blocks: it is an ordinary command.
func (s *session) blocking(kind uint8) error {
	if s.txn.open {
		return s.forward(record{kind: kindPlain})
	}
	if err := s.readArgs(); err != nil {
		return s.argFailed(err)
	}
	for _, a := range s.args {
		s.hdr = resp.AppendBulk(s.hdr, a)
	}
	wait := blockTimeout(kind, s.args)
	if wait == notBlocking {
		return s.forward(record{kind: kindPlain})
	}
	return s.forward(record{kind: kindPlain, flags: flagBlocks, wait: wait})
}

// releaseBlocked sends CLIENT UNBLOCK <id> TIMEOUT, on a connection of
// the proxy's own, for every session whose uplink connection is blocked
// in a command, until stop closes. A command forwarded but not yet
// blocking when its UNBLOCK arrives is tried again, at growing intervals.
func (p *Proxy) releaseBlocked(stop <-chan struct{}) {
	var ctl *uplink
	defer func() {
		if ctl != nil {
			ctl.conn.Close()
		}
	}()
	backoff := time.Millisecond
	for {
		var ids []int64
		p.forEachSession(func(s *session) {
			if s.blocked.Load() > 0 {
				if id := s.upID.Load(); id > 0 {
					ids = append(ids, id)
				}
			}
		})
		if len(ids) > 0 {
			if ctl == nil {
				var err error
				if ctl, err = p.controlConn(); err != nil {
					p.log.Warn("pause: cannot release blocked commands", "uplink", p.conf().target.addr, "err", err)
					return
				}
			}
			if err := unblock(ctl, ids); err != nil {
				p.log.Warn("pause: cannot release blocked commands", "uplink", p.conf().target.addr, "err", err)
				return
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// controlConn dials the proxy's own connection to the uplink.
func (p *Proxy) controlConn() (*uplink, error) {
	conf := p.conf()
	ctx, cancel := context.WithTimeout(context.Background(), conf.limit)
	defer cancel()
	return conf.target.dial(ctx, newReplay(), nil)
}

// unblock sends CLIENT UNBLOCK id TIMEOUT for each id, pipelined, and
// reads the replies.
func unblock(u *uplink, ids []int64) error {
	u.conn.SetDeadline(time.Now().Add(5 * time.Second))
	w := u.w()
	for _, id := range ids {
		w.Write(resp.AppendCommand(nil, "CLIENT", "UNBLOCK", strconv.FormatInt(id, 10), "TIMEOUT"))
	}
	if err := u.flush(); err != nil {
		return err
	}
	for range ids {
		if _, err := u.r.Forward(nil); err != nil {
			return err
		}
	}
	return nil
}
