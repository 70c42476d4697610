package proxy

import "sync/atomic"

// txn is the client's transaction as the request goroutine sees it: from
// MULTI to EXEC or DISCARD, and the WATCH before it. Every path that ends
// a transaction goes through stop. The whole block is one pause unit,
// taken when MULTI is forwarded; who ends that unit is said in txReply.
type txn struct {
	open      bool  // inside MULTI, as the client sees it
	id        int32 // the current (or last) transaction's id
	lost      bool  // the uplink connection died inside the block: it fails at EXEC
	dirty     bool  // the proxy refused a command inside the block: EXECABORT
	watching  bool  // WATCH is active
	watchLost bool  // the uplink connection changed while WATCH was active: EXEC aborts
	queued    int   // commands forwarded inside the block: the next one's index in EXEC's reply
	fx        []txEffect
}

// txEffect is a command queued in a transaction that changes the session
// state (SELECT, CLIENT SETNAME): EXEC's reply element at index says
// whether it ran.
type txEffect struct {
	index int
	rec   record // as it would be learnt outside a transaction
}

// queue notes one command forwarded inside the block; rec, when its kind
// is not kindPlain, is learnt from its element of EXEC's reply.
func (t *txn) queue(rec record) {
	if rec.kind != kindPlain {
		t.fx = append(t.fx, txEffect{index: t.queued, rec: rec})
	}
	t.queued++
}

// next returns the id for a new transaction (not open yet: the MULTI is
// being forwarded).
func (t *txn) next() int32 {
	t.id++
	if t.id <= 0 {
		t.id = 1
	}
	return t.id
}

// start opens transaction id once its MULTI has been forwarded.
func (t *txn) start(sh *txShared) {
	t.open, t.lost, t.dirty = true, false, false
	t.queued, t.fx = 0, nil
	sh.inMulti.Store(true)
}

// stop ends the transaction (and its WATCH) as the client sees it.
func (t *txn) stop(sh *txShared) {
	t.open, t.lost, t.dirty = false, false, false
	t.watching, t.watchLost = false, false
	sh.inMulti.Store(false)
}

// uplinkChanged notes that the uplink connection changed: a WATCH is lost.
func (t *txn) uplinkChanged() {
	if t.watching {
		t.watchLost = true
	}
}

// txShared is what both goroutines of a session know of its transactions.
type txShared struct {
	failed  atomic.Int32 // id of the last transaction whose MULTI failed (reply side writes)
	inMulti atomic.Bool  // mirror of txn.open, for observers
}

// txReply is the reply goroutine's part: it ends a transaction's unit when
// its EXEC or DISCARD is answered, or at once when its MULTI fails
// (refused, or lost with its connection); a transaction whose MULTI failed
// is not ended again by its EXEC. Records arrive in order and ids grow, so
// one id is all it needs. The request goroutine ends the unit itself only
// for a transaction none of whose ending commands reached the ring, after
// waiting until every reply is in (endLocally).
type txReply struct {
	failed int32
}

// answered reports how many units the reply to rec ends.
func (r *txReply) answered(rec *record, ok bool, sh *txShared) int32 {
	switch {
	case rec.flags&flagEndsTx != 0:
		if rec.arg == r.failed {
			return 0
		}
		return 1
	case rec.kind == kindMulti && !ok:
		r.failed = rec.arg
		sh.failed.Store(rec.arg)
		return 1
	}
	return 0
}
