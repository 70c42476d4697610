package proxy

import (
	"errors"
	"net"
	"time"
)

// The connections with deadlines: the session's time limit on the uplink's
// read side and on writes to the client, the idle timeout on reads from
// the client. Deadlines move lazily, so a stream of replies costs no
// deadline update per reply.

// wrapUplink gives the uplink's read side the session's time limit.
func (s *session) wrapUplink(c net.Conn) *uplinkConn { return &uplinkConn{Conn: c, s: s} }

// uplinkConn enforces read_time_limit_ms on the oldest unanswered command.
// The deadline is moved lazily: when it fires early (a later command, or
// an idle connection) it is moved to the right time and the read goes on,
// so that a pipelined stream costs no deadline update per reply.
type uplinkConn struct {
	net.Conn
	s       *session
	dialing bool // the replay round trip: the dial's own deadline applies
}

func (c *uplinkConn) Read(b []byte) (int, error) {
	s := c.s
	for {
		n, err := c.Conn.Read(b)
		if n > 0 || err == nil {
			s.replyAt = s.p.now()
			return n, err
		}
		if !isTimeout(err) || c.dialing {
			return n, err
		}
		if err := c.timedOut(); err != nil {
			return 0, err
		}
	}
}

// timedOut handles a read deadline: errTimeLimit when the oldest command
// is past the limit, else the deadline moves to when it will be.
func (c *uplinkConn) timedOut() error {
	s := c.s
	now, limit := s.p.now(), s.p.conf().limit.Nanoseconds()
	due := now + limit
	if rec, ok := s.q.peek(); ok {
		if at, limited := rec.due(limit); limited {
			if now >= at {
				return errTimeLimit
			}
			due = at
		}
	}
	c.Conn.SetReadDeadline(s.p.wall(due))
	return nil
}

// clientConn applies the time limit to writes to the client (a client
// that does not read its replies holds them up) and the idle timeout to
// reads from it.
type clientConn struct {
	net.Conn
	s        *session
	wdl      int64 // write deadline in force (guarded by outMu)
	final    bool  // last words before closing: a short grace, whatever is due (guarded by outMu)
	lastRead int64
	// The request goroutine's: boundary is set while it waits for a new
	// command (nothing of one read yet); a move asked for while it is not
	// is deferred to the end of the command (movePending), since a
	// command half read cannot be resumed on another connection. The
	// command then dials the new connection itself.
	boundary, movePending bool
}

func (c *clientConn) Write(b []byte) (int, error) {
	s := c.s
	now, limit := s.p.now(), s.p.conf().limit.Nanoseconds()
	due := now + limit
	if rec, ok := s.q.peek(); ok {
		if at, limited := rec.due(limit); limited {
			due = at
		}
	}
	// Keep the deadline within [due, due+slack]: set it only when it drifts
	// out, so a stream of replies costs one update per slack period.
	slack := limit / 8
	if c.final {
		due, slack = now+int64(100*time.Millisecond), 0
	}
	if c.wdl < due || c.wdl > due+slack {
		c.wdl = due + slack/2
		c.Conn.SetWriteDeadline(s.p.wall(c.wdl))
	}
	n, err := c.Conn.Write(b)
	if err != nil && isTimeout(err) {
		err = errTimeLimit
	}
	return n, err
}

func (c *clientConn) Read(b []byte) (int, error) {
	s := c.s
	// About to wait for the client: what was forwarded goes to the uplink
	// now, or a batch that ends half-way through a command would hold
	// back the complete commands before it (and their replies). The
	// writer stays (forward may be writing to it); an error sticks in it
	// and the next write or flush reports it.
	s.pend.publishCommands(&s.stats)
	if u := s.up; u != nil && u.bw != nil {
		u.bw.Flush()
	}
	for {
		n, err := c.Conn.Read(b)
		if n > 0 || err == nil {
			c.lastRead = s.p.now()
			s.clock = c.lastRead
			c.boundary = false
			return n, err
		}
		if !isTimeout(err) {
			return n, err
		}
		if err := c.timedOut(); err != nil {
			return 0, err
		}
	}
}

// timedOut handles a read deadline: errIdle past client_idle_timeout_ms,
// else the deadline moves to when that will be.
func (c *clientConn) timedOut() error {
	s := c.s
	if s.closing() {
		return errSessionClosed
	}
	if s.redial.Load() {
		if c.boundary {
			return errRedial
		}
		// Whoever waits for the move goes on (each time one is asked
		// for): the command, once read, may have to wait at the pause
		// that waits for this.
		s.finishMove()
		if !c.movePending {
			c.movePending = true
			s.logDebug("move deferred to the end of the command being read")
		}
	}
	idle := s.p.conf().idle.Nanoseconds()
	if idle == 0 {
		c.Conn.SetReadDeadline(time.Time{})
		return nil
	}
	now := s.p.now()
	due := c.lastRead + idle
	if !s.q.empty() {
		due = now + idle // waiting for replies is not being idle
	}
	if now >= due {
		return errIdle
	}
	c.Conn.SetReadDeadline(s.p.wall(due))
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
