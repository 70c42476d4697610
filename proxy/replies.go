package proxy

import (
	"bufio"
	"errors"
	"fmt"

	"redis-proxy/resp"
)

// The reply goroutine: it streams each uplink connection's replies to the
// client, pairs each with its record, learns from it what the session
// state has become, and ends pause units once their replies are flushed.

// replies runs the reply side: on u when it is resumed in the middle of
// pumping it, else from the handoff h, or the next one. It reports
// false when it parked (park.go), true when it has ended.
func (s *session) replies(u *uplink, first *handoff) bool {
	for {
		if u == nil {
			var h handoff
			if first != nil {
				h, first = *first, nil
			} else {
				var ok, parked bool
				if h, ok, parked = s.nextHandoff(); parked {
					return false
				} else if !ok {
					return true
				}
			}
			s.answerUntil(h.first, msgUplinkLost)
			if h.u == nil {
				continue
			}
			s.swallow = h.u.swallow
			if h.u.tracked {
				s.invalidateAll() // before any reply from the new connection
			}
			u = h.u
		}
		err := s.pump(u)
		if err == errParked {
			return false
		}
		u.dropReader()
		if s.closing() {
			return true
		}
		var we *resp.WriteError
		var pe *resp.ProtocolError
		switch {
		case errors.Is(err, errTimeLimit):
			s.timeLimit(errors.Is(err, errCut))
			return true
		case errors.As(err, &we):
			s.close(fmt.Errorf("client write: %w", we.Err))
			return true
		case errors.Is(err, errUnsolicited), errors.As(err, &pe):
			s.close(fmt.Errorf("uplink: %w", err))
			return true
		case errors.Is(err, errCut):
			s.close(fmt.Errorf("uplink connection lost in the middle of a reply: %w", errors.Unwrap(err)))
			return true
		}
		// The connection died between replies: answer what it carried.
		u.dead.Store(true)
		u.conn.Close()
		s.answerUntil(s.q.tail.Load(), msgUplinkLost)
		if !s.q.empty() {
			s.logDebug("uplink connection lost", "err", err)
		}
		if s.pinned.Load() {
			s.requestMove() // a subscriber gets a new connection now
		}
		u = nil
	}
}

var errCut = errors.New("reply cut")

// waitUplink waits for the uplink's next reply (or push) holding no buffer
// (plain TCP), then takes a pooled reader for it.
func (s *session) waitUplink(u *uplink) error {
	if u.raw == nil || u.timed == nil {
		return nil
	}
	if u.br != nil {
		if _, ok := u.r.Detach(); !ok {
			return nil
		}
		putReader(u.br)
		u.br = nil
	}
	s.parkedOn = u // before parking: the resumed side reads it
	slab, n, err := u.raw.read(u.timed.timedOut, s.resumeRep)
	if err != nil {
		return err
	}
	s.replyAt = s.p.now()
	u.pre.set(slab, n, u.timed)
	u.br = getReader(&u.pre)
	u.r.Reset(u.br)
	return nil
}

// pump streams replies from u to the client until u fails.
func (s *session) pump(u *uplink) error {
	locked := false
	defer func() {
		if locked {
			s.flushOut()
			s.outMu.Unlock()
		}
	}()
	for {
		if u.r.Buffered() == 0 {
			if locked {
				err := s.flushOut()
				locked = false
				s.outMu.Unlock()
				if err != nil {
					return &resp.WriteError{Err: err}
				}
			}
			if err := s.waitUplink(u); err != nil {
				return err
			}
		}
		b, err := u.br.Peek(1)
		if err != nil {
			return err
		}
		if !locked {
			s.outMu.Lock()
			locked = true
		}
		if n, err := s.replyRun(u); err != nil {
			return err
		} else if n > 0 {
			continue
		}
		if b[0] == '>' || b[0] == '*' || b[0] == '+' {
			// A message, a push, a MONITOR line, or a confirmation.
			if handled, err := s.unsolicited(u, b[0]); handled || err != nil {
				if err != nil {
					return err
				}
				continue
			}
		}
		rec, ok := s.q.peek()
		if !ok {
			return errUnsolicited
		}
		var rep resp.Reply
		switch rec.kind {
		case kindExecNil, kindExecAbort:
			rep, err = u.r.Forward(nil)
			if err == nil {
				if rec.kind == kindExecNil {
					s.out().Write(resp.AppendNullArray(nil, int(s.st.proto)))
				} else {
					s.out().Write(resp.AppendError(nil, msgExecAbort))
					rep.Type = '-'
				}
			}
		case kindExecLearn:
			rep, err = s.forwardExec(u, rec)
		default:
			if s.p.logMessages.Load() {
				c := &capture{w: s.out()}
				rep, err = u.r.Forward(c)
				s.logInfo("reply", "reply", renderReply(c.buf, c.more))
			} else {
				rep, err = u.r.Forward(s.out())
			}
		}
		if err != nil {
			return cutErr(rep, err)
		}
		s.answered(rec, rep)
		s.q.pop()
	}
}

// forwardExec forwards EXEC's reply element by element and learns the
// state changes its transaction queued (SELECT, CLIENT SETNAME) from their
// own elements. An aborted EXEC (a null, an error) changes nothing.
func (s *session) forwardExec(u *uplink, rec *record) (resp.Reply, error) {
	rep, err := u.r.ForwardHeader(s.out())
	if err != nil || rep.Type != '*' || rep.Len < 0 {
		return rep, err
	}
	fx := rec.fx()
	for i := range rep.Len {
		el, err := u.r.Forward(s.out())
		rep.N += el.N
		if err != nil {
			return rep, err
		}
		for len(fx) > 0 && int64(fx[0].index) == i {
			s.st.learn(&fx[0].rec, !el.IsError())
			fx = fx[1:]
		}
	}
	return rep, nil
}

func cutErr(rep resp.Reply, err error) error {
	if err == nil {
		return nil
	}
	var we *resp.WriteError
	if rep.N > 0 && !errors.As(err, &we) {
		return fmt.Errorf("%w: %w", errCut, err)
	}
	return err
}

// answered learns the outcome of a command from its reply. Under outMu.
func (s *session) answered(rec *record, rep resp.Reply) {
	ok := !rep.IsError()
	s.st.learn(rec, ok)
	switch rec.kind {
	case kindMonitor:
		s.pinned.Store(s.st.pinned())
	case kindHello:
		s.tprotoRESP3.Store(s.st.proto == 3)
	case kindTracking:
		if ok {
			s.setRedirect(s.st.track.redirect)
			s.pinned.Store(s.st.pinned())
		}
	}
	if rec.kind != kindPlain {
		s.publishView() // SELECT, HELLO, CLIENT SETNAME, EXEC...
	}
	if !ok {
		s.pend.errors++
	}
	s.pend.observe(s.replyAt-rec.sent, &s.stats)
	s.settle(rec, ok)
}

// settle counts the units that the reply to rec ends; they end at the
// next flush. Under outMu.
func (s *session) settle(rec *record, ok bool) {
	if rec.flags&flagEndsUnit != 0 {
		s.ended++
	}
	if rec.flags&flagBlocks != 0 {
		s.blocked.Add(-1)
	}
	s.ended += s.txr.answered(rec, ok, &s.tx)
}

// flushOut flushes the client writer (under outMu); the units whose
// replies it carried are over only then: a pause completes once its
// replies have reached the clients.
func (s *session) flushOut() error {
	s.pend.publishReplies(&s.stats)
	var err error
	if s.cw != nil {
		if err = s.cw.Flush(); err == nil {
			putWriter(s.cw)
			s.cw = nil
		}
	}
	if n := s.ended; n > 0 {
		s.ended = 0
		s.p.gate.leave(&s.hold, n)
	}
	return err
}

// answerUntil answers every record before seq with the error msg.
func (s *session) answerUntil(seq uint64, msg string) {
	if s.q.head.Load() >= seq {
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.confDue = 0
	for s.q.head.Load() < seq {
		rec, _ := s.q.peek()
		s.out().Write(resp.AppendError(nil, msg))
		s.stats.errors.Add(1)
		s.settle(rec, false)
		s.q.pop()
	}
	s.flushOut()
}

// timeLimit disconnects a client whose command outlived read_time_limit_ms.
// When the limit fired in the middle of a reply (cut), part of it has
// reached the client: the error cannot follow without completing the
// value (an array would end with it), so the client is only closed.
func (s *session) timeLimit(cut bool) {
	s.p.timeLimitDisconnects.Add(1)
	s.logWarn("command exceeded read_time_limit_ms; disconnecting client", "limit_ms", s.p.conf().limit.Milliseconds(), "mid_reply", cut)
	if cut {
		s.close(errTimeLimit)
		return
	}
	s.outMu.Lock()
	s.conn.final = true
	s.out().Write(resp.AppendError(nil, msgTimeLimit))
	s.flushOut()
	s.outMu.Unlock()
	s.stats.errors.Add(1)
	s.close(errTimeLimit)
}

// out returns the client writer, taking a pooled one for the batch.
// Under outMu.
func (s *session) out() *bufio.Writer {
	if s.cw == nil {
		s.cw = getWriter(s.conn)
	}
	return s.cw
}
