package proxy

import (
	"crypto/subtle"
	"strings"

	"redis-proxy/resp"
)

// The command handlers of the request goroutine: classify says what the
// proxy must know of a command, command dispatches it, and the handlers
// below answer it here or forward it with the record its reply needs.

// Replies the proxy gives itself, worded as Redis words them.
const (
	msgNoAuth       = "NOAUTH Authentication required."
	msgHelloNoAuth  = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	msgWrongPass    = "WRONGPASS invalid username-password pair or user is disabled."
	msgNoPassword   = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	msgTimeLimit    = "ERR proxy: command exceeded read_time_limit_ms"
	msgUplinkLost   = "ERR proxy: uplink connection lost"
	msgExecAbort    = "EXECABORT Transaction discarded because of previous errors."
	msgNotInMulti   = "ERR Command not allowed inside a transaction"
	msgMaxClients   = "ERR max number of clients reached"
	msgNoProto      = "NOPROTO unsupported protocol version"
	msgProtoVersion = "ERR Protocol version is not an integer or out of range"
)

// cmdClass is what the proxy must know about a command.
type cmdClass uint8

const (
	cmdPlain       cmdClass = iota // forwarded as it is
	cmdAuth                        // answered by the proxy (forwarded with listen.forward_auth)
	cmdHello                       // AUTH part answered (or forwarded), the rest forwarded
	cmdQuit                        // +OK, then close
	cmdReset                       // answered by the proxy, uplink dropped
	cmdSelect                      // db remembered for replay
	cmdClient                      // CLIENT SETNAME remembered, CLIENT REPLY refused
	cmdMulti                       // starts a pause unit
	cmdExec                        // ends it
	cmdDiscard                     // ends it
	cmdWatch                       // watched keys are lost with the uplink
	cmdUnwatch                     //
	cmdUnsupported                 // replies nobody asked for, or the replication stream
	cmdBlocking                    // may block: its own timeout is its time limit (blocking.go)
	cmdSubscribe                   // (P|S)(UN)SUBSCRIBE: confirmations are its reply (pubsub.go)
	cmdMonitor                     // MONITOR: a stream of lines follows its reply
	cmdScan                        // SCAN: its cursor restarts on another server (server.go)
	cmdKeyScan                     // SSCAN, HSCAN, ZSCAN: the same, after the key
	cmdScript                      // SCRIPT LOAD: the script is kept for a new server
	cmdEval                        // EVAL, EVAL_RO: likewise
)

// classify looks a command name up, ignoring case, without allocating.
func classify(name []byte) cmdClass {
	switch len(name) {
	case 4:
		switch {
		case resp.Equal(name, "AUTH"):
			return cmdAuth
		case resp.Equal(name, "QUIT"):
			return cmdQuit
		case resp.Equal(name, "EXEC"):
			return cmdExec
		case resp.Equal(name, "SYNC"):
			return cmdUnsupported
		case resp.Equal(name, "SCAN"):
			return cmdScan
		case resp.Equal(name, "EVAL"):
			return cmdEval
		}
	case 5:
		switch {
		case resp.Equal(name, "HELLO"):
			return cmdHello
		case resp.Equal(name, "RESET"):
			return cmdReset
		case resp.Equal(name, "MULTI"):
			return cmdMulti
		case resp.Equal(name, "WATCH"):
			return cmdWatch
		case resp.Equal(name, "SSCAN"), resp.Equal(name, "HSCAN"), resp.Equal(name, "ZSCAN"):
			return cmdKeyScan
		case resp.Equal(name, "PSYNC"):
			return cmdUnsupported
		}
	case 6:
		switch {
		case resp.Equal(name, "SELECT"):
			return cmdSelect
		case resp.Equal(name, "CLIENT"):
			return cmdClient
		case resp.Equal(name, "SCRIPT"):
			return cmdScript
		}
	case 7:
		switch {
		case resp.Equal(name, "DISCARD"):
			return cmdDiscard
		case resp.Equal(name, "UNWATCH"):
			return cmdUnwatch
		case resp.Equal(name, "MONITOR"):
			return cmdMonitor
		case resp.Equal(name, "EVAL_RO"):
			return cmdEval
		}
	}
	if blockingKind(name) != 0 {
		return cmdBlocking
	}
	if fam, _ := subCommand(name); fam != 0 {
		return cmdSubscribe
	}
	return cmdPlain
}

// command handles one command whose name has been read.
func (s *session) command(argc int, name []byte) error {
	s.noteCommand(name)
	c := classify(name)
	if s.p.logMessages.Load() && c != cmdPlain && c != cmdSelect && c != cmdClient && c != cmdWatch && c != cmdUnwatch && c != cmdMulti && c != cmdExec && c != cmdDiscard {
		s.logCommand(c, name, argc) // forwarded commands are logged as sent
	}
	if !s.authed && c != cmdAuth && c != cmdHello && c != cmdQuit && c != cmdReset {
		return s.replyError(msgNoAuth)
	}
	if taken, ok := s.cr.Taken(); ok {
		s.hdr = append(s.hdr[:0], taken...) // the same bytes, not encoded again
	} else {
		s.hdr = resp.AppendBulk(resp.AppendArray(s.hdr[:0], argc), name)
	}
	if s.txn.open && s.tx.failed.Load() == s.txn.id {
		// Redis refused the MULTI, or it was lost: the client was told so
		// and is in no transaction (the reply side ended its unit).
		s.txn.stop(&s.tx)
	}
	if s.txn.open && s.txn.lost && c != cmdExec && c != cmdDiscard && c != cmdQuit && c != cmdReset {
		return s.replyError(msgUplinkLost)
	}
	switch c {
	case cmdPlain:
		return s.forward(record{kind: kindPlain})
	case cmdAuth:
		return s.auth(argc)
	case cmdHello:
		return s.hello(argc)
	case cmdQuit:
		s.replyOK("OK")
		return errQuit
	case cmdReset:
		return s.reset()
	case cmdSelect:
		return s.selectDB(argc)
	case cmdClient:
		return s.client(argc)
	case cmdMulti, cmdExec, cmdDiscard:
		if s.silent() && !s.txn.open {
			// No reply tells how a transaction ends: it is not tracked
			// (and holds no pause unit).
			return s.forward(record{kind: kindPlain})
		}
		if c == cmdMulti {
			return s.multi()
		}
		return s.endMulti(c)
	case cmdWatch:
		if !s.txn.open {
			s.txn.watching = true
		}
		return s.forward(record{kind: kindPlain})
	case cmdBlocking:
		return s.blocking(blockingKind(name))
	case cmdSubscribe:
		return s.subscribe(argc, name)
	case cmdScan, cmdKeyScan:
		return s.scan(argc, c == cmdKeyScan)
	case cmdScript, cmdEval:
		return s.script(argc, c == cmdScript)
	case cmdMonitor:
		if s.txn.open {
			return s.forward(record{kind: kindPlain})
		}
		return s.forward(record{kind: kindMonitor})
	case cmdUnwatch:
		if !s.txn.open {
			s.txn.watching, s.txn.watchLost = false, false
		}
		return s.forward(record{kind: kindPlain})
	}
	return s.replyError("ERR proxy: '" + strings.ToLower(string(name)) + "' is not supported")
}

// auth answers AUTH [user] pass against listen.pass, or with
// listen.forward_auth forwards it: Redis answers, and the reply tells
// the credentials to replay.
func (s *session) auth(argc int) error {
	if s.forwardsAuth() {
		return s.forwardAuth(argc)
	}
	if argc < 2 {
		return s.replyError("ERR wrong number of arguments for 'auth' command")
	}
	if argc > 3 {
		return s.replyError("ERR syntax error")
	}
	if s.txn.open {
		s.txn.dirty = true
		return s.replyError(msgNotInMulti)
	}
	if err := s.readArgs(); err != nil {
		return s.argFailed(err)
	}
	var user []byte
	pass := s.args[0]
	if argc == 3 {
		user, pass = s.args[0], s.args[1]
	}
	if msg := s.checkPass(user, pass, argc == 2); msg != "" {
		return s.reply(resp.AppendError(s.hdr[:0], msg))
	}
	return s.reply(resp.AppendSimple(s.hdr[:0], "OK"))
}

// forwardAuth forwards AUTH as the client sent it. Inside MULTI it is
// only queued: nothing is learnt from it.
func (s *session) forwardAuth(argc int) error {
	if s.txn.open || (argc != 2 && argc != 3) {
		return s.forward(record{kind: kindPlain}) // Redis answers
	}
	if err := s.readArgs(); err != nil {
		return s.argFailed(err)
	}
	var user []byte
	pass := s.args[0]
	if argc == 3 {
		user, pass = s.args[0], s.args[1]
	}
	for _, a := range s.args {
		s.hdr = resp.AppendBulk(s.hdr, a)
	}
	s.setAuthed() // Redis is the judge
	return s.forward(record{kind: kindAuth}.with(credsVal(user, pass)))
}

// checkPass checks a client's credentials; "" means accepted, otherwise
// the error Redis would give.
func (s *session) checkPass(user, pass []byte, passOnly bool) string {
	want := s.listenPass()
	if want == "" {
		if passOnly {
			return msgNoPassword
		}
		if string(user) == "default" {
			s.setAuthed()
			return ""
		}
		return msgWrongPass
	}
	okUser := user == nil || string(user) == "default"
	okPass := subtle.ConstantTimeCompare(pass, []byte(want)) == 1
	if !okUser || !okPass {
		return msgWrongPass
	}
	s.setAuthed()
	return ""
}

func (s *session) setAuthed() {
	if !s.authed {
		s.authed = true
		s.cr.SetLimits(resp.DefaultLimits)
	}
}

// hello handles HELLO [protover [AUTH user pass] [SETNAME name]]: the AUTH
// part is answered here (with listen.forward_auth, forwarded too), the
// rest is forwarded.
func (s *session) hello(argc int) error {
	if s.txn.open {
		s.txn.dirty = true
		return s.replyError(msgNotInMulti)
	}
	if err := s.readArgs(); err != nil {
		return s.argFailed(err)
	}
	var proto int64
	if len(s.args) > 0 {
		v, ok := resp.ParseInt(s.args[0])
		if !ok {
			return s.reply(resp.AppendError(s.hdr[:0], msgProtoVersion))
		}
		if v < 2 || v > 3 {
			return s.reply(resp.AppendError(s.hdr[:0], msgNoProto))
		}
		proto = v
	}
	var user, pass, name []byte
	hasAuth, hasName := false, false
	for i := 1; i < len(s.args); i++ {
		left := len(s.args) - 1 - i
		switch {
		case resp.Equal(s.args[i], "AUTH") && left >= 2:
			user, pass, hasAuth = s.args[i+1], s.args[i+2], true
			i += 2
		case resp.Equal(s.args[i], "SETNAME") && left >= 1:
			name, hasName = s.args[i+1], true
			i++
		default:
			return s.reply(resp.AppendError(s.hdr[:0], "ERR Syntax error in HELLO option '"+string(s.args[i])+"'"))
		}
	}
	fwdAuth := hasAuth && s.forwardsAuth()
	if fwdAuth {
		s.setAuthed() // Redis is the judge
	} else if hasAuth {
		if msg := s.checkPass(user, pass, false); msg != "" {
			return s.reply(resp.AppendError(s.hdr[:0], msg))
		}
	} else if !s.authed {
		return s.reply(resp.AppendError(s.hdr[:0], msgHelloNoAuth))
	}
	n := 1
	if proto > 0 {
		n++
	}
	if hasName {
		n += 2
	}
	if fwdAuth {
		n += 3
	}
	s.hdr = resp.AppendBulkString(resp.AppendArray(s.hdr[:0], n), "HELLO")
	if proto > 0 {
		s.hdr = resp.AppendBulk(s.hdr, s.args[0])
	}
	rec := record{kind: kindHello, arg: int32(proto)}
	if fwdAuth {
		s.hdr = resp.AppendBulk(resp.AppendBulk(resp.AppendBulkString(s.hdr, "AUTH"), user), pass)
		rec.flags |= flagAuth
	}
	if hasName {
		s.hdr = resp.AppendBulk(resp.AppendBulkString(s.hdr, "SETNAME"), name)
		rec.flags |= flagName
		rec = rec.with(string(name))
	}
	if fwdAuth {
		rec = rec.with(rec.val() + "\x00" + credsVal(user, pass))
	}
	return s.forward(rec)
}

// selectDB forwards SELECT and, on success, remembers the db for replay
// (inside MULTI: if EXEC ran it).
func (s *session) selectDB(argc int) error {
	if argc != 2 {
		return s.forward(record{kind: kindPlain})
	}
	a, err := s.take()
	if err != nil {
		return s.forwardIfTooLong(err)
	}
	db, ok := resp.ParseInt(a)
	if !ok || db < 0 || db > 1<<31-1 {
		return s.forward(record{kind: kindPlain})
	}
	return s.forward(record{kind: kindSelect, arg: int32(db)})
}

// client inspects CLIENT's subcommand: REPLY changes which commands get
// a reply; SETNAME, SETINFO, NO-EVICT and TRACKING are remembered for
// replay.
func (s *session) client(argc int) error {
	if argc < 2 {
		return s.forward(record{kind: kindPlain})
	}
	sub, err := s.take()
	if err != nil {
		return s.forwardIfTooLong(err)
	}
	switch {
	case resp.Equal(sub, "REPLY") && argc == 3 && !s.txn.open:
		mode, err := s.take()
		if err != nil {
			return s.forwardIfTooLong(err)
		}
		switch {
		case resp.Equal(mode, "ON"):
			s.replyOff, s.replySkip = false, 0 // answered +OK
		case resp.Equal(mode, "OFF"):
			s.replyOff = true
		case resp.Equal(mode, "SKIP"):
			if !s.replyOff {
				s.replySkip = 2 // itself and the next command
			}
		}
		return s.forward(record{kind: kindPlain})
	case resp.Equal(sub, "TRACKING") && !s.txn.open:
		if err := s.readArgs(); err != nil {
			return s.argFailed(err)
		}
		for _, a := range s.args {
			s.hdr = resp.AppendBulk(s.hdr, a)
		}
		t, redirect, ok := s.p.trackingArgs(s.args)
		if !ok {
			return s.forward(record{kind: kindPlain}) // Redis answers
		}
		rec := record{kind: kindTracking}.with(t.encode())
		if t.on {
			rec.arg = 1
		}
		if redirect != 0 {
			if rec.x.peer = s.p.sessionByUplinkID(redirect); rec.x.peer == nil {
				// Not a client of this proxy: followed as given, never moved.
				return s.forward(record{kind: kindPlain})
			}
		}
		return s.forward(rec)
	case resp.Equal(sub, "NO-EVICT") && argc == 3 && !s.txn.open:
		mode, err := s.take()
		if err != nil {
			return s.forwardIfTooLong(err)
		}
		rec := record{kind: kindNoEvict}
		switch {
		case resp.Equal(mode, "ON"):
			rec.arg = 1
		case resp.Equal(mode, "OFF"):
		default:
			rec.kind = kindPlain // Redis answers the error
		}
		return s.forward(rec)
	case resp.Equal(sub, "SETNAME") && argc == 3:
		name, err := s.take()
		if err != nil {
			return s.forwardIfTooLong(err)
		}
		return s.forward(record{kind: kindSetName}.with(string(name)))
	case resp.Equal(sub, "SETINFO") && argc == 4 && !s.txn.open:
		attr, err := s.take()
		if err != nil {
			return s.forwardIfTooLong(err)
		}
		which := int32(0)
		switch {
		case resp.Equal(attr, "LIB-NAME"):
			which = setInfoLibName
		case resp.Equal(attr, "LIB-VER"):
			which = setInfoLibVer
		default:
			return s.forward(record{kind: kindPlain}) // Redis answers the error
		}
		val, err := s.take()
		if err != nil {
			return s.forwardIfTooLong(err)
		}
		return s.forward(record{kind: kindSetInfo, arg: which}.with(string(val)))
	}
	return s.forward(record{kind: kindPlain})
}

// Which CLIENT SETINFO attribute a kindSetInfo record sets.
const (
	setInfoLibName int32 = iota + 1
	setInfoLibVer
)

// multi starts a transaction: one pause unit until EXEC or DISCARD.
func (s *session) multi() error {
	if s.txn.open {
		return s.forward(record{kind: kindPlain}) // Redis answers the nesting error
	}
	id := s.txn.next()
	t := s.q.tail.Load()
	if err := s.forward(record{kind: kindMulti, arg: id}); err != nil || s.q.tail.Load() == t {
		return err // not sent (the uplink is unavailable): no transaction, no unit
	}
	s.txn.start(&s.tx)
	return nil
}

// endMulti handles EXEC and DISCARD.
func (s *session) endMulti(c cmdClass) error {
	if !s.txn.open {
		return s.forward(record{kind: kindPlain}) // Redis answers "without MULTI"
	}
	id, fx := s.txn.id, s.txn.fx
	lost, dirty, watchLost := s.txn.lost || !s.uplinkOK(), s.txn.dirty, s.txn.watchLost
	// The transaction ends here whatever happens next.
	s.txn.stop(&s.tx)
	if lost {
		// No MULTI is open on the uplink: answer here.
		var err error
		if c == cmdDiscard {
			err = s.replyOK("OK")
		} else {
			err = s.replyError(msgExecAbort)
		}
		s.endLocally(id)
		return err
	}
	rec := record{kind: kindPlain, flags: flagEndsTx, arg: id}
	if c == cmdExec && len(fx) > 0 {
		rec.kind, rec.x = kindExecLearn, &recX{fx: fx}
	}
	if c == cmdExec && (dirty || watchLost) {
		// Send DISCARD instead, and answer as Redis would have.
		if err := s.cr.SkipArgs(); err != nil {
			return s.readFailed(err)
		}
		s.hdr = resp.AppendCommand(s.hdr[:0], "DISCARD")
		rec.kind = kindExecNil
		if dirty {
			rec.kind = kindExecAbort
		}
	}
	t := s.q.tail.Load()
	err := s.forwardInTx(rec)
	if s.q.tail.Load() == t {
		s.endLocally(id) // not sent: the transaction is over all the same
	}
	return err
}

// forwardInTx forwards a command inside the transaction whose unit is
// already held (forward must not open a new one).
func (s *session) forwardInTx(rec record) error {
	s.txn.open = true
	err := s.forward(rec)
	s.txn.open = false
	return err
}

// endLocally ends the unit of transaction id when none of its ending
// commands reached the ring, unless its MULTI failed (the reply side
// ended it then). Every reply due has been delivered before (the local
// reply waited for them), so the reply side is done with the transaction.
func (s *session) endLocally(id int32) {
	if s.q.empty() && s.tx.failed.Load() != id {
		s.p.gate.leave(&s.hold, 1)
	}
}

// reset answers RESET here: the uplink connection is dropped (the next
// command dials a fresh one) and the session is as new (with
// listen.forward_auth, the client's credentials are forgotten, as Redis's
// RESET deauthenticates).
func (s *session) reset() error {
	if err := s.cr.SkipArgs(); err != nil {
		return s.readFailed(err)
	}
	s.flushUp()
	if err := s.q.waitEmpty(s.done); err != nil {
		return err
	}
	if s.txn.open {
		s.endLocally(s.txn.id)
	}
	s.txn.stop(&s.tx)
	s.retire()
	s.st = newReplay()
	s.pinned.Store(false)
	s.setRedirect(nil)
	s.tprotoRESP3.Store(false)
	s.publishView()
	if s.listenPass() != "" {
		s.authed = false
		s.cr.SetLimits(resp.UnauthenticatedLimits)
	}
	return s.reply(resp.AppendSimple(s.hdr[:0], "RESET"))
}

// subscribe forwards a (un)subscribe command; its reply is one
// confirmation per name (argument-less unsubscribe: one per subscription
// of its family, or one). Inside MULTI it is an ordinary command (its
// confirmations are elements of EXEC's reply) and nothing is learnt.
func (s *session) subscribe(argc int, name []byte) error {
	if s.txn.open {
		return s.forward(record{kind: kindPlain})
	}
	_, on := subCommand(name)
	n := int32(argc - 1)
	if n == 0 {
		if on {
			return s.forward(record{kind: kindPlain}) // Redis answers the arity error
		}
		n = -1
	}
	return s.forward(record{kind: kindSub, arg: n})
}
