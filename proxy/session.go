package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"redis-proxy/resp"
)

// Why a session ended, for the close log line.
var (
	errQuit        = errors.New("client quit")
	errTimeLimit   = errors.New("time limit")
	errIdle        = errors.New("idle timeout")
	errUnsolicited = errors.New("uplink sent a reply nobody asked for")
	errShutdown    = errors.New("shutdown")
)

// handoff gives the reply goroutine its next uplink connection (nil: none
// yet), and the ring position from which records belong to it: older ones
// were sent to a dead connection and are answered with an error.
type handoff struct {
	u     *uplink
	first uint64
}

// session is one client connection and its uplink connection, served by a
// goroutine pair: requests (requests.go: client -> uplink, and the
// proxy's own replies, with the command handlers in commands.go) and
// replies (replies.go: uplink -> client). Its fields are grouped by owner.
type session struct {
	// Fixed at creation.
	p      *Proxy
	id     uint64
	conn   *clientConn
	remote string
	start  time.Time
	ro     bool // a listen_ro client: its connections go to replicas (replicas.go)

	// Shared by the pair, each through its own discipline.
	q           *ring        // records of forwarded commands: requests push, replies pop
	hold        hold         // pause units in flight: changed only through p.gate
	blocked     atomic.Int32 // blocking commands in flight: requests add, replies subtract
	upID        atomic.Int64 // the uplink connection's CLIENT ID (0: none yet), for CLIENT UNBLOCK
	pinned      atomic.Bool  // subscribed or MONITOR: moved to a new connection at once (replies write)
	redial      atomic.Bool  // a move is due: the request goroutine dials at once
	move        mover
	connected   connNotify              // a new uplink connection is up (tracking.go)
	redirectTo  atomic.Pointer[session] // CLIENT TRACKING REDIRECT's target (replies write)
	trackers    atomic.Int32            // sessions whose REDIRECT names this one
	repoint     atomic.Bool             // REDIRECT's target moved: leave the connection for a new one
	tprotoRESP3 atomic.Bool             // the client speaks RESP3 (replies write), for invalidations sent to it
	tx          txShared                // what both know of transactions (txn.go)
	upCh        chan handoff            // requests -> replies: the next uplink connection
	cur         atomic.Pointer[uplink]  // the connection in use, for closing from outside
	done        chan struct{}           // closed by close: both goroutines stop
	sides       atomic.Int32            // sides not ended, running or parked (park.go)
	handMu      sync.Mutex              // replyIdle, sending
	replyIdle   bool                    // the reply side is parked for a handoff
	sending     int                     // handoffs on their way to a running reply side
	resumeReq   func()                  // the request side, run again after a park
	resumeRep   func()                  // the reply side, likewise
	closeOnce   sync.Once
	reason      error         // why it closed; written once by close, read after done
	outMu       sync.Mutex    // the client writer: whoever writes to the client holds it
	cw          *bufio.Writer // under outMu; nil between batches (pooled)
	ended       int32         // under outMu: units whose replies await the next flush
	stats       sessionStats  // counters, each written by one goroutine, read by Status
	pend        statPending   // counted, not yet in stats (stats.go)
	obs         observed      // what the client list shows (clients.go)

	// The request goroutine's own.
	rawc       *sockWait // the client's socket when plain TCP: idle waits hold no buffer
	cpre       preload
	cbr        *bufio.Reader // nil while idle (pooled)
	cr         *resp.Reader
	up         *uplink
	authed     bool
	txn        txn
	replyOff   bool          // CLIENT REPLY OFF: no command gets a reply
	scanGen    uint64        // the uplink generation the last SCAN-family command went to
	cursorAt   int           // where the SCAN command's cursor starts in hdr
	cursorZero bool          // its cursor is 0
	replySkip  int           // CLIENT REPLY SKIP: the next this many commands get none
	dialErr    error         // the last dial's error, kept for the rest of the batch
	rep        *replica      // listen_ro: the replica it is counted on (nil: none, or the primary)
	moveWait   time.Duration // the wait before the next try to move to a new connection
	heldOnce   bool          // this batch's command already waited for a failover (requests.go)
	clock      int64         // proxy clock at the last read from the client or the last wait: a command's sent time
	plainWords [2]uint64     // the last command a run took as plain, packed (runs.go)
	plainLen   int           // and its length
	hdr        []byte
	argBuf     []byte
	args       [][]byte

	// The reply goroutine's own. The request goroutine reads st only while
	// the reply goroutine waits for an uplink connection (after a handoff).
	st       replay
	txr      txReply
	confDue  int32   // confirmations still due for the (un)subscribe at the head; 0: not started
	swallow  int     // confirmations of a re-subscription, not for the client
	replyAt  int64   // proxy clock at the last read from the uplink
	parkedOn *uplink // the connection the reply side parked on
}

func (p *Proxy) newSession(conn net.Conn, ro bool) *session {
	conn = adopt(conn) // plain TCP: the proxy's own poller (poll_linux.go)
	s := &session{
		p:      p,
		id:     p.nextID.Add(1),
		remote: conn.RemoteAddr().String(),
		start:  time.Now(),
		q:      newRing(ringSize),
		done:   make(chan struct{}),
		upCh:   make(chan handoff),
		st:     newReplay(),
		ro:     ro,
	}
	s.resumeReq, s.resumeRep = s.runRequests, s.resumeReplies
	s.conn = &clientConn{Conn: conn, s: s}
	s.rawc = newSockWait(conn)
	if s.rawc == nil {
		s.cbr = bufio.NewReaderSize(s.conn, ioBufSize) // TLS: its own, for good
	}
	s.cr = resp.NewReader(s.cbr)
	s.authed = s.listenPass() == ""
	if !s.authed {
		s.cr.SetLimits(resp.UnauthenticatedLimits)
	}
	return s
}

// serve starts the session: the TLS handshake, then both sides (park.go:
// each runs while it has work, and the last to end cleans up).
func (s *session) serve() {
	err := s.handshake()
	s.conn.lastRead = s.p.now()
	if idle := s.p.conf().idle; idle > 0 {
		s.conn.Conn.SetReadDeadline(time.Now().Add(idle))
	}
	if err != nil {
		s.close(err)
		s.finish()
		return
	}
	s.logInfo("client connected")
	s.sides.Store(2)
	go s.runReplies(nil, nil)
	s.runRequests()
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

// A change the state machine makes to every session (apply).
type change uint8

const (
	changeSettings change = iota // limits and timeouts may differ: re-arm the deadlines
	changeUplink                 // the uplink moved: no command may reach the old one
	changeStop                   // the proxy stops
)

// apply is how the state machine talks to a session: after a reload (the
// new runtime configuration is in force), at a switch of uplink, at stop.
// It may be called from any goroutine. For a session moved at once it
// returns a channel closed when the move is done.
func (s *session) apply(c change) <-chan struct{} {
	switch c {
	case changeStop:
		s.close(errShutdown)
		return nil
	case changeUplink:
		// The session moves to the new uplink at its next command, or at
		// once when it is subscribed (it may send none).
		if u := s.cur.Load(); u != nil {
			u.conn.Close()
		}
		if s.pinned.Load() {
			return s.requestMove()
		}
	case changeSettings:
		// A read waiting for a reply re-computes its deadline from the
		// limit now in force.
		if u := s.cur.Load(); u != nil {
			u.conn.SetReadDeadline(time.Now())
		}
	}
	// Wake an idle read, so that a changed idle timeout applies at once.
	s.conn.Conn.SetReadDeadline(time.Now())
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
		s.wakeIdleReplies()
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
