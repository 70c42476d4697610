package proxy

import (
	"encoding/binary"
	"slices"
	"sync/atomic"
	"time"
)

// The client list (/clients.json): what each session shows of itself to
// an observer on another goroutine, kept so that ordinary commands pay
// nothing for it. The name, db and protocol are published by the reply
// goroutine when a reply changes them (SELECT, HELLO, CLIENT SETNAME,
// RESET); the command in flight is the first 16 bytes of each forwarded
// command's name, packed in two words beside its ring slot.

// cmdNameLen is how much of a command's name the client list shows.
const cmdNameLen = 16

// sessionView is the part of a session's replay state the client list
// shows; replaced whole when it changes.
type sessionView struct {
	name     string
	db       int64
	proto    int64
	subs     int
	monitor  bool
	tracking bool
}

// observed is what a session keeps for observers.
type observed struct {
	view     atomic.Pointer[sessionView] // nil: a new connection's (db 0, RESP2, no name)
	lastCmd  atomic.Int64                // proxy clock at the read of the last command
	waiting  atomic.Bool                 // the request goroutine waits at the pause gate
	names    [ringSize][2]atomic.Uint64  // the command name of each ring slot (packName)
	cmdWords [2]uint64                   // the request goroutine's: the current command's name, packed
}

// packName packs the first cmdNameLen bytes of name, upper-cased, into
// two words (zero bytes pad).
func packName(name []byte) (w [2]uint64) {
	var b [cmdNameLen]byte
	copy(b[:], name)
	return [2]uint64{upper8(binary.LittleEndian.Uint64(b[:8])), upper8(binary.LittleEndian.Uint64(b[8:]))}
}

// upper8 upper-cases the ASCII letters of eight bytes at once (a branch per
// byte was a cost on every command).
func upper8(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	low := x &^ highs                // each byte's low seven bits
	geA := low + ones*(0x80-'a')     // high bit set where low >= 'a'
	gtZ := low + ones*(0x80-'z'-1)   // high bit set where low > 'z'
	lower := geA &^ gtZ &^ x & highs // 'a'..'z', not bytes >= 0x80
	return x - lower>>2              // 0x80>>2 is 'a'-'A'
}

func unpackName(w [2]uint64) string {
	b := make([]byte, 0, cmdNameLen)
	for i := range cmdNameLen {
		c := byte(w[i/8] >> (8 * (i % 8)))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// noteCommand records that a command named name was read (the request
// goroutine's).
func (s *session) noteCommand(name []byte) {
	s.obs.cmdWords = packName(name)
	s.noteRead()
}

// noteRead records when the last command was read (the request goroutine's).
func (s *session) noteRead() {
	if s.obs.lastCmd.Load() != s.clock { // a store is a locked instruction: one per batch
		s.obs.lastCmd.Store(s.clock)
	}
}

// notePush labels ring slot seq with the current command's name, before
// the record is pushed there (the request goroutine's).
func (s *session) notePush(seq uint64) {
	slot := &s.obs.names[seq&s.q.mask]
	if slot[0].Load() != s.obs.cmdWords[0] || slot[1].Load() != s.obs.cmdWords[1] {
		// Most often the slot has the name already (a client sends the
		// same few commands): no store, no locked instruction.
		slot[0].Store(s.obs.cmdWords[0])
		slot[1].Store(s.obs.cmdWords[1])
	}
}

// publishView shows the session state st now holds to observers, when it
// changed (the reply goroutine's, or the request goroutine's while the
// reply goroutine waits, as at RESET).
func (s *session) publishView() {
	v := sessionView{name: s.st.name, db: s.st.db, proto: s.st.proto,
		subs: s.st.subs.total(), monitor: s.st.monitor, tracking: s.st.track.on}
	if old := s.obs.view.Load(); (old == nil && v == sessionView{proto: 2}) || (old != nil && *old == v) {
		return
	}
	s.obs.view.Store(&v)
}

// info is the session as the client list shows it.
func (s *session) info(now int64) ClientInfo {
	ci := ClientInfo{
		ID:    s.id,
		Addr:  s.remote,
		Proto: 2,
		AgeS:  time.Since(s.start).Seconds(),
		IdleS: max(0, float64(now-s.obs.lastCmd.Load())/1e9),
		Flags: []string{},
	}
	ci.Listener, ci.Server = s.where()
	if s.obs.lastCmd.Load() == 0 {
		ci.IdleS = ci.AgeS
	}
	if v := s.obs.view.Load(); v != nil {
		ci.Name, ci.DB, ci.Proto, ci.Subs = v.name, v.db, v.proto, v.subs
		if v.subs > 0 {
			ci.Flags = append(ci.Flags, "pubsub")
		}
		if v.tracking {
			ci.Flags = append(ci.Flags, "tracking")
		}
		if v.monitor {
			ci.Flags = append(ci.Flags, "monitor")
		}
	}
	if h, t := s.q.head.Load(), s.q.tail.Load(); h != t {
		slot := &s.obs.names[h&s.q.mask]
		ci.Cmd = unpackName([2]uint64{slot[0].Load(), slot[1].Load()})
	}
	if s.tx.inMulti.Load() {
		ci.Flags = append(ci.Flags, "multi")
	}
	if s.blocked.Load() > 0 {
		ci.Flags = append(ci.Flags, "blocked")
	}
	if s.obs.waiting.Load() {
		ci.Flags = append(ci.Flags, "waiting")
	}
	return ci
}

// Clients lists the connected clients of the managed listener, by id.
func (p *Proxy) Clients() []ClientInfo {
	now := p.now()
	var out []ClientInfo
	p.forEachSession(func(s *session) { out = append(out, s.info(now)) })
	slices.SortFunc(out, func(a, b ClientInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if out == nil {
		out = []ClientInfo{}
	}
	return out
}
