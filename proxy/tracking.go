package proxy

import (
	"strings"
	"sync"
	"time"

	"redis-proxy/resp"
)

// Client-side caching (CLIENT TRACKING). The options are replayed on a
// new uplink connection, REDIRECT following its target session to that
// session's new connection. Invalidations may have been missed meanwhile,
// so after any change of connection the client first gets an
// invalidate-all, as Redis sends at FLUSHALL: the invalidate push with a
// null (RESP3), or the __redis__:invalidate message with a null on the
// redirect target.

// tracking is a session's CLIENT TRACKING state, as Redis accepted it.
type tracking struct {
	on       bool
	opts     []string // the options, REDIRECT and its id left out
	redirect *session // REDIRECT's target, a session of this proxy; nil: none
}

// trackingArgs reads CLIENT TRACKING's arguments (after TRACKING) into
// the state they set; ok is false for a form the proxy does not follow
// (then nothing is learnt and Redis answers).
func (p *Proxy) trackingArgs(args [][]byte) (t tracking, redirectID int64, ok bool) {
	if len(args) == 0 {
		return t, 0, false
	}
	switch {
	case resp.Equal(args[0], "ON"):
		t.on = true
	case resp.Equal(args[0], "OFF"):
		return t, 0, true
	default:
		return t, 0, false
	}
	for i := 1; i < len(args); i++ {
		if resp.Equal(args[i], "REDIRECT") && i+1 < len(args) {
			id, ok := resp.ParseInt(args[i+1])
			if !ok {
				return t, 0, false
			}
			redirectID = id
			i++
			continue
		}
		t.opts = append(t.opts, string(args[i]))
		if (resp.Equal(args[i], "PREFIX")) && i+1 < len(args) {
			t.opts = append(t.opts, string(args[i+1]))
			i++
		}
	}
	return t, redirectID, true
}

// sessionByUplinkID finds the session whose uplink connection has id.
func (p *Proxy) sessionByUplinkID(id int64) *session {
	var found *session
	p.forEachSession(func(s *session) {
		if s.upID.Load() == id {
			found = s
		}
	})
	return found
}

// encode packs the tracking state into a record's val (and peer).
func (t tracking) encode() string { return strings.Join(t.opts, "\x00") }

func decodeTracking(val string) []string {
	if val == "" {
		return nil
	}
	return strings.Split(val, "\x00")
}

// The invalidate-all messages, as Redis sends them at FLUSHALL.
const (
	invalidateAllPush   = ">2\r\n$10\r\ninvalidate\r\n_\r\n"
	invalidateAllRESP2  = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
	invalidateAllOnPush = ">3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n_\r\n"
)

// invalidateAll tells a tracking session, on its new connection, that
// its cache may be stale: the reply goroutine calls it at the handoff,
// before any reply from the new connection.
func (s *session) invalidateAll() {
	t := &s.st.track
	if !t.on {
		return
	}
	if t.redirect == nil {
		s.outMu.Lock()
		s.out().WriteString(invalidateAllPush)
		s.flushOut()
		s.outMu.Unlock()
		return
	}
	t.redirect.invalidated()
}

// invalidated writes the invalidate-all message to a redirect target's
// client, between its replies.
func (s *session) invalidated() {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if s.tprotoRESP3.Load() {
		s.out().WriteString(invalidateAllOnPush)
	} else {
		s.out().WriteString(invalidateAllRESP2)
	}
	s.flushOut()
}

// connNotify broadcasts that a session got a new uplink connection.
type connNotify struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *connNotify) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *connNotify) notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// awaitRedirectTarget waits (bounded) until the session this one's
// invalidations go to is on a live connection to the current uplink, so
// that REDIRECT names it.
func (s *session) awaitRedirectTarget(gen uint64, d time.Duration) {
	t := s.st.track.redirect
	if t == nil {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		ch := t.connected.wait()
		if u := t.cur.Load(); t.closing() || (u != nil && u.gen == gen && !u.dead.Load() && t.upID.Load() == u.id) {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		}
	}
}

// repointTrackers moves, at once, the sessions whose invalidations go to
// s: s has a new connection and REDIRECT must name it.
func (s *session) repointTrackers() {
	s.p.forEachSession(func(o *session) {
		if o != s && o.redirectTo.Load() == s {
			o.repoint.Store(true)
			o.requestMove()
		}
	})
}

// setRedirect records t as the target of this session's invalidations.
// The reply goroutine's.
func (s *session) setRedirect(t *session) {
	if old := s.redirectTo.Swap(t); old != nil {
		old.trackers.Add(-1)
	}
	if t != nil {
		t.trackers.Add(1)
	}
}
