package proxy

import "redis-proxy/resp"

// Runs: a pipeline of plain commands (anything the proxy only forwards,
// outside a transaction) moves to the uplink in one write, and their
// replies move back to the client in one write, instead of a command (and
// a reply) at a time through the handlers. Each command still gets its
// record and is a pause unit of its own; a run's units pass the gate
// together, before any of them is sent (a pause that closes the gate then
// waits for all of them, as for any unit that got through). Each reply is
// still checked whole (resp.Reader's CommandAt and ValueAt
// accept what the long way reads whole), counted, and ends its unit at
// the flush. Whatever a run does not take (a command the proxy handles, a
// value not whole in the buffer, a push, a closed gate) goes the long way,
// which then takes the next one.

// forwardRun forwards the run of plain commands whole at the front of the
// client's buffer; n is how many (0: the next command goes the long way).
// The run's records are written into the free slots first and published
// with one store of the tail, once the run has passed the gate as a whole
// (a closed gate: the long way waits at it with the first command).
func (s *session) forwardRun() (n int) {
	if !s.authed || s.txn.open || s.silent() || s.p.logMessages.Load() || !s.uplinkOK() {
		return 0
	}
	buf := s.cr.Pending()
	q := s.q
	tail := q.tail.Load()
	free := uint64(len(q.buf)) - (tail - q.head.Load())
	pos := 0
	for seq := tail; seq < tail+free; seq++ {
		size, name, ok := s.cr.CommandAt(buf, pos)
		if !ok || !s.plainName(name) {
			break
		}
		s.notePush(seq)
		q.buf[seq&q.mask] = record{sent: s.clock, kind: kindPlain, flags: flagEndsUnit}
		pos += size
		n++
	}
	if n == 0 || !s.p.gate.tryEnterN(&s.hold, int32(n)) {
		return 0
	}
	s.pend.commands += uint64(n)
	s.noteRead()
	q.tail.Store(tail + uint64(n))
	u := s.up
	_, werr := u.w().Write(buf[:pos])
	s.cr.Consume(pos)
	if werr != nil {
		s.retire() // its records are answered with the error, as send's
		return n
	}
	s.sentTo(u)
	return n
}

// plainName reports whether name is a plain command, and makes it the
// current command's name (noteCommand's). A pipeline repeats a few names:
// the name of the last plain command is known plain without classify.
func (s *session) plainName(name []byte) bool {
	w := packName(name)
	if len(name) > cmdNameLen || len(name) != s.plainLen || w != s.plainWords {
		if classify(name) != cmdPlain {
			return false
		}
		s.plainWords, s.plainLen = w, len(name)
	}
	s.obs.cmdWords = w
	return true
}

// replyRun forwards the run of replies whole at the front of u's buffer
// that answer the plain commands at the head of the ring (forwardRun's,
// or the long way's: the same records); n is how many. Under outMu.
func (s *session) replyRun(u *uplink) (n int, err error) {
	if s.swallow > 0 || s.st.monitor || s.st.subs.total() > 0 || s.p.logMessages.Load() {
		return 0, nil // pushes, messages and MONITOR lines come between replies
	}
	buf := u.r.Pending()
	head, tail := s.q.head.Load(), s.q.tail.Load()
	pos := 0
	var sent int64
	var same uint64
	for seq := head; seq < tail && pos < len(buf) && buf[pos] != '>'; seq++ {
		rec := &s.q.buf[seq&s.q.mask]
		if rec.kind != kindPlain || rec.flags != flagEndsUnit {
			break
		}
		rep, ok := u.r.ValueAt(buf, pos)
		if !ok {
			break
		}
		if rep.IsError() {
			s.pend.errors++
		}
		if rec.sent != sent && same > 0 {
			s.pend.observeN(s.replyAt-sent, same, &s.stats)
			same = 0
		}
		sent = rec.sent
		same++
		pos += int(rep.N)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	s.pend.observeN(s.replyAt-sent, same, &s.stats) // the records of a run share their sent time
	_, werr := s.out().Write(buf[:pos])
	u.r.Consume(pos)
	if werr != nil {
		return n, &resp.WriteError{Err: werr}
	}
	s.ended += int32(n)
	s.q.popN(uint64(n))
	return n, nil
}
