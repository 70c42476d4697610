package proxy

import (
	"errors"
	"strings"
	"sync/atomic"
)

// What a forwarded command means for the session, learnt from its reply.
const (
	kindPlain     uint8 = iota
	kindSelect          // SELECT <arg>: on success the db is arg
	kindHello           // HELLO [arg] [SETNAME]: on success proto is arg (if >0), and the name is val if flagName
	kindSetName         // CLIENT SETNAME: on success the name is val
	kindSetInfo         // CLIENT SETINFO LIB-NAME|LIB-VER (arg says which): on success it is val
	kindMulti           // MULTI <arg: transaction id>: an error (or a lost connection) ends the transaction
	kindExecNil         // a DISCARD sent for an EXEC whose WATCH was lost: reply with a null array
	kindExecAbort       // a DISCARD sent for an EXEC of a transaction the proxy refused part of
	kindExecLearn       // EXEC of a transaction with state changes (fx): learnt from its elements
	kindSub             // (P|S)(UN)SUBSCRIBE: arg confirmations are its reply (-1: one per subscription, or one)
	kindMonitor         // MONITOR: on success the connection streams MONITOR lines
	kindNoEvict         // CLIENT NO-EVICT: on success it is arg (1 on, 0 off)
	kindTracking        // CLIENT TRACKING: on success the state is val (options) and peer (REDIRECT), or off if arg is 0
	kindAuth            // AUTH forwarded (listen.forward_auth): on success the credentials are val (credsVal)
)

const (
	flagEndsUnit uint8 = 1 << iota // the reply ends a pause unit (a command, or EXEC/DISCARD of a MULTI)
	flagName                       // the command set a name (HELLO SETNAME)
	flagEndsTx                     // EXEC or DISCARD of transaction arg: its reply ends the transaction's unit
	flagBlocks                     // a command that may block (blocking.go): wait says for how long
	flagScan                       // a SCAN-family command: its cursor may restart (server.go)
	flagAuth                       // HELLO AUTH forwarded: val is the name (if flagName), NUL, credsVal
)

// record is one forwarded command awaiting its reply, in the order sent.
type record struct {
	sent  int64 // when it was forwarded, in proxy-clock nanoseconds
	wait  int64 // how long it may block, in ns, beyond the time limit; noLimit: no limit
	x     *recX // what few commands carry (a name, a transaction's effects); nil for most
	arg   int32
	kind  uint8
	flags uint8
}

// recX is what a record carries beyond its kind, for the few commands
// that change the session state: apart, so that a ring slot is 32 bytes
// (an idle session holds its ring).
type recX struct {
	val  string     // a value the reply makes part of the session state (a name)
	fx   []txEffect // kindExecLearn: the queued commands that change the session state
	peer *session   // kindTracking: REDIRECT's target
}

func (r *record) val() string {
	if r.x == nil {
		return ""
	}
	return r.x.val
}

func (r *record) peer() *session {
	if r.x == nil {
		return nil
	}
	return r.x.peer
}

func (r *record) fx() []txEffect {
	if r.x == nil {
		return nil
	}
	return r.x.fx
}

// with returns r carrying val.
func (r record) with(val string) record {
	r.x = &recX{val: val}
	return r
}

// creds are the credentials a forwarded AUTH or HELLO AUTH brings.
func (r *record) creds() (string, bool) {
	switch {
	case r.kind == kindAuth:
		return r.val(), true
	case r.kind == kindHello && r.flags&flagAuth != 0:
		_, creds, _ := strings.Cut(r.val(), "\x00")
		return creds, true
	}
	return "", false
}

// due is when the reply to r is past the time limit; ok is false for a
// command with no limit.
func (r *record) due(limit int64) (at int64, ok bool) {
	if r.wait == noLimit {
		return 0, false
	}
	return r.sent + r.wait + limit, true
}

// ring is the session's single-producer single-consumer queue of records:
// the request goroutine pushes, the reply goroutine pops. It takes no
// lock and no channel operation per command; a channel wakes the producer
// only when it waits (queue full, or waiting for every reply).
type ring struct {
	buf  []record
	mask uint64
	head atomic.Uint64 // next to pop; written by the consumer
	tail atomic.Uint64 // next to push; written by the producer
	want atomic.Uint64 // the producer waits until head >= want; 0: not waiting
	wake chan struct{}
}

var errSessionClosed = errors.New("session closed")

func newRing(size int) *ring {
	return &ring{buf: make([]record, size), mask: uint64(size - 1), wake: make(chan struct{}, 1)}
}

func (q *ring) len() int    { return int(q.tail.Load() - q.head.Load()) }
func (q *ring) empty() bool { return q.tail.Load() == q.head.Load() }
func (q *ring) full() bool  { return q.tail.Load()-q.head.Load() == uint64(len(q.buf)) }

// push appends r; the caller has made sure the ring is not full.
func (q *ring) push(r record) {
	t := q.tail.Load()
	q.buf[t&q.mask] = r
	q.tail.Store(t + 1)
}

// peek returns the oldest record (consumer side, or the producer when it
// knows the consumer is idle).
func (q *ring) peek() (*record, bool) {
	h := q.head.Load()
	if h == q.tail.Load() {
		return nil, false
	}
	return &q.buf[h&q.mask], true
}

// pop drops the oldest record and wakes a producer waiting for it.
func (q *ring) pop() { q.popN(1) }

// popN drops the n oldest records, likewise.
func (q *ring) popN(n uint64) {
	h := q.head.Add(n)
	if w := q.want.Load(); w != 0 && h >= w {
		q.want.Store(0)
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// waitHead blocks the producer until head reaches target or done closes.
func (q *ring) waitHead(target uint64, done <-chan struct{}) error {
	for {
		if q.head.Load() >= target {
			return nil
		}
		q.want.Store(target)
		if q.head.Load() >= target {
			q.want.Store(0)
			return nil
		}
		select {
		case <-q.wake:
		case <-done:
			return errSessionClosed
		}
	}
}

// waitEmpty waits until every record has been answered.
func (q *ring) waitEmpty(done <-chan struct{}) error { return q.waitHead(q.tail.Load(), done) }

// waitSpace waits until half the ring is free, so that a deep pipeline
// wakes the producer once per half-ring, not once per reply.
func (q *ring) waitSpace(done <-chan struct{}) error {
	if !q.full() {
		return nil
	}
	return q.waitHead(q.tail.Load()-uint64(len(q.buf)/2), done)
}
