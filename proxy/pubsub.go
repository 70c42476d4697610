package proxy

import (
	"bufio"
	"bytes"
	"strconv"
	"sync"
	"time"

	"redis-proxy/resp"
)

// Pub/sub and MONITOR: replies nobody asked for travel between the replies
// to commands. The reply goroutine tells them apart by their first
// element (RESP3 pushes always; RESP2 arrays only while the connection is
// subscribed, when Redis sends nothing else as an array that starts with a
// pub/sub word), pairs each confirmation with its command, and learns the
// subscription set from the confirmations. On a new uplink connection the
// set is subscribed again at once and its confirmations are swallowed.

// The pub/sub families: channels, patterns, shard channels.
const (
	famChannel uint8 = iota + 1
	famPattern
	famShard
)

// subCommand says what a (un)subscribe command is: its family and whether
// it subscribes.
func subCommand(name []byte) (fam uint8, subscribe bool) {
	switch len(name) {
	case 9:
		if resp.Equal(name, "SUBSCRIBE") {
			return famChannel, true
		}
	case 10:
		switch {
		case resp.Equal(name, "PSUBSCRIBE"):
			return famPattern, true
		case resp.Equal(name, "SSUBSCRIBE"):
			return famShard, true
		}
	case 11:
		if resp.Equal(name, "UNSUBSCRIBE") {
			return famChannel, false
		}
	case 12:
		switch {
		case resp.Equal(name, "PUNSUBSCRIBE"):
			return famPattern, false
		case resp.Equal(name, "SUNSUBSCRIBE"):
			return famShard, false
		}
	}
	return 0, false
}

// confirmation words and the family each belongs to.
func confirmationFamily(word []byte) (fam uint8, subscribe bool) {
	switch string(word) {
	case "subscribe":
		return famChannel, true
	case "unsubscribe":
		return famChannel, false
	case "psubscribe":
		return famPattern, true
	case "punsubscribe":
		return famPattern, false
	case "ssubscribe":
		return famShard, true
	case "sunsubscribe":
		return famShard, false
	}
	return 0, false
}

func isMessage(word []byte) bool {
	switch string(word) {
	case "message", "pmessage", "smessage":
		return true
	}
	return false
}

// subSet is the session's subscriptions, as Redis confirmed them.
type subSet struct {
	channels, patterns, shards map[string]struct{}
}

func (ss *subSet) of(fam uint8) *map[string]struct{} {
	switch fam {
	case famPattern:
		return &ss.patterns
	case famShard:
		return &ss.shards
	}
	return &ss.channels
}

func (ss *subSet) count(fam uint8) int { return len(*ss.of(fam)) }

func (ss *subSet) total() int { return len(ss.channels) + len(ss.patterns) + len(ss.shards) }

func (ss *subSet) set(fam uint8, name string, on bool) {
	m := ss.of(fam)
	if on {
		if *m == nil {
			*m = make(map[string]struct{})
		}
		(*m)[name] = struct{}{}
	} else {
		delete(*m, name)
	}
}

// clone copies the set (the replay state is copied by value).
func (ss subSet) clone() subSet {
	cp := func(m map[string]struct{}) map[string]struct{} {
		if len(m) == 0 {
			return nil
		}
		out := make(map[string]struct{}, len(m))
		for k := range m {
			out[k] = struct{}{}
		}
		return out
	}
	return subSet{channels: cp(ss.channels), patterns: cp(ss.patterns), shards: cp(ss.shards)}
}

// commands appends SUBSCRIBE, PSUBSCRIBE and SSUBSCRIBE for the set and
// returns how many confirmations they bring.
func (ss *subSet) commands(b []byte) ([]byte, int) {
	n := 0
	for _, f := range []struct {
		cmd string
		m   map[string]struct{}
	}{{"SUBSCRIBE", ss.channels}, {"PSUBSCRIBE", ss.patterns}, {"SSUBSCRIBE", ss.shards}} {
		if len(f.m) == 0 {
			continue
		}
		args := []string{f.cmd}
		for k := range f.m {
			args = append(args, k)
		}
		b = resp.AppendCommand(b, args...)
		n += len(f.m)
	}
	return b, n
}

// peekFirst returns the first element of the array or push at the head of
// br when it is a short string (a pub/sub word), without consuming
// anything; nil otherwise. It asks br only for bytes that must come.
func peekFirst(br *bufio.Reader) []byte {
	line, ok := peekLine(br, 0)
	if !ok || len(line) < 4 || (line[0] != '*' && line[0] != '>') {
		return nil
	}
	if n, ok := resp.ParseInt(line[1 : len(line)-2]); !ok || n < 1 {
		return nil
	}
	off := len(line)
	head, ok := peekLine(br, off)
	if !ok || len(head) < 4 {
		return nil
	}
	switch head[0] {
	case '+':
		return head[1 : len(head)-2]
	case '$':
		n, ok := resp.ParseInt(head[1 : len(head)-2])
		if !ok || n < 0 || n > 32 {
			return nil
		}
		b, err := br.Peek(off + len(head) + int(n) + 2)
		if err != nil {
			return nil
		}
		return b[off+len(head) : off+len(head)+int(n)]
	}
	return nil
}

// peekLine peeks the line starting at off (with its CRLF), at most 64
// bytes long.
func peekLine(br *bufio.Reader, off int) ([]byte, bool) {
	for want := off + 1; want <= off+64; want++ {
		b, err := br.Peek(want)
		if err != nil {
			return nil, false
		}
		if b[want-1] == '\n' {
			return b[off:want], true
		}
	}
	return nil, false
}

// parseConfirmation reads a whole confirmation (kind, channel or null,
// count) from its bytes.
func parseConfirmation(b []byte) (name string, null bool, ok bool) {
	lines := bytes.SplitN(b, []byte("\r\n"), 6)
	// *3 / >3, $len, word, then $len name or $-1 (or _ in RESP3)
	if len(lines) < 5 {
		return "", false, false
	}
	h := lines[3]
	if len(h) > 0 && (bytes.Equal(h, []byte("$-1")) || h[0] == '_') {
		return "", true, true
	}
	if len(h) < 2 || h[0] != '$' {
		return "", false, false
	}
	n, err := strconv.Atoi(string(h[1:]))
	if err != nil || n < 0 {
		return "", false, false
	}
	rest := bytes.Join(lines[4:], []byte("\r\n"))
	if len(rest) < n {
		return "", false, false
	}
	return string(rest[:n]), false, true
}

// tee passes writes to w and keeps the first max bytes.
type tee struct {
	w   interface{ Write([]byte) (int, error) }
	buf []byte
	max int
}

func (t *tee) Write(p []byte) (int, error) {
	if room := t.max - len(t.buf); room > 0 {
		t.buf = append(t.buf, p[:min(room, len(p))]...)
	}
	if t.w == nil {
		return len(p), nil
	}
	return t.w.Write(p)
}

// confirmMax bounds a confirmation the proxy reads to learn from.
const confirmMax = 64 << 10

// unsolicited handles, in pump, a value that may be no reply to a command:
// a message, a MONITOR line, a push, or a pub/sub confirmation (the reply,
// or part of it, to the record at the head). handled is false when the
// value is an ordinary reply. Under outMu.
func (s *session) unsolicited(u *uplink, first byte) (handled bool, err error) {
	subscribedRESP2 := first == '*' && s.st.proto == 2 && (s.st.subs.total() > 0 || s.headIsSub())
	switch {
	case first == '>' || subscribedRESP2:
		word := peekFirst(u.br)
		if fam, on := confirmationFamily(word); fam != 0 {
			return true, s.confirmed(u, fam, on)
		}
		if first == '>' || isMessage(word) {
			rep, err := u.r.Forward(s.out())
			return true, cutErr(rep, err)
		}
	case first == '+' && s.st.monitor:
		if b, err := u.br.Peek(2); err == nil && b[1] >= '0' && b[1] <= '9' {
			rep, err := u.r.Forward(s.out()) // a MONITOR line: "+<time> [db addr] ..."
			return true, cutErr(rep, err)
		}
	}
	return false, nil
}

func (s *session) headIsSub() bool {
	rec, ok := s.q.peek()
	return ok && rec.kind == kindSub
}

// confirmed forwards a confirmation (or swallows it, when it confirms the
// re-subscription of a new connection), learns the set from it, and
// answers the head record once all its confirmations have come.
func (s *session) confirmed(u *uplink, fam uint8, on bool) error {
	swallow := s.swallow > 0
	t := &tee{max: confirmMax}
	if !swallow {
		t.w = s.out()
	}
	rep, err := u.r.Forward(t)
	if err != nil {
		return cutErr(rep, err)
	}
	if swallow {
		s.swallow--
		if s.swallow == 0 {
			s.finishMove()
		}
		return nil
	}
	if name, null, ok := parseConfirmation(t.buf); ok && !null {
		s.st.subs.set(fam, name, on)
	}
	s.pinned.Store(s.st.pinned())
	rec, ok := s.q.peek()
	if !ok || rec.kind != kindSub {
		return nil // a confirmation nobody asked for (Redis unsubscribed by itself): passed on
	}
	if s.confDue == 0 {
		s.confDue = rec.arg
		if s.confDue < 0 { // argument-less: one per subscription of the family, or one
			s.confDue = int32(max(1, s.st.subs.count(fam)+1))
		}
	}
	s.confDue--
	if s.confDue == 0 {
		s.answered(rec, rep)
		s.q.pop()
	}
	return nil
}

// pinned reports whether the session needs a live uplink connection even
// while its client sends nothing: to receive messages or MONITOR lines.
func (st *replay) pinned() bool { return st.subs.total() > 0 || st.monitor || st.track.on }

// ---- moving a pinned session to a new connection at once ----

// mover is how a session that must not wait for its client's next command
// (a subscriber) is moved to a new uplink connection: from outside (a
// reload) or when its connection died.
type mover struct {
	mu   sync.Mutex
	done chan struct{} // closed once the session is on a new connection (or gave up)
}

// requestMove asks the request goroutine to dial again now, and returns a
// channel closed once the new connection carries the session's state.
func (s *session) requestMove() <-chan struct{} {
	s.move.mu.Lock()
	if s.move.done == nil {
		s.move.done = make(chan struct{})
	}
	ch := s.move.done
	s.move.mu.Unlock()
	s.redial.Store(true)
	s.conn.Conn.SetReadDeadline(time.Now())
	return ch
}

// finishMove reports the move done.
func (s *session) finishMove() {
	s.move.mu.Lock()
	if s.move.done != nil {
		close(s.move.done)
		s.move.done = nil
	}
	s.move.mu.Unlock()
}
