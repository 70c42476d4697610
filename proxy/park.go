package proxy

import (
	"context"
	"errors"
	"io"
	"time"
)

// Idle sessions without goroutines. A session is two sides, requests and
// replies, each a goroutine while it has work. A side with nothing to do
// parks instead of waiting: the request side when its client has sent
// nothing more, the reply side when its uplink connection has nothing
// more to read (plain TCP sockets of the proxy's poller, poll_linux.go),
// or when it has no uplink connection yet. A parked side's goroutine
// ends; the next event on its socket (data, a push, a close, a deadline:
// the idle timeout, the time limit, a wake set by the state machine)
// starts a new one, which goes on where the last one stopped: every
// session state the sides keep is in the session, none on a stack. A
// reply side parked without a connection is started by the request side
// when it has one for it (handOff).
//
// The session ends when both sides have ended (sideEnded): the last one
// cleans up (finish).

// errParked ends a side's goroutine, which has arranged to be resumed.
var errParked = errors.New("parked")

// errParkNow ends an idle side's wait: the sweeper asks it to park.
var errParkNow = errors.New("park now")

// runRequests runs the request side until it parks or ends.
func (s *session) runRequests() {
	err := s.requests()
	if err == errParked {
		return
	}
	s.close(err)
	s.sideEnded()
}

// runReplies runs the reply side: on u (resumed in the middle of it), or
// from the handoff h, or from the next handoff; until it parks or ends.
func (s *session) runReplies(u *uplink, h *handoff) {
	if s.replies(u, h) {
		s.sideEnded()
	}
}

// resumeReplies runs the reply side again on the connection it parked on.
func (s *session) resumeReplies() { s.runReplies(s.parkedOn, nil) }

// sideEnded counts a side out; the last one finishes the session.
func (s *session) sideEnded() {
	if s.sides.Add(-1) == 0 {
		s.finish()
	}
}

// finish cleans up after both sides have ended.
func (s *session) finish() {
	if u := s.up; u != nil {
		u.conn.Close()
	}
	s.cpre.release()
	s.p.gate.release(&s.hold)
	s.setRedirect(nil)
	s.setReplica(nil)
	s.p.unregister(s)
	reason := s.reason
	if reason == nil {
		reason = io.EOF
	}
	s.logInfo("client disconnected", "reason", closeReason(reason), "duration_ms", time.Since(s.start).Milliseconds())
	s.p.wg.Done()
}

// handOff gives the reply side its next uplink connection (or only the
// ring position from which records are the new connection's), once the
// reply side is done with the last one: it takes it from upCh when it
// runs, and it is started with it when parked.
func (s *session) handOff(h handoff) error {
	s.handMu.Lock()
	if s.replyIdle {
		s.replyIdle = false
		s.handMu.Unlock()
		go s.runReplies(nil, &h)
		return nil
	}
	s.sending++ // the reply side does not park while a handoff waits for it
	s.handMu.Unlock()
	var err error
	select {
	case s.upCh <- h:
	case <-s.done:
		err = errSessionClosed
	}
	s.handMu.Lock()
	s.sending--
	s.handMu.Unlock()
	return err
}

// nextHandoff is the reply side's wait for its next uplink connection:
// it parks (parked) unless a handoff is on its way or the session is
// closing; ok is false when the session closes.
func (s *session) nextHandoff() (h handoff, ok, parked bool) {
	s.handMu.Lock()
	if s.sending == 0 && !s.closing() {
		s.replyIdle = true
		s.handMu.Unlock()
		return h, false, true
	}
	s.handMu.Unlock()
	select {
	case h = <-s.upCh:
		return h, true, false
	case <-s.done:
		return h, false, false
	}
}

// wakeIdleReplies ends a reply side parked for a handoff that will not
// come (the session is closing): it is run once more, and sees it.
func (s *session) wakeIdleReplies() {
	s.handMu.Lock()
	idle := s.replyIdle
	s.replyIdle = false
	s.handMu.Unlock()
	if idle {
		go s.runReplies(nil, nil)
	}
}

// When an idle side parks: a side waits for its socket (blocking, as any
// goroutine) while its session is busy, so that a stream of commands does
// not start a goroutine per command; the sweeper, every parkEvery, asks a
// side that has waited since before its last round to park. Idle sessions
// lose their goroutines between parkEvery and twice that after their last
// command.
const parkEvery = 250 * time.Millisecond

// parkLoop is the sweeper, until ctx ends (Shutdown).
func (p *Proxy) parkLoop(ctx context.Context) {
	defer p.wg.Done()
	tick := time.NewTicker(parkEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cutoff := parkCutoff()
		asked := 0
		p.forEachSession(func(s *session) {
			if w := s.rawc; w != nil && w.pc != nil && w.pc.askPark(cutoff) {
				asked++
			}
			if u := s.cur.Load(); u != nil && u.raw != nil && u.raw.pc != nil && u.raw.pc.askPark(cutoff) {
				asked++
			}
		})
		if asked > 0 {
			trimKick.Add(int64(asked))
		}
	}
}
