package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"redis-proxy/config"
	"redis-proxy/resp"
)

const ioBufSize = 4096

// target is how to reach the uplink: one per configuration generation.
type target struct {
	gen  uint64
	addr string
	user string
	pass string
	tls  *tls.Config // nil: plain TCP
}

func newTarget(cfg *config.Config, gen uint64) (*target, error) {
	tc, err := cfg.UplinkTLS()
	if err != nil {
		return nil, err
	}
	return &target{gen: gen, addr: cfg.Uplink.Addr, user: cfg.Uplink.User, pass: cfg.Uplink.Pass, tls: tc}, nil
}

// uplink is one client's connection to Redis. The request goroutine
// writes to bw; the reply goroutine reads through r.
type uplink struct {
	conn    net.Conn
	raw     *sockWait   // the socket when plain TCP: idle waits hold no buffer
	timed   *uplinkConn // the read side with the session's time limit (nil for Prove)
	pre     preload
	br      *bufio.Reader // nil while idle (pooled); the reply goroutine's
	bw      *bufio.Writer // nil between batches (pooled); the request goroutine's
	r       *resp.Reader
	gen     uint64
	rep     *replica    // the replica it goes to (listen_ro); nil: the primary
	id      int64       // its CLIENT ID (client connections only)
	swallow int         // confirmations of the re-subscription still to come (pubsub.go)
	tracked bool        // CLIENT TRACKING was replayed on it (tracking.go)
	runID   string      // its server's run_id, when asked (server.go)
	dead    atomic.Bool // its read side failed: dial again before the next command
}

// connect opens a TCP or TLS connection to t within ctx (the TLS
// handshake, with its certificate checks, included). The raw relay uses it
// as it is.
func (t *target) connect(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if t.tls == nil {
		return conn, nil
	}
	tc := tls.Client(conn, t.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// dial connects to t within ctx and prepares the connection: AUTH with the
// uplink credentials (or, with st.forwardAuth, the client's), then HELLO, SELECT and CLIENT SETNAME as st says,
// all pipelined in one round trip. wrap, when not nil, gives the read side
// the session's deadline-keeping wrapper.
func (t *target) dial(ctx context.Context, st replay, wrap func(net.Conn) *uplinkConn) (*uplink, error) {
	conn, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		conn = adopt(conn) // a session's, plain TCP: the proxy's own poller
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	u := &uplink{conn: conn, gen: t.gen}
	if wrap != nil {
		u.raw = newSockWait(conn)
	}
	var rconn net.Conn = conn
	if wrap != nil {
		u.timed = wrap(conn)
		rconn = u.timed
	}
	u.br = getReader(rconn)
	u.r = resp.NewReader(u.br)
	if u.timed != nil {
		u.timed.dialing = true
	}
	if err := u.prepare(t, st, wrap != nil); err != nil {
		conn.Close()
		return nil, err
	}
	if u.timed != nil {
		u.timed.dialing = false
	}
	conn.SetDeadline(time.Time{})
	return u, nil
}

// prepare sends what st.commands lists, pipelined, and checks every reply.
func (u *uplink) prepare(t *target, st replay, withID bool) error {
	b, sent := st.commands(nil, t, withID)
	u.tracked = st.track.on
	// The subscriptions go in the same round trip; their confirmations
	// are swallowed by the reply goroutine, which tells them from the
	// messages that may come between them.
	b, u.swallow = st.subs.commands(b)
	switch {
	case st.replyOff:
		b = resp.AppendCommand(b, "CLIENT", "REPLY", "OFF")
	case st.replySkip:
		b = resp.AppendCommand(b, "CLIENT", "REPLY", "SKIP")
	}
	if len(b) == 0 {
		return nil
	}
	if _, err := u.w().Write(b); err != nil {
		return err
	}
	if err := u.flush(); err != nil {
		return err
	}
	var first error
	for i, cmd := range sent {
		var w io.Writer // nil: skipped
		var info tee
		if cmd.name == "INFO" {
			info.max = 64 << 10
			w = &info
		}
		rep, err := u.r.Forward(w)
		if err != nil {
			return err
		}
		if w != nil {
			u.runID = runID(info.buf)
		}
		if rep.IsError() && !cmd.mayFail && first == nil {
			first = &replayError{cmd: cmd.name, line: string(rep.Line), client: i == 0 && st.forwardAuth && st.authed}
		}
		if withID && i == len(sent)-1 && rep.Type == ':' {
			u.id, _ = resp.ParseInt(rep.Line)
		}
	}
	return first
}

// replayError is a command of the replay round trip that Redis refused.
// client: it was the client's own AUTH (listen.forward_auth), whose
// refusal the client gets as Redis worded it.
type replayError struct {
	cmd    string
	line   string // without the leading '-'
	client bool
}

func (e *replayError) Error() string { return e.cmd + ": " + e.line }

// w returns the writer to the uplink, taking a pooled one for the batch.
func (u *uplink) w() *bufio.Writer {
	if u.bw == nil {
		u.bw = getWriter(u.conn)
	}
	return u.bw
}

// flush sends the batch and gives the writer back.
func (u *uplink) flush() error {
	if u.bw == nil {
		return nil
	}
	if err := u.bw.Flush(); err != nil {
		return err
	}
	putWriter(u.bw)
	u.bw = nil
	return nil
}

// dropWriter gives the writer back whatever it holds (the connection is
// closed). The request goroutine's.
func (u *uplink) dropWriter() {
	if u.bw != nil {
		putWriter(u.bw)
		u.bw = nil
	}
}

// dropReader gives the reader back (the reply goroutine is done with the
// connection).
func (u *uplink) dropReader() {
	if u.br != nil {
		putReader(u.br)
		u.br = nil
	}
	u.pre.release()
}

// errNotPong is a PING answered with something else than PONG.
var errNotPong = errors.New("PING: unexpected reply")

// Prove checks that cfg's uplink works: dial (TCP or TLS, with the
// certificate checks configured), AUTH, PING, within ctx. It is the proof
// used by -t and by reload; it does not touch any running proxy.
func Prove(ctx context.Context, cfg *config.Config) error {
	t, err := newTarget(cfg, 0)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.ReadTimeLimit())
		defer cancel()
	}
	u, err := t.dial(ctx, newReplay(), nil)
	if err != nil {
		return fmt.Errorf("uplink %s: %w", cfg.Uplink.Addr, err)
	}
	defer u.conn.Close()
	stop := context.AfterFunc(ctx, func() { u.conn.Close() }) // cancel, not only the deadline, ends the proof
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		u.conn.SetDeadline(dl)
	}
	u.w().Write(resp.AppendCommand(nil, "PING"))
	if err := u.flush(); err != nil {
		return fmt.Errorf("uplink %s: %w", cfg.Uplink.Addr, err)
	}
	rep, err := u.r.Forward(nil)
	switch {
	case err != nil:
		return fmt.Errorf("uplink %s: %w", cfg.Uplink.Addr, err)
	case rep.IsError():
		return fmt.Errorf("uplink %s: PING: %s", cfg.Uplink.Addr, rep.Line)
	case rep.Type != '+' || string(rep.Line) != "PONG":
		return fmt.Errorf("uplink %s: %w", cfg.Uplink.Addr, errNotPong)
	}
	return nil
}
