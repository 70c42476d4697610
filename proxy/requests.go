package proxy

import (
	"context"
	"errors"
	"io"
	"time"

	"redis-proxy/resp"
)

// The request goroutine: it reads the client's commands, forwards them to
// the uplink connection (queueing a record for each), and writes the
// proxy's own replies after every reply due before them.

func (s *session) requests() error {
	for {
		if s.cr.Buffered() == 0 {
			// The batch is over: send what was forwarded before blocking on
			// the client, and let the next command dial again.
			s.dialErr, s.heldOnce = nil, false
			s.flushUp()
			if s.conn.movePending {
				s.conn.movePending = false
				s.moveNow()
			}
			s.conn.boundary = true
			if err := s.waitClient(); err != nil {
				if err == errParked {
					return err
				}
				if errors.Is(err, errRedial) {
					s.moveNow()
					continue
				}
				return s.readFailed(err)
			}
		}
		if s.forwardRun() > 0 {
			continue
		}
		argc, err := s.cr.ReadCommand()
		if err != nil {
			if errors.Is(err, errRedial) && s.cr.Buffered() == 0 {
				s.moveNow() // TLS: the wake comes through the reader
				continue
			}
			return s.readFailed(err)
		}
		s.pend.commands++ // published before it is flushed to the uplink
		name, err := s.cr.Arg()
		if err == resp.ErrArgTooLong {
			if err := s.replyError("ERR unknown command, with args beginning with: "); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return s.readFailed(err)
		}
		if err := s.command(argc, name); err != nil {
			return err
		}
	}
}

// waitClient waits for the client's next batch holding no buffer (plain
// TCP), then takes a pooled reader for it.
func (s *session) waitClient() error {
	if s.rawc == nil {
		return nil
	}
	if s.cbr != nil {
		if _, ok := s.cr.Detach(); !ok {
			return nil
		}
		putReader(s.cbr)
		s.cbr = nil
	}
	slab, n, err := s.rawc.read(s.conn.timedOut, s.resumeReq)
	if err != nil {
		return err
	}
	s.conn.lastRead = s.p.now()
	s.clock = s.conn.lastRead
	s.conn.boundary = false
	s.cpre.set(slab, n, s.conn)
	s.cbr = getReader(&s.cpre)
	s.cr.Reset(s.cbr)
	s.cbr.Peek(n) // into the buffer, for a run (runs.go): the slab gives all n at once
	return nil
}

// readFailed ends the session after a client read error: a protocol error
// is answered as Redis answers it; at the end of the input the replies
// still due are delivered first.
func (s *session) readFailed(err error) error {
	var pe *resp.ProtocolError
	switch {
	case errors.As(err, &pe):
		s.reply(resp.AppendError(s.hdr[:0], "ERR "+pe.Error()))
		return err
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		s.flushUp()
		if s.q.waitEmpty(s.done) == nil {
			// Every reply is popped; the reply goroutine holds outMu from
			// forwarding a batch until it is flushed: once we have it,
			// they have all gone out.
			s.outMu.Lock()
			s.flushOut()
			s.outMu.Unlock()
		}
		return io.EOF
	}
	return err
}

// inputCut ends the session when the client's input failed (malformed,
// or ended) half-way through a command already queued and partly
// forwarded: Redis will never answer it, so the replies due before it are
// delivered, then the protocol error as Redis gives it; the uplink
// connection, which holds half a command, closes with the session.
func (s *session) inputCut(err error) error {
	var pe *resp.ProtocolError
	if !errors.As(err, &pe) && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	s.flushUp()
	if werr := s.q.waitHead(s.q.tail.Load()-1, s.done); werr != nil {
		return werr
	}
	// The replies due are popped; holding outMu means the reply goroutine
	// has flushed them too (it keeps outMu from forwarding to flushing).
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if pe == nil {
		s.flushOut()
		return io.EOF
	}
	s.stats.errors.Add(1)
	s.out().Write(resp.AppendError(s.hdr[:0], "ERR "+pe.Error()))
	s.flushOut()
	return err
}

// reply writes one of the proxy's own replies after every reply due
// before it, and flushes.
func (s *session) reply(b []byte) error {
	if s.silent() { // CLIENT REPLY OFF or SKIP: no reply, from Redis or from us
		if s.replySkip > 0 && !s.replyOff && s.up != nil {
			// Redis waits to skip the reply to the next command it sees:
			// this one is answered here, so a PING takes the skip.
			s.up.w().Write(resp.AppendCommand(s.hdr[:0], "PING"))
		}
		s.replySkip = max(s.replySkip-1, 0)
		return nil
	}
	s.hdr = b
	s.flushUp()
	if err := s.q.waitEmpty(s.done); err != nil {
		return err
	}
	if b[0] == '-' {
		s.stats.errors.Add(1)
	}
	s.outMu.Lock()
	s.out().Write(b)
	err := s.flushOut()
	s.outMu.Unlock()
	if s.p.logMessages.Load() {
		s.logInfo("reply", "reply", truncate(string(b), 200), "local", true)
	}
	return err
}

// replyError skips the rest of the command and answers it with msg.
func (s *session) replyError(msg string) error {
	if err := s.cr.SkipArgs(); err != nil {
		return s.readFailed(err)
	}
	return s.reply(resp.AppendError(s.hdr[:0], msg))
}

// replyOK skips the rest of the command and answers it with +ok.
func (s *session) replyOK(ok string) error {
	if err := s.cr.SkipArgs(); err != nil {
		return s.readFailed(err)
	}
	return s.reply(resp.AppendSimple(s.hdr[:0], ok))
}

// flushUp sends what was forwarded to the uplink so far.
func (s *session) flushUp() {
	s.pend.publishCommands(&s.stats)
	if s.up != nil {
		if err := s.up.flush(); err != nil {
			s.retire()
		}
	}
}

// argFailed answers a command whose argument is too long to inspect
// (resp.ErrArgTooLong) with an error and goes on; other errors end the
// session as readFailed says.
func (s *session) argFailed(err error) error {
	if errors.Is(err, resp.ErrArgTooLong) {
		return s.replyError("ERR proxy: argument too long")
	}
	return s.readFailed(err)
}

// forwardIfTooLong forwards a command whose argument is too long to
// inspect as it is (streamed; nothing of it is remembered), and ends the
// session on other errors.
func (s *session) forwardIfTooLong(err error) error {
	if errors.Is(err, resp.ErrArgTooLong) {
		return s.forward(record{kind: kindPlain})
	}
	return s.readFailed(err)
}

// take reads the next argument and appends it to the header being built
// for the uplink (the argument is valid until the next read).
func (s *session) take() ([]byte, error) {
	a, err := s.cr.Arg()
	if err == nil {
		s.hdr = resp.AppendBulk(s.hdr, a)
	}
	return a, err
}

// readArgs reads the rest of the command into s.args (copies).
func (s *session) readArgs() error {
	s.args = s.args[:0]
	s.argBuf = s.argBuf[:0]
	var ends []int
	for s.cr.Args() > 0 {
		a, err := s.cr.Arg()
		if err != nil {
			return err
		}
		s.argBuf = append(s.argBuf, a...)
		ends = append(ends, len(s.argBuf))
	}
	start := 0
	for _, e := range ends {
		s.args = append(s.args, s.argBuf[start:e:e])
		start = e
	}
	return nil
}

// holdForFailover: when the proxy follows a primary elected elsewhere
// (Sentinel, candidates) and a dial to the uplink fails, the command does
// not fail at once: the hold starts now (not at the next health check),
// and the command is tried once more after it: on the new primary, or
// with the uplink-unavailable error if none is known within the limit.
func (s *session) holdForFailover() bool {
	cfg := s.p.conf().cfg
	if s.heldOnce || followMode(cfg.Uplink.Sentinel.Enabled(), cfg.Uplink.Candidates) == "" {
		return false
	}
	s.heldOnce = true
	if !s.p.follow.holdNow(time.Second) {
		return false
	}
	s.dialErr = nil
	return true
}

// silent reports whether the client asked for no reply to its next
// command (CLIENT REPLY OFF or SKIP).
func (s *session) silent() bool { return s.replyOff || s.replySkip > 0 }

// forward sends the command (header and the first arguments already in
// s.hdr, the rest still to read) to the uplink and queues its record.
// Outside a transaction the command is a pause unit of its own; a MULTI
// starts one that its EXEC or DISCARD ends.
func (s *session) forward(rec record) error {
	if s.txn.open && !s.uplinkOK() {
		// The uplink connection carrying this transaction is gone: nothing
		// more of the block may run elsewhere.
		s.txn.lost = true
		return s.replyError(msgUplinkLost)
	}
	startsUnit := !s.txn.open
	if startsUnit {
		if err := s.enter(); err != nil {
			return err
		}
		if rec.kind != kindMulti {
			rec.flags |= flagEndsUnit
		}
	}
	var err error
	if creds, ok := rec.creds(); ok {
		err = s.redialAs(creds)
	} else {
		err = s.ensureUplink()
	}
	if err != nil {
		if startsUnit {
			s.p.gate.leave(&s.hold, 1) // nothing was sent
		}
		if errors.Is(err, errSessionClosed) {
			return err
		}
		if re := (*replayError)(nil); errors.As(err, &re) && re.client {
			// The client's own credentials no longer open a connection:
			// it hears it as Redis said it, and runs as nobody else.
			return s.replyError(re.line)
		}
		if s.holdForFailover() {
			return s.forward(rec) // once more, after the hold
		}
		return s.replyError("ERR proxy: uplink unavailable: " + err.Error())
	}
	if s.q.full() {
		s.flushUp()
		if err := s.q.waitSpace(s.done); err != nil {
			return err
		}
		s.clock = s.p.now()
	}
	u := s.up
	if rec.flags&flagScan != 0 {
		s.fixCursor()
	}
	silent := s.silent()
	if silent {
		// CLIENT REPLY OFF or SKIP: Redis sends no reply, so no record
		// waits for one, and the unit ends once it is sent (below).
		s.replySkip = max(s.replySkip-1, 0)
		rec.flags &^= flagBlocks
	} else if s.txn.open && rec.flags&flagEndsTx == 0 {
		s.txn.queue(rec)
		rec.kind = kindPlain // learnt from EXEC's reply, not its own
	}
	rec.sent = s.clock
	if rec.flags&flagBlocks != 0 {
		s.blocked.Add(1)
	}
	if !silent {
		s.notePush(s.q.tail.Load())
		s.q.push(rec)
	}
	// No defer here: forward has too many returns for the compiler to
	// open-code one, and a defer it cannot is a cost on every command.
	var w io.Writer = u.w()
	var c *capture
	if s.p.logMessages.Load() {
		c = &capture{w: w}
		w = c
	}
	err = s.send(u, w)
	if c != nil {
		s.logInfo("command", "cmd", renderCommand(c.buf, c.more))
	}
	if silent && startsUnit {
		s.p.gate.leave(&s.hold, 1)
	}
	return err
}

// send writes the command (s.hdr, then what is left to read) to w, on its
// way to u, and flushes at the end of the batch.
func (s *session) send(u *uplink, w io.Writer) error {
	if _, err := w.Write(s.hdr); err != nil {
		s.retire()
		return nil
	}
	if err := s.cr.CopyRest(w); err != nil {
		var we *resp.WriteError
		if errors.As(err, &we) {
			if err := s.cr.SkipArgs(); err != nil {
				s.retire()
				return s.readFailed(err)
			}
			s.retire()
			return nil
		}
		return s.inputCut(err)
	}
	s.sentTo(u)
	return nil
}

// sentTo ends the sending of commands to u: at the end of the batch they
// are flushed; a connection that failed, or that the reply side let go
// of, is handed over, so that their records are answered.
func (s *session) sentTo(u *uplink) {
	if s.cr.Buffered() == 0 {
		s.pend.publishCommands(&s.stats)
		if err := u.flush(); err != nil {
			s.retire()
			return
		}
	}
	if u.dead.Load() {
		// The reply goroutine may have given up on this connection before
		// the records were queued.
		s.retire()
	}
}

// enter passes the pause gate for one unit. A command that waited at a
// closed gate is dropped, with its session, when its client closed the
// connection meanwhile: it must never reach Redis after the client gave
// up on it (it may have retried elsewhere).
func (s *session) enter() error {
	waited := false
	err := s.p.gate.enter(&s.hold, s.done, func() {
		waited = true
		s.obs.waiting.Store(true)
		s.flushUp()
	})
	if waited {
		s.obs.waiting.Store(false)
	}
	if err != nil {
		return err
	}
	if waited {
		s.clock = s.p.now()
		if peerClosed(s.conn.Conn) {
			s.p.gate.leave(&s.hold, 1)
			s.readFailed(io.EOF) // the replies due before it still go out
			return errClientGone
		}
	}
	return nil
}

// errRedial wakes the request goroutine of a session waiting for its
// client when it must move to a new uplink connection at once.
var errRedial = errors.New("move to a new uplink connection")

// moveNow dials a new uplink connection for a session that needs one now
// (subscribed, or MONITOR) while its client sends nothing; the new
// connection subscribes again (replay.go). When Redis cannot be reached
// it tries again at growing intervals, until it can or the client sends
// a command.
func (s *session) moveNow() {
	s.redial.Store(false)
	s.dialErr = nil
	if s.repoint.Swap(false) {
		s.retire() // its REDIRECT names a connection that is gone
	}
	old := s.up
	err := s.ensureUplink()
	switch {
	case err == nil:
		if s.up == old || s.up.swallow == 0 {
			s.finishMove() // nothing to confirm
		}
		s.moveWait = 0
	case errors.Is(err, errSessionClosed):
	default:
		s.finishMove() // whoever waits for it goes on; the retries go on
		s.moveWait = min(max(2*s.moveWait, 50*time.Millisecond), time.Second)
		s.redial.Store(true)
		s.conn.Conn.SetReadDeadline(time.Now().Add(s.moveWait))
	}
}

var errClientGone = errors.New("client closed the connection while its command waited at the pause")

// retire closes the current uplink connection and waits until the reply
// goroutine has let go of it (and answered every record sent on it).
func (s *session) retire() {
	u := s.up
	if u == nil {
		return
	}
	s.up = nil
	u.conn.Close()
	u.dropWriter()
	s.handOff(handoff{first: s.q.tail.Load()})
}

// uplinkOK reports whether s.up is live and dialed for the current target.
func (s *session) uplinkOK() bool {
	u := s.up
	return u != nil && !u.dead.Load() && s.current(u)
}

// ensureUplink makes s.up a live connection to the current target,
// dialing (and replaying the session state) when needed.
func (s *session) ensureUplink() error {
	if s.uplinkOK() {
		return nil
	}
	conf := s.p.conf()
	if s.up != nil {
		if err := s.leaveReplica(); err != nil {
			return err
		}
		s.retire()
		if s.closing() {
			return errSessionClosed
		}
	}
	s.txn.uplinkChanged()
	if s.dialErr != nil {
		return s.dialErr
	}
	st := s.st
	st.forwardAuth = s.forwardsAuth()
	return s.dialUplink(conf, st)
}

// redialAs replaces the uplink connection with one opened with creds, a
// forwarded AUTH's (listen.forward_auth): whatever the client was, a
// refusal is Redis's answer to this AUTH, and the next command opens a
// connection with the last accepted credentials again. Accepted, the AUTH
// itself follows on the new connection and its reply teaches them.
func (s *session) redialAs(creds string) error {
	if s.up != nil {
		// The replies due on the old connection come first.
		s.flushUp()
		if err := s.q.waitEmpty(s.done); err != nil {
			return err
		}
		s.retire()
		if s.closing() {
			return errSessionClosed
		}
	}
	s.txn.uplinkChanged()
	s.dialErr = nil
	st := s.st
	st.setCreds(creds)
	st.forwardAuth = true
	return s.dialUplink(s.p.conf(), st)
}

// dialUplink dials conf's target with st replayed and hands the
// connection to the reply goroutine.
func (s *session) dialUplink(conf *runtimeConfig, st replay) error {
	st.replyOff, st.replySkip = s.replyOff, s.replySkip > 0
	st.checkServer = s.p.scripts.known()
	s.awaitRedirectTarget(conf.target.gen, conf.limit)
	var u *uplink
	var err error
	for range maxDialTries {
		var t *target
		var rep *replica
		if t, rep, err = s.chooseTarget(conf); err != nil {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), conf.limit)
		u, err = t.dial(ctx, st, s.wrapUplink)
		cancel()
		if err == nil {
			u.rep = rep
			break
		}
		if re := (*replayError)(nil); !errors.As(err, &re) || !re.client {
			s.p.dialFailed(s, t, rep, err) // a client's refused credentials are no uplink failure
		}
		if !s.p.replicaDialFailed(rep, err) {
			break // the primary: no other to try
		}
	}
	if err != nil {
		s.dialErr = err
		return err
	}
	s.carryScripts(u, conf.limit)
	s.clock = s.p.now()
	u.conn.SetReadDeadline(s.p.wall(s.clock + conf.limit.Nanoseconds()))
	s.up = u
	s.cur.Store(u)
	s.upID.Store(u.id)
	if s.closing() {
		u.conn.Close()
		return errSessionClosed
	}
	if err := s.handOff(handoff{u: u, first: s.q.tail.Load()}); err != nil {
		return err
	}
	s.connected.notify()
	if s.trackers.Load() > 0 {
		s.repointTrackers() // their REDIRECT must name this new connection
	}
	return nil
}
