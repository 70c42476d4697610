package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"redis-proxy/internal/redistest"
)

// The load: every client has its own connection through the proxy, its own
// db (id mod 16), its own counter key c:<id> (INCR) and list l:<id> (RPUSH
// of sequence numbers 1, 2, 3...). A write counts as acknowledged only
// when its reply came back and is what Redis answers for it; a write that
// got an error reply or no reply at all is "uncertain" (it may or may not
// have been applied) and the error or the lost connection is a failure of
// its own.

const (
	numDBs        = 16
	pipelineDepth = 5  // INCR+RPUSH pairs in one pipelined batch (10 commands)
	checkEvery    = 20 // iterations between two session checks (CLIENT INFO)
	maxEvents     = 100
	// txIdle is how long a client of kindTxPipeline stays idle after each
	// batch, as an application does between two requests: a pause often
	// begins while it is idle.
	txIdle = 20 * time.Millisecond
)

// clientKind is how a client sends its writes.
type clientKind int

const (
	kindSingle     clientKind = iota // one command at a time: INCR, then RPUSH
	kindPipeline                     // batches of 10 commands written at once
	kindMulti                        // MULTI INCR RPUSH EXEC, alternately one by one and pipelined
	kindTxPipeline                   // MULTI INCR EXEC MULTI INCR EXEC in one write, then idle
	numKinds
)

func (k clientKind) String() string {
	switch k {
	case kindSingle:
		return "single"
	case kindPipeline:
		return "pipeline"
	case kindMulti:
		return "multi"
	case kindTxPipeline:
		return "tx-pipeline"
	}
	return "kind" + strconv.Itoa(int(k))
}

// eventLog collects what went wrong, client side, with the switch phase
// it happened in. It is shared by every client.
type eventLog struct {
	start time.Time
	phase atomic.Value // string: what the switcher is doing

	mu      sync.Mutex
	events  []Event
	dropped int
}

// Event is one client-side problem.
type Event struct {
	AtS    float64 `json:"at_s"` // seconds since the load started
	Client int     `json:"client"`
	Kind   string  `json:"kind"`  // "error reply", "unexpected reply", "disconnect"
	Phase  string  `json:"phase"` // e.g. "switch 3: reload"
	What   string  `json:"what"`
}

func newEventLog() *eventLog {
	l := &eventLog{start: time.Now()}
	l.setPhase("load")
	return l
}

func (l *eventLog) setPhase(p string) { l.phase.Store(p) }

func (l *eventLog) add(client int, kind, what string) {
	e := Event{
		AtS:    time.Since(l.start).Seconds(),
		Client: client,
		Kind:   kind,
		Phase:  l.phase.Load().(string),
		What:   what,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) < maxEvents {
		l.events = append(l.events, e)
	} else {
		l.dropped++
	}
}

func (l *eventLog) snapshot() ([]Event, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...), l.dropped
}

// loadClient is one client connection and the record of its writes. Only
// its own goroutine touches it while the load runs.
type loadClient struct {
	id      int
	db      int
	kind    clientKind
	resp3   bool
	addr    string
	timeout time.Duration
	ev      *eventLog
	total   *loadTotals

	conn       *redistest.Client
	counterKey string
	listKey    string
	name       string
	iter       int64
	seq        int64 // last sequence number used

	// The record.
	incrAcked     int64   // acknowledged INCRs
	incrUncertain int64   // INCRs with an error reply or no reply
	listAcked     []int64 // acknowledged RPUSHes, in order
	listUncertain []int64 // RPUSHes with an error reply or no reply

	// Counts.
	commands    int64
	errors      int64 // error replies
	unexpected  int64 // replies other than Redis's for the command
	disconnects int64
	maxLatency  time.Duration
	// When the slowest call began (seconds since the load started), and
	// the switch phase at its end.
	maxLatencyAt    float64
	maxLatencyPhase string
}

// loadTotals are running totals for progress lines.
type loadTotals struct {
	writes   atomic.Int64 // acknowledged writes
	commands atomic.Int64
	problems atomic.Int64 // errors + unexpected + disconnects
}

func newLoadClient(id int, addr string, timeout time.Duration, ev *eventLog, total *loadTotals) *loadClient {
	return &loadClient{
		id:         id,
		db:         id % numDBs,
		kind:       clientKind(id % int(numKinds)),
		resp3:      (id/int(numKinds))%2 == 1,
		addr:       addr,
		timeout:    timeout,
		ev:         ev,
		total:      total,
		counterKey: fmt.Sprintf("c:%d", id),
		listKey:    fmt.Sprintf("l:%d", id),
		name:       fmt.Sprintf("switchtest-%d", id),
	}
}

// connect dials the proxy and sets the session up: HELLO 3 for RESP3
// clients, CLIENT SETNAME, SELECT. The proxy must replay all three on every
// new uplink.
func (c *loadClient) connect() error {
	conn, err := redistest.Dial(c.addr, c.timeout)
	if err != nil {
		return err
	}
	conn.SetTimeout(c.timeout)
	steps := [][]any{{"CLIENT", "SETNAME", c.name}, {"SELECT", c.db}}
	if c.resp3 {
		steps = append([][]any{{"HELLO", 3}}, steps...)
	}
	for _, args := range steps {
		v, err := conn.Do(args...)
		if err == nil {
			err = v.Err()
		}
		if err == nil && args[0] == "HELLO" && v.Type != '%' {
			err = fmt.Errorf("reply of type %q, want a map", v.Type)
		}
		if err == nil && args[0] != "HELLO" && (v.Type != '+' || v.Str != "OK") {
			err = fmt.Errorf("reply %s, want OK", v)
		}
		if err != nil {
			conn.Close()
			return fmt.Errorf("%v: %w", args, err)
		}
	}
	c.conn = conn
	return nil
}

// writesPerIteration is how many writes one iteration of kind does.
func (k clientKind) writesPerIteration() int {
	if k == kindPipeline {
		return 2 * pipelineDepth
	}
	return 2
}

// run writes until stop is closed, at most rate writes a second (0: as
// fast as it can); it reconnects after a lost connection (which is
// counted) so that the rest of the run still means something.
func (c *loadClient) run(stop <-chan struct{}, rate float64) {
	defer func() {
		if c.conn != nil {
			c.conn.Close()
		}
	}()
	var pace <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(c.kind.writesPerIteration()) / rate * float64(time.Second)))
		defer t.Stop()
		pace = t.C
	}
	for {
		if pace != nil {
			select {
			case <-stop:
				return
			case <-pace:
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		if c.conn == nil {
			if err := c.connect(); err != nil {
				c.problem(&c.disconnects, "disconnect", "reconnect: "+err.Error())
				backoff := time.NewTimer(100 * time.Millisecond) // between attempts
				select {
				case <-stop:
					backoff.Stop()
					return
				case <-backoff.C:
				}
				continue
			}
		}
		c.iter++
		switch c.kind {
		case kindSingle:
			c.single()
		case kindPipeline:
			c.pipeline()
		case kindMulti:
			c.multi(c.iter%2 == 0)
		case kindTxPipeline:
			c.txPipeline()
		}
		if c.conn != nil && c.iter%checkEvery == 0 {
			c.checkSession()
		}
		if c.kind == kindTxPipeline && pace == nil {
			idle := time.NewTimer(txIdle)
			select {
			case <-stop:
				idle.Stop()
				return
			case <-idle.C:
			}
		}
	}
}

// problem counts and logs one problem.
func (c *loadClient) problem(counter *int64, kind, what string) {
	*counter++
	c.total.problems.Add(1)
	c.ev.add(c.id, kind, what)
}

// lost records a broken connection and drops it.
func (c *loadClient) lost(err error) {
	c.problem(&c.disconnects, "disconnect", err.Error())
	c.conn.Close()
	c.conn = nil
}

// timed runs f, counting n commands and the latency.
func (c *loadClient) timed(n int, f func()) {
	start := time.Now()
	f()
	if d := time.Since(start); d > c.maxLatency {
		c.maxLatency = d
		c.maxLatencyAt = start.Sub(c.ev.start).Seconds()
		c.maxLatencyPhase = c.ev.phase.Load().(string)
	}
	c.commands += int64(n)
	c.total.commands.Add(int64(n))
}

func (c *loadClient) do(args ...any) (v redistest.Value, err error) {
	c.timed(1, func() { v, err = c.conn.Do(args...) })
	return v, err
}

func (c *loadClient) pipelineDo(cmds [][]any) (vs []redistest.Value, err error) {
	c.timed(len(cmds), func() { vs, err = c.conn.Pipeline(cmds...) })
	return vs, err
}

func (c *loadClient) nextSeq() int64 {
	c.seq++
	return c.seq
}

// single: INCR, then RPUSH, one command at a time.
func (c *loadClient) single() {
	v, err := c.do("INCR", c.counterKey)
	c.incrResult(v, err == nil)
	if err != nil {
		c.lost(err)
		return
	}
	seq := c.nextSeq()
	v, err = c.do("RPUSH", c.listKey, seq)
	c.pushResult(seq, v, err == nil)
	if err != nil {
		c.lost(err)
	}
}

// pipeline: pipelineDepth INCR+RPUSH pairs written at once.
func (c *loadClient) pipeline() {
	cmds := make([][]any, 0, 2*pipelineDepth)
	seqs := make([]int64, pipelineDepth)
	for i := range seqs {
		seqs[i] = c.nextSeq()
		cmds = append(cmds, []any{"INCR", c.counterKey}, []any{"RPUSH", c.listKey, seqs[i]})
	}
	vs, err := c.pipelineDo(cmds)
	for i, seq := range seqs {
		v, ok := at(vs, 2*i)
		c.incrResult(v, ok)
		v, ok = at(vs, 2*i+1)
		c.pushResult(seq, v, ok)
	}
	if err != nil {
		c.lost(err)
	}
}

// multi: MULTI, INCR, RPUSH, EXEC, pipelined or one by one (then a pause
// can begin between MULTI and EXEC: the proxy must let the block finish).
func (c *loadClient) multi(pipelined bool) {
	seq := c.nextSeq()
	cmds := [][]any{{"MULTI"}, {"INCR", c.counterKey}, {"RPUSH", c.listKey, seq}, {"EXEC"}}
	var vs []redistest.Value
	var err error
	if pipelined {
		vs, err = c.pipelineDo(cmds)
	} else {
		for _, cmd := range cmds {
			var v redistest.Value
			if v, err = c.do(cmd...); err != nil {
				break
			}
			vs = append(vs, v)
		}
	}
	c.multiResult(seq, vs)
	if err != nil {
		c.lost(err)
	}
}

// txPipeline: two transactions back to back in one write, MULTI INCR
// EXEC MULTI INCR EXEC, as ioredis and node-redis send a pipeline of
// transactions, and all six replies read; then the client idles (run).
func (c *loadClient) txPipeline() {
	tx := [][]any{{"MULTI"}, {"INCR", c.counterKey}, {"EXEC"}}
	vs, err := c.pipelineDo(append(tx, tx...))
	c.txResult(vs, []string{"INCR"}, func(_ int, v redistest.Value, ok bool) { c.incrResult(v, ok) })
	if len(vs) > len(tx) {
		vs = vs[len(tx):]
	} else {
		vs = nil
	}
	c.txResult(vs, []string{"INCR"}, func(_ int, v redistest.Value, ok bool) { c.incrResult(v, ok) })
	if err != nil {
		c.lost(err)
	}
}

// multiResult judges the replies of MULTI INCR RPUSH EXEC (as many as
// came).
func (c *loadClient) multiResult(seq int64, vs []redistest.Value) {
	c.txResult(vs, []string{"INCR", "RPUSH"}, func(i int, v redistest.Value, ok bool) {
		if i == 0 {
			c.incrResult(v, ok)
		} else {
			c.pushResult(seq, v, ok)
		}
	})
}

// txResult judges the replies of MULTI, the writes named, and EXEC (as
// many as came; vs may hold more), and records each write by its result:
// write(i, v, ok) with ok = a reply came.
func (c *loadClient) txResult(vs []redistest.Value, names []string, write func(i int, v redistest.Value, ok bool)) {
	n := len(names)
	multi, ok := at(vs, 0)
	if ok && !isStatus(multi, "OK") {
		// Not in a transaction: the writes ran on their own.
		c.badReply("MULTI", multi, "OK")
		for i := range n {
			v, ok := at(vs, i+1)
			write(i, v, ok)
		}
		if v, ok := at(vs, n+1); ok {
			c.badReply("EXEC", v, "an array")
		}
		return
	}
	for i, name := range names {
		if v, ok := at(vs, i+1); ok && !isStatus(v, "QUEUED") {
			c.badReply(name+" in MULTI", v, "QUEUED")
		}
	}
	exec, ok := at(vs, n+1)
	switch {
	case ok && exec.Type == '*' && !exec.Null && len(exec.Elems) == n:
		for i := range n {
			write(i, exec.Elems[i], true)
		}
		return
	case ok && exec.Null:
		// No WATCH here, so nothing may abort the transaction.
		c.problem(&c.unexpected, "unexpected reply", "EXEC aborted (nil reply) without WATCH")
	case ok:
		c.badReply("EXEC", exec, fmt.Sprintf("an array of %d", n))
	}
	for i := range n {
		write(i, redistest.Value{}, false) // uncertain
	}
}

// incrResult records an INCR by its reply (ok = a reply came).
func (c *loadClient) incrResult(v redistest.Value, ok bool) {
	if !ok || v.Err() != nil || v.Type != ':' {
		if ok {
			c.badReply("INCR "+c.counterKey, v, "an integer")
		}
		c.incrUncertain++
		return
	}
	// The counter is ours alone: the value must be the acknowledged count
	// plus one, plus any uncertain increments that were applied.
	lo, hi := c.incrAcked+1, c.incrAcked+c.incrUncertain+1
	if v.Int < lo || v.Int > hi {
		c.problem(&c.unexpected, "unexpected reply", fmt.Sprintf("INCR %s = %d, want %s", c.counterKey, v.Int, span(lo, hi)))
	}
	c.incrAcked++
	c.total.writes.Add(1)
}

// pushResult records RPUSH of seq by its reply.
func (c *loadClient) pushResult(seq int64, v redistest.Value, ok bool) {
	if !ok || v.Err() != nil || v.Type != ':' {
		if ok {
			c.badReply("RPUSH "+c.listKey, v, "an integer")
		}
		c.listUncertain = append(c.listUncertain, seq)
		return
	}
	lo := int64(len(c.listAcked)) + 1
	hi := lo + int64(len(c.listUncertain))
	if v.Int < lo || v.Int > hi {
		c.problem(&c.unexpected, "unexpected reply", fmt.Sprintf("RPUSH %s %d = length %d, want %s", c.listKey, seq, v.Int, span(lo, hi)))
	}
	c.listAcked = append(c.listAcked, seq)
	c.total.writes.Add(1)
}

// badReply counts a reply that is not the one expected: an error reply is
// a client error, anything else an unexpected reply.
func (c *loadClient) badReply(cmd string, v redistest.Value, want string) {
	if err := v.Err(); err != nil {
		c.problem(&c.errors, "error reply", fmt.Sprintf("%s: %v", cmd, err))
		return
	}
	c.problem(&c.unexpected, "unexpected reply", fmt.Sprintf("%s: %s, want %s", cmd, oneLine(v), want))
}

// checkSession asks CLIENT INFO whether the session the proxy replays on
// each new uplink is still the one this client set up: name, db and
// protocol (a RESP3 session gets a verbatim string, RESP2 a bulk string).
func (c *loadClient) checkSession() {
	v, err := c.do("CLIENT", "INFO")
	if err != nil {
		c.lost(err)
		return
	}
	wantType, proto := byte('$'), "2"
	if c.resp3 {
		wantType, proto = '=', "3"
	}
	if v.Err() != nil || v.Type != wantType {
		c.badReply("CLIENT INFO", v, fmt.Sprintf("a reply of type %q", wantType))
		return
	}
	text := v.Str
	if c.resp3 {
		text = strings.TrimPrefix(text, "txt:")
	}
	fields := make(map[string]string)
	for f := range strings.FieldsSeq(text) {
		if k, val, ok := strings.Cut(f, "="); ok {
			fields[k] = val
		}
	}
	want := map[string]string{"name": c.name, "db": strconv.Itoa(c.db), "resp": proto}
	for k, w := range want {
		if fields[k] != w {
			c.problem(&c.unexpected, "unexpected reply", fmt.Sprintf("session state lost: CLIENT INFO %s=%q, want %q", k, fields[k], w))
		}
	}
}

func at(vs []redistest.Value, i int) (redistest.Value, bool) {
	if i < len(vs) {
		return vs[i], true
	}
	return redistest.Value{}, false
}

func isStatus(v redistest.Value, s string) bool { return v.Type == '+' && v.Str == s }

func span(lo, hi int64) string {
	if lo == hi {
		return strconv.FormatInt(lo, 10)
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

func oneLine(v redistest.Value) string {
	s := strings.ReplaceAll(v.String(), "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// load is the set of clients.
type load struct {
	clients  []*loadClient
	total    *loadTotals
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	start    time.Time
	end      time.Time
}

// startLoad connects n clients, client i to addrs[i mod len(addrs)] (the
// proxies of a fleet), and starts them, each writing at
// most rate writes a second (0: unlimited), of every kind in turn, or of
// the kinds given. A client that cannot connect at the start is a set-up
// error.
func startLoad(n int, addrs []string, timeout time.Duration, rate float64, ev *eventLog, kinds []clientKind) (*load, error) {
	l := &load{total: new(loadTotals), stop: make(chan struct{})}
	for id := range n {
		addr := addrs[id%len(addrs)]
		c := newLoadClient(id, addr, timeout, ev, l.total)
		if len(kinds) > 0 {
			c.kind, c.resp3 = kinds[id%len(kinds)], (id/len(kinds))%2 == 1
		}
		if err := c.connect(); err != nil {
			for _, c := range l.clients {
				c.conn.Close()
			}
			return nil, fmt.Errorf("client %d: connect through the proxy at %s: %w", id, addr, err)
		}
		l.clients = append(l.clients, c)
	}
	l.start = time.Now()
	for _, c := range l.clients {
		l.wg.Go(func() { c.run(l.stop, rate) })
	}
	return l, nil
}

// halt stops every client after its current operation and waits for them.
func (l *load) halt() {
	l.signalStop()
	l.wait()
}

// signalStop tells every client to stop after its current operation.
func (l *load) signalStop() { l.stopOnce.Do(func() { close(l.stop) }) }

// wait waits for every client to have stopped.
func (l *load) wait() {
	l.wg.Wait()
	if l.end.IsZero() {
		l.end = time.Now()
	}
}
