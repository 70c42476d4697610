package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"redis-proxy/resp"
)

// Replies the proxy gives itself (CONTRACT.md §3).
const (
	msgNoAuth       = "NOAUTH Authentication required."
	msgHelloNoAuth  = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	msgWrongPass    = "WRONGPASS invalid username-password pair or user is disabled."
	msgNoPassword   = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	msgTimeLimit    = "ERR proxy: command exceeded read_time_limit_ms"
	msgUplinkLost   = "ERR proxy: uplink connection lost"
	msgExecAbort    = "EXECABORT Transaction discarded because of previous errors."
	msgNotInMulti   = "ERR Command not allowed inside a transaction"
	msgMaxClients   = "ERR max number of clients reached"
	msgNoProto      = "NOPROTO sorry, this protocol version is not supported."
	msgProtoVersion = "ERR Protocol version is not an integer or out of range"
)

// Why a session ended, for the close log line.
var (
	errQuit        = errors.New("client quit")
	errTimeLimit   = errors.New("time limit")
	errIdle        = errors.New("idle timeout")
	errUnsolicited = errors.New("uplink sent a reply nobody asked for")
)

// handoff gives the reply goroutine its next uplink (nil: none yet), and
// the ring position from which records belong to it: older ones were sent
// to a dead connection and are answered with an error.
type handoff struct {
	u     *uplink
	first uint64
}

// session is one client connection and its uplink connection, served by a
// goroutine pair: requests (client -> uplink, and the proxy's own replies)
// and replies (uplink -> client). They share the ring of records, the
// client writer (under outMu) and atomics; nothing else.
type session struct {
	p      *Proxy
	id     uint64
	conn   *clientConn
	remote string

	rawc  *sockWait // the client's socket when plain TCP: idle waits hold no buffer
	cpre  preload
	cbr   *bufio.Reader // nil while idle (pooled)
	cr    *resp.Reader
	outMu sync.Mutex    // guards cw
	cw    *bufio.Writer // nil between batches (pooled); see out
	q     *ring

	done      chan struct{}
	closeOnce sync.Once
	reason    error
	upCh      chan handoff
	cur       atomic.Pointer[uplink] // for closing from outside
	units     atomic.Int32           // pause units in flight: a command, or a MULTI block
	ended     int32                  // units whose replies await the next flush (reply goroutine, under outMu)
	inMultiA  atomic.Bool            // inside MULTI, for the pause's straggler check
	// A transaction holds one pause unit from MULTI to its end. Its end may
	// be learnt by either goroutine (an EXEC or DISCARD answered, a MULTI
	// refused or lost, or answered here); whoever clears txOpen first ends
	// the unit, so it is never ended twice.
	txOpen   atomic.Int32 // id of the transaction whose unit is held; 0: none
	txFailed atomic.Int32 // id of a transaction whose MULTI failed (reply side)

	// The request goroutine's own state.
	up        *uplink
	authed    bool
	inMulti   bool
	txID      int32 // the current (or last) transaction's id
	multiLost bool  // the uplink died inside MULTI: the block fails at EXEC
	txDirty   bool  // the proxy refused a command inside MULTI: EXECABORT
	watching  bool
	watchLost bool // the uplink changed while WATCH was active: EXEC aborts
	dialErr   error
	clock     int64 // proxy clock at the last read from the client or the last wait: a command's sent time
	hdr       []byte
	argBuf    []byte
	args      [][]byte

	// The reply goroutine's own state. The request goroutine reads st only
	// while the reply goroutine waits for an uplink (after a handoff).
	st      replay
	nameMu  sync.Mutex
	names   []string // CLIENT SETNAME / HELLO SETNAME names awaiting their reply
	replyAt int64

	stats sessionStats
}

func (p *Proxy) newSession(conn net.Conn) *session {
	s := &session{
		p:      p,
		id:     p.nextID.Add(1),
		remote: conn.RemoteAddr().String(),
		q:      newRing(ringSize),
		done:   make(chan struct{}),
		upCh:   make(chan handoff),
		st:     replay{proto: 2},
	}
	s.conn = &clientConn{Conn: conn, s: s}
	s.rawc = newSockWait(conn)
	if s.rawc == nil {
		s.cbr = bufio.NewReaderSize(s.conn, ioBufSize) // TLS: its own, for good
	}
	s.cr = resp.NewReader(s.cbr)
	rc := p.rc()
	s.authed = rc.cfg.Listen.Pass == ""
	if !s.authed {
		s.cr.SetLimits(resp.UnauthenticatedLimits)
	}
	return s
}

// serve runs the session until it ends; it is the request goroutine and
// starts the reply goroutine.
func (s *session) serve() {
	var wg sync.WaitGroup
	start := time.Now()
	err := s.handshake()
	s.conn.lastRead = s.p.now()
	if idle := s.p.rc().idle; idle > 0 {
		s.conn.Conn.SetReadDeadline(time.Now().Add(idle))
	}
	if err == nil {
		s.logInfo("client connected")
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.replies()
		}()
		err = s.requests()
	}
	s.close(err)
	wg.Wait()
	if u := s.up; u != nil {
		u.conn.Close()
	}
	if s.units.Swap(0) > 0 {
		s.p.unitDone()
	}
	s.p.unregister(s)
	reason := s.reason
	if reason == nil {
		reason = io.EOF
	}
	s.logInfo("client disconnected", "reason", closeReason(reason), "duration_ms", time.Since(start).Milliseconds())
}

func closeReason(err error) string {
	var pe *resp.ProtocolError
	switch {
	case errors.Is(err, io.EOF):
		return "client closed"
	case errors.As(err, &pe):
		return "protocol error: " + pe.Error()
	case errors.Is(err, net.ErrClosed):
		return "connection closed"
	}
	return err.Error()
}

// handshake completes TLS for a TLS listener, within a bounded time.
func (s *session) handshake() error {
	tc, ok := s.conn.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	return nil
}

// Log lines about a session name its client.
func (s *session) logInfo(msg string, args ...any)  { s.logAt(slog.LevelInfo, msg, args) }
func (s *session) logWarn(msg string, args ...any)  { s.logAt(slog.LevelWarn, msg, args) }
func (s *session) logDebug(msg string, args ...any) { s.logAt(slog.LevelDebug, msg, args) }

func (s *session) logAt(level slog.Level, msg string, args []any) {
	if !s.p.log.Enabled(context.Background(), level) {
		return
	}
	s.p.log.Log(context.Background(), level, msg, append([]any{"client", s.remote, "id", s.id}, args...)...)
}

// close ends the session once: both goroutines see done, and both
// connections are closed so that nothing stays blocked.
func (s *session) close(reason error) {
	s.closeOnce.Do(func() {
		s.reason = reason
		close(s.done)
		s.conn.Close()
		if u := s.cur.Load(); u != nil {
			u.conn.Close()
		}
	})
}

func (s *session) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ---- the request goroutine ----

func (s *session) requests() error {
	for {
		if s.cr.Buffered() == 0 {
			// The batch is over: send what was forwarded before blocking on
			// the client, and let the next command dial again.
			s.dialErr = nil
			s.flushUp()
			if err := s.waitClient(); err != nil {
				return s.readFailed(err)
			}
		}
		argc, err := s.cr.ReadCommand()
		if err != nil {
			return s.readFailed(err)
		}
		s.stats.commands.Add(1)
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
	slab, n, err := s.rawc.read(s.conn.timedOut)
	if err != nil {
		return err
	}
	s.conn.lastRead = s.p.now()
	s.clock = s.conn.lastRead
	s.cpre.set(slab, n, s.conn)
	s.cbr = getReader(&s.cpre)
	s.cr.Reset(s.cbr)
	return nil
}

// out returns the client writer, taking a pooled one for the batch.
// Under outMu.
func (s *session) out() *bufio.Writer {
	if s.cw == nil {
		s.cw = getWriter(s.conn)
	}
	return s.cw
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

func (s *session) replyError(msg string) error {
	if err := s.cr.SkipArgs(); err != nil {
		return s.readFailed(err)
	}
	return s.reply(resp.AppendError(s.hdr[:0], msg))
}

// flushUp sends what was forwarded to the uplink so far.
func (s *session) flushUp() {
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

// command handles one command whose name has been read.
func (s *session) command(argc int, name []byte) error {
	c := classify(name)
	if s.p.logMessages.Load() && c != cmdPlain && c != cmdSelect && c != cmdClient && c != cmdWatch && c != cmdUnwatch && c != cmdMulti && c != cmdExec && c != cmdDiscard {
		s.logCommand(c, name, argc) // forwarded commands are logged as sent
	}
	if !s.authed && c != cmdAuth && c != cmdHello && c != cmdQuit && c != cmdReset {
		return s.replyError(msgNoAuth)
	}
	s.hdr = resp.AppendBulk(resp.AppendArray(s.hdr[:0], argc), name)
	if s.inMulti && s.txFailed.Load() == s.txID {
		// Redis refused the MULTI, or it was lost: the client was told so
		// and is in no transaction (the reply side ended its unit).
		s.inMulti, s.multiLost, s.txDirty = false, false, false
		s.inMultiA.Store(false)
	}
	if s.inMulti && s.multiLost && c != cmdExec && c != cmdDiscard && c != cmdQuit && c != cmdReset {
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
		s.cr.SkipArgs()
		s.reply(resp.AppendSimple(s.hdr[:0], "OK"))
		return errQuit
	case cmdReset:
		return s.reset()
	case cmdSelect:
		return s.selectDB(argc)
	case cmdClient:
		return s.client(argc)
	case cmdMulti:
		return s.multi()
	case cmdExec, cmdDiscard:
		return s.endMulti(c)
	case cmdWatch:
		if !s.inMulti {
			s.watching = true
		}
		return s.forward(record{kind: kindPlain})
	case cmdUnwatch:
		if !s.inMulti {
			s.watching, s.watchLost = false, false
		}
		return s.forward(record{kind: kindPlain})
	}
	return s.replyError("ERR proxy: '" + strings.ToLower(string(name)) + "' is not supported")
}

// forward sends the command (header and the first pre arguments already
// in s.hdr, the rest still to read) to the uplink and queues its record.
func (s *session) forward(rec record) error {
	if s.inMulti && !s.uplinkOK() {
		// The uplink connection carrying this transaction is gone: nothing
		// more of the block may run elsewhere.
		s.multiLost = true
		return s.replyError(msgUplinkLost)
	}
	startsUnit := !s.inMulti
	if startsUnit {
		if err := s.enterUnit(); err != nil {
			return err
		}
	}
	endsUnit := startsUnit && rec.kind != kindMulti
	if err := s.ensureUplink(); err != nil {
		if startsUnit {
			s.leaveUnit()
		}
		if errors.Is(err, errSessionClosed) {
			return err
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
	if endsUnit {
		rec.flags |= flagEndsUnit
	}
	rec.sent = s.clock
	s.q.push(rec)
	var w io.Writer = u.w()
	if s.p.logMessages.Load() {
		c := &capture{w: w}
		w = c
		defer func() { s.logInfo("command", "cmd", renderCommand(c.buf, c.more)) }()
	}
	if _, err := w.Write(s.hdr); err != nil {
		return s.uplinkWriteFailed(err)
	}
	for s.cr.Args() > 0 {
		if err := s.cr.CopyArg(w); err != nil {
			var we *resp.WriteError
			if errors.As(err, &we) {
				if err := s.cr.SkipArgs(); err != nil {
					s.retire()
					return s.readFailed(err)
				}
				return s.uplinkWriteFailed(err)
			}
			return s.inputCut(err)
		}
	}
	if s.cr.Buffered() == 0 {
		if err := u.flush(); err != nil {
			return s.uplinkWriteFailed(err)
		}
	}
	if u.dead.Load() {
		// The reply goroutine may have given up on this connection before
		// the record was queued: hand over so that it answers it.
		s.retire()
	}
	return nil
}

// uplinkWriteFailed retires a connection that failed on write; the reply
// goroutine answers the commands it was carrying.
func (s *session) uplinkWriteFailed(error) error {
	s.retire()
	return nil
}

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
	select {
	case s.upCh <- handoff{first: s.q.tail.Load()}:
	case <-s.done:
	}
}

// uplinkOK reports whether s.up is live and dialed for the current target.
func (s *session) uplinkOK() bool {
	u := s.up
	return u != nil && !u.dead.Load() && u.gen == s.p.rc().target.gen
}

// ensureUplink makes s.up a live connection to the current target,
// dialing (and replaying the session state) when needed.
func (s *session) ensureUplink() error {
	if s.uplinkOK() {
		return nil
	}
	rc := s.p.rc()
	if s.up != nil {
		s.retire()
		if s.closing() {
			return errSessionClosed
		}
	}
	if s.watching {
		s.watchLost = true
	}
	if s.dialErr != nil {
		return s.dialErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), rc.limit)
	defer cancel()
	u, err := rc.target.dial(ctx, s.st, s.wrapUplink)
	if err != nil {
		s.dialErr = err
		s.p.dialFailed(s, err)
		return err
	}
	s.clock = s.p.now()
	u.conn.SetReadDeadline(s.p.wall(s.clock + rc.limit.Nanoseconds()))
	s.up = u
	s.cur.Store(u)
	if s.closing() {
		u.conn.Close()
		return errSessionClosed
	}
	select {
	case s.upCh <- handoff{u: u, first: s.q.tail.Load()}:
	case <-s.done:
		return errSessionClosed
	}
	return nil
}

// enterUnit passes the pause gate: it announces a unit in flight, and
// backs out and waits while the proxy is paused (Dekker-style with the
// pauser, which closes the gate and then waits for busy to reach 0).
func (s *session) enterUnit() error {
	for {
		if s.units.Add(1) == 1 {
			s.p.busy.Add(1)
		}
		if !s.p.gateClosed.Load() {
			return nil
		}
		s.leaveUnit()
		s.flushUp()
		if err := s.p.waitGate(s.done); err != nil {
			return err
		}
		s.clock = s.p.now()
	}
}

func (s *session) leaveUnit() {
	if s.units.Add(-1) == 0 {
		s.p.unitDone()
	}
}

// auth answers AUTH [user] pass against listen.pass; it is never forwarded.
func (s *session) auth(argc int) error {
	if argc != 2 && argc != 3 {
		return s.replyError("ERR wrong number of arguments for 'auth' command")
	}
	if s.inMulti {
		s.txDirty = true
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
	msg := s.checkPass(user, pass, argc == 2)
	if msg != "" {
		return s.reply(resp.AppendError(s.hdr[:0], msg))
	}
	return s.reply(resp.AppendSimple(s.hdr[:0], "OK"))
}

// checkPass checks a client's credentials; "" means accepted, otherwise
// the error Redis would give.
func (s *session) checkPass(user, pass []byte, passOnly bool) string {
	want := s.p.rc().cfg.Listen.Pass
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
// part is answered here, the rest is forwarded.
func (s *session) hello(argc int) error {
	if s.inMulti {
		s.txDirty = true
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
	if hasAuth {
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
	s.hdr = resp.AppendBulkString(resp.AppendArray(s.hdr[:0], n), "HELLO")
	if proto > 0 {
		s.hdr = resp.AppendBulk(s.hdr, s.args[0])
	}
	rec := record{kind: kindHello, arg: int32(proto)}
	if hasName {
		s.hdr = resp.AppendBulk(resp.AppendBulkString(s.hdr, "SETNAME"), name)
		s.pushName(string(name))
		rec.flags |= flagName
	}
	return s.forward(rec)
}

func (s *session) pushName(name string) {
	s.nameMu.Lock()
	s.names = append(s.names, name)
	s.nameMu.Unlock()
}

func (s *session) popName() string {
	s.nameMu.Lock()
	defer s.nameMu.Unlock()
	if len(s.names) == 0 {
		return ""
	}
	n := s.names[0]
	s.names = s.names[1:]
	return n
}

// selectDB forwards SELECT and, on success, remembers the db for replay.
func (s *session) selectDB(argc int) error {
	if argc != 2 {
		return s.forward(record{kind: kindPlain})
	}
	if s.inMulti {
		s.txDirty = true
		return s.replyError("ERR proxy: 'select' inside MULTI is not supported")
	}
	a, err := s.cr.Arg()
	if err != nil {
		return s.forwardIfTooLong(err)
	}
	s.hdr = resp.AppendBulk(s.hdr, a)
	db, ok := resp.ParseInt(a)
	if !ok || db < 0 || db > 1<<31-1 {
		return s.forward(record{kind: kindPlain})
	}
	return s.forward(record{kind: kindSelect, arg: int32(db)})
}

// client inspects CLIENT's subcommand: SETNAME is remembered, REPLY would
// break the pairing of commands and replies and is refused.
func (s *session) client(argc int) error {
	if argc < 2 {
		return s.forward(record{kind: kindPlain})
	}
	sub, err := s.cr.Arg()
	if err != nil {
		return s.forwardIfTooLong(err)
	}
	s.hdr = resp.AppendBulk(s.hdr, sub)
	switch {
	case resp.Equal(sub, "REPLY"):
		return s.replyError("ERR proxy: 'client reply' is not supported")
	case resp.Equal(sub, "SETNAME") && argc == 3:
		if s.inMulti {
			s.txDirty = true
			return s.replyError("ERR proxy: 'client setname' inside MULTI is not supported")
		}
		name, err := s.cr.Arg()
		if err != nil {
			return s.forwardIfTooLong(err)
		}
		s.hdr = resp.AppendBulk(s.hdr, name)
		s.pushName(string(name))
		return s.forward(record{kind: kindSetName})
	}
	return s.forward(record{kind: kindPlain})
}

// multi starts a transaction: one pause unit until EXEC or DISCARD.
func (s *session) multi() error {
	if s.inMulti {
		return s.forward(record{kind: kindPlain}) // Redis answers the nesting error
	}
	s.txID++
	if s.txID <= 0 {
		s.txID = 1
	}
	s.txOpen.Store(s.txID)
	t := s.q.tail.Load()
	if err := s.forward(record{kind: kindMulti, arg: s.txID}); err != nil || s.q.tail.Load() == t {
		s.txOpen.Store(0) // not sent (the uplink is unavailable): no transaction, no unit
		return err
	}
	s.inMulti, s.multiLost, s.txDirty = true, false, false
	s.inMultiA.Store(true)
	return nil
}

// endTx ends transaction id's unit unless it has been ended already. The
// reply side passes ended=true and the unit ends at its next flush.
func (s *session) endTx(id int32, replySide bool) bool {
	if id == 0 || !s.txOpen.CompareAndSwap(id, 0) {
		return false
	}
	if replySide {
		s.ended++
	} else {
		s.leaveUnit()
	}
	return true
}

// endMulti handles EXEC and DISCARD.
func (s *session) endMulti(c cmdClass) error {
	if !s.inMulti {
		return s.forward(record{kind: kindPlain}) // Redis answers "without MULTI"
	}
	lost, dirty, watchLost := s.multiLost || !s.uplinkOK(), s.txDirty, s.watchLost
	// The transaction ends here whatever happens next.
	s.inMulti, s.multiLost, s.txDirty = false, false, false
	s.watching, s.watchLost = false, false
	s.inMultiA.Store(false)
	if lost {
		// No MULTI is open on the uplink: answer here and end the unit.
		s.endTx(s.txID, false)
		if c == cmdDiscard {
			return s.replyErrorOr("", "OK")
		}
		return s.replyError(msgExecAbort)
	}
	rec := record{kind: kindPlain, flags: flagEndsTx, arg: s.txID}
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
	return s.forwardInUnit(rec)
}

func (s *session) replyErrorOr(msg, ok string) error {
	if msg != "" {
		return s.replyError(msg)
	}
	if err := s.cr.SkipArgs(); err != nil {
		return s.readFailed(err)
	}
	return s.reply(resp.AppendSimple(s.hdr[:0], ok))
}

// forwardInUnit forwards a command that ends the MULTI unit already held.
func (s *session) forwardInUnit(rec record) error {
	s.inMulti = true // forward must not open a new unit
	t := s.q.tail.Load()
	err := s.forward(rec)
	s.inMulti = false
	if s.q.tail.Load() == t {
		s.endTx(rec.arg, false) // not sent: the transaction is over all the same
	}
	return err
}

// reset answers RESET here: the uplink connection is dropped (the next
// command dials a fresh one) and the session is as new.
func (s *session) reset() error {
	if err := s.cr.SkipArgs(); err != nil {
		return s.readFailed(err)
	}
	s.flushUp()
	if err := s.q.waitEmpty(s.done); err != nil {
		return err
	}
	s.endTx(s.txID, false)
	s.retire()
	s.st = replay{proto: 2}
	s.inMulti, s.multiLost, s.txDirty, s.watching, s.watchLost = false, false, false, false, false
	s.inMultiA.Store(false)
	if s.p.rc().cfg.Listen.Pass != "" {
		s.authed = false
		s.cr.SetLimits(resp.UnauthenticatedLimits)
	}
	return s.reply(resp.AppendSimple(s.hdr[:0], "RESET"))
}

func (s *session) logCommand(c cmdClass, name []byte, argc int) {
	cmd := strings.ToUpper(truncate(string(name), 64))
	if c == cmdAuth || c == cmdHello {
		s.logInfo("command", "cmd", cmd, "args", argc-1, "note", "credentials redacted: ***")
		return
	}
	s.logInfo("command", "cmd", cmd, "args", argc-1)
}

// capture passes writes on and keeps their first bytes, for log_messages.
type capture struct {
	w    io.Writer
	buf  []byte
	more bool
}

const captureMax = 512

func (c *capture) Write(p []byte) (int, error) {
	room := captureMax - len(c.buf)
	if len(p) > room {
		c.more = true
	}
	if room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return c.w.Write(p)
}

// renderCommand turns the start of a multibulk request into readable
// words, masking the arguments of commands that carry secrets.
func renderCommand(b []byte, more bool) string {
	var args []string
	if len(b) > 0 && b[0] == '*' {
		_, rest, _ := bytes.Cut(b, []byte("\r\n"))
		for len(rest) > 0 && rest[0] == '$' {
			head, body, ok := bytes.Cut(rest, []byte("\r\n"))
			n, _ := strconv.Atoi(string(head[1:]))
			if !ok || n < 0 {
				break
			}
			if n > len(body) {
				args = append(args, strconv.Quote(string(body))+"...")
				more = false
				break
			}
			args = append(args, quoteArg(body[:n]))
			rest = body[n:]
			if len(rest) >= 2 {
				rest = rest[2:]
			}
		}
	}
	if len(args) > 1 {
		switch strings.ToUpper(args[0]) {
		case "ACL", "CONFIG", "MIGRATE", "AUTH", "HELLO":
			args = append(args[:2], "***")
			more = false
		}
	}
	out := strings.Join(args, " ")
	if more {
		out += " ..."
	}
	return out
}

func quoteArg(a []byte) string {
	for _, c := range a {
		if c <= ' ' || c == '"' || c >= 0x7f {
			return strconv.Quote(string(a))
		}
	}
	return string(a)
}

// renderReply shows the start of a reply as RESP, quoted.
func renderReply(b []byte, more bool) string {
	out := strconv.Quote(string(b))
	if more {
		out += "..."
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..." + strconv.Itoa(len(s)-n) + " more bytes"
}

// ---- the reply goroutine ----

func (s *session) replies() {
	for {
		var h handoff
		select {
		case h = <-s.upCh:
		case <-s.done:
			return
		}
		s.answerUntil(h.first, msgUplinkLost)
		if h.u == nil {
			continue
		}
		err := s.pump(h.u)
		h.u.dropReader()
		if s.closing() {
			return
		}
		var we *resp.WriteError
		var pe *resp.ProtocolError
		switch {
		case errors.Is(err, errTimeLimit):
			s.timeLimit(errors.Is(err, errCut))
			return
		case errors.As(err, &we):
			s.close(fmt.Errorf("client write: %w", we.Err))
			return
		case errors.Is(err, errUnsolicited), errors.As(err, &pe):
			s.close(fmt.Errorf("uplink: %w", err))
			return
		case errors.Is(err, errCut):
			s.close(fmt.Errorf("uplink connection lost in the middle of a reply: %w", errors.Unwrap(err)))
			return
		}
		// The connection died between replies: answer what it carried.
		h.u.dead.Store(true)
		h.u.conn.Close()
		s.answerUntil(s.q.tail.Load(), msgUplinkLost)
		if !s.q.empty() {
			s.logDebug("uplink connection lost", "err", err)
		}
	}
}

var errCut = errors.New("reply cut")

// waitUplink waits for the uplink's next reply (or push) holding no buffer
// (plain TCP), then takes a pooled reader for it.
func (s *session) waitUplink(u *uplink) error {
	if u.raw == nil || u.rc == nil {
		return nil
	}
	if u.br != nil {
		if _, ok := u.r.Detach(); !ok {
			return nil
		}
		putReader(u.br)
		u.br = nil
	}
	slab, n, err := u.raw.read(u.rc.timedOut)
	if err != nil {
		return err
	}
	s.replyAt = s.p.now()
	u.pre.set(slab, n, u.rc)
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
		if b[0] == '>' {
			// A push nobody asked for (RESP3): it goes to the client as it is.
			if rep, err := u.r.Forward(s.out()); err != nil {
				return cutErr(rep, err)
			}
			continue
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

func cutErr(rep resp.Reply, err error) error {
	var we *resp.WriteError
	if rep.N > 0 && !errors.As(err, &we) {
		return fmt.Errorf("%w: %w", errCut, err)
	}
	return err
}

// answered learns the outcome of a command from its reply.
func (s *session) answered(rec *record, rep resp.Reply) {
	ok := !rep.IsError()
	switch rec.kind {
	case kindSelect:
		if ok {
			s.st.db = int64(rec.arg)
		}
	case kindHello:
		if ok && rec.arg > 0 {
			s.st.proto = int64(rec.arg)
		}
		if rec.flags&flagName != 0 {
			if name := s.popName(); ok {
				s.st.name = name
			}
		}
	case kindSetName:
		if name := s.popName(); ok {
			s.st.name = name
		}
	}
	if !ok {
		s.stats.errors.Add(1)
	}
	s.stats.observe(s.replyAt - rec.sent)
	if rec.flags&flagEndsUnit != 0 {
		s.ended++
	}
	switch {
	case rec.flags&flagEndsTx != 0:
		s.endTx(rec.arg, true)
	case rec.kind == kindMulti && !ok:
		s.failTx(rec.arg)
	}
}

// failTx ends a transaction whose MULTI failed (refused, or its connection
// lost): the client was told, and the request side learns it from txFailed.
func (s *session) failTx(id int32) {
	if s.endTx(id, true) {
		s.txFailed.Store(id)
	}
}

// flushOut flushes the client writer (under outMu); the units whose
// replies it carried are over only then: a pause completes once its
// replies have reached the clients.
func (s *session) flushOut() error {
	var err error
	if s.cw != nil {
		if err = s.cw.Flush(); err == nil {
			putWriter(s.cw)
			s.cw = nil
		}
	}
	if n := s.ended; n > 0 {
		s.ended = 0
		if s.units.Add(-n) == 0 {
			s.p.unitDone()
		}
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
	for s.q.head.Load() < seq {
		rec, _ := s.q.peek()
		s.out().Write(resp.AppendError(nil, msg))
		if rec.kind == kindSetName || rec.flags&flagName != 0 {
			s.popName()
		}
		s.stats.errors.Add(1)
		if rec.flags&flagEndsUnit != 0 {
			s.ended++
		}
		switch {
		case rec.flags&flagEndsTx != 0:
			s.endTx(rec.arg, true)
		case rec.kind == kindMulti:
			s.failTx(rec.arg)
		}
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
	s.logWarn("command exceeded read_time_limit_ms; disconnecting client", "limit_ms", s.p.rc().limit.Milliseconds(), "mid_reply", cut)
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

// ---- connections with deadlines ----

// wrapUplink gives the uplink's read side the session's time limit.
func (s *session) wrapUplink(c net.Conn) *uplinkConn { return &uplinkConn{Conn: c, s: s} }

// uplinkConn enforces read_time_limit_ms on the oldest unanswered command.
// The deadline is moved lazily: when it fires early (a later command, or
// an idle connection) it is moved to the right time and the read goes on,
// so that a pipelined stream costs no deadline update per reply.
type uplinkConn struct {
	net.Conn
	s *session
}

func (c *uplinkConn) Read(b []byte) (int, error) {
	s := c.s
	for {
		n, err := c.Conn.Read(b)
		if n > 0 || err == nil {
			s.replyAt = s.p.now()
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

// timedOut handles a read deadline: errTimeLimit when the oldest command
// is past the limit, else the deadline moves to when it will be.
func (c *uplinkConn) timedOut() error {
	s := c.s
	now, limit := s.p.now(), s.p.rc().limit.Nanoseconds()
	due := now + limit
	if rec, ok := s.q.peek(); ok {
		due = rec.sent + limit
		if now >= due {
			return errTimeLimit
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
}

func (c *clientConn) Write(b []byte) (int, error) {
	s := c.s
	now, limit := s.p.now(), s.p.rc().limit.Nanoseconds()
	due := now + limit
	if rec, ok := s.q.peek(); ok {
		due = rec.sent + limit
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
	if u := s.up; u != nil && u.bw != nil {
		u.bw.Flush()
	}
	for {
		n, err := c.Conn.Read(b)
		if n > 0 || err == nil {
			c.lastRead = s.p.now()
			s.clock = c.lastRead
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
	idle := s.p.rc().idle.Nanoseconds()
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

// ---- statistics ----

// latencyBounds are the command latency histogram's buckets, in seconds.
var latencyBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// sessionStats are one session's counters, each written by one goroutine
// and read by Status.
type sessionStats struct {
	commands atomic.Uint64
	errors   atomic.Uint64
	buckets  [16]atomic.Uint64 // len(latencyBounds); the +Inf bucket is count - sum(buckets)
	count    atomic.Uint64
	sumNs    atomic.Uint64
}

func (st *sessionStats) observe(ns int64) {
	if ns < 0 {
		ns = 0
	}
	sec := float64(ns) / 1e9
	for i, b := range latencyBounds {
		if sec <= b {
			st.buckets[i].Add(1)
			break
		}
	}
	st.count.Add(1)
	st.sumNs.Add(uint64(ns))
}

// addTo adds these counters into the totals t.
func (st *sessionStats) addTo(t *totals) {
	t.commands += st.commands.Load()
	t.errors += st.errors.Load()
	for i := range st.buckets {
		t.buckets[i] += st.buckets[i].Load()
	}
	t.count += st.count.Load()
	t.sumNs += st.sumNs.Load()
}

type totals struct {
	commands, errors uint64
	buckets          [16]uint64
	count, sumNs     uint64
}
