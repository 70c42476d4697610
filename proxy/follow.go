package proxy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Following a primary elected elsewhere: Redis Sentinel (uplink.sentinel,
// sentinel.go) or a fixed list of servers that may become the primary
// (uplink.candidates). The proxy never promotes a server itself.
//
// One goroutine, followLoop, makes every decision and is the only one that
// moves the proxy for a failover. It wakes after each health check (with
// its result) and at each +switch-master a sentinel announces.
//
// While the uplink fails its health check and no new primary is known,
// the loop holds the clients' commands at the pause gate ("the hold"):
// for at most read_time_limit_ms, then it unpauses and commands get the
// uplink-unavailable error, as without a failover. One hold per outage:
// the next is possible once a check passed again or a failover happened.
// A move to the new primary ends the hold; clients stay connected, only
// the commands in flight on the dead primary get the uplink-lost error.

// failoverFailures is how many health checks in a row the uplink must
// fail before the proxy moves to a candidate that reports role master.
const failoverFailures = 3

// defaultHold bounds the hold when read_time_limit_ms is 0 (no limit).
const defaultHold = 5 * time.Second

// follower is what the check loop and the Sentinel watcher tell
// followLoop, and what Status shows of it.
type follower struct {
	checks   chan Health        // a health check's result; dropped while the loop is busy
	switched chan announced     // a new master's address from a sentinel
	suspect  chan chan struct{} // a client's dial failed: hold now (closed once acted on)

	mu sync.Mutex
	st FollowStatus
}

// announced is a master address a sentinel gave.
type announced struct {
	addr string
	why  string
	at   time.Time
	// ask: an answer to get-master-addr-by-name, from one sentinel that
	// may not have learnt of a switch yet; it moves the proxy only while
	// the uplink is not a healthy master. A +switch-master moves it at once.
	ask bool
}

func (f *follower) init() {
	f.checks = make(chan Health, 1)
	f.switched = make(chan announced, 4)
	f.suspect = make(chan chan struct{})
}

// holdNow asks followLoop to start the hold at once (a client's dial to
// the uplink failed, before any health check has), and waits until it
// has, within d. It reports false when no one follows.
func (f *follower) holdNow(d time.Duration) bool {
	ack := make(chan struct{})
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case f.suspect <- ack:
	case <-timer.C:
		return false
	}
	select {
	case <-ack:
		return true
	case <-timer.C:
		return false
	}
}

// observe hands a health check's result to followLoop, without waiting.
func (f *follower) observe(h Health) {
	select {
	case f.checks <- h:
	default:
	}
}

func (f *follower) status() FollowStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *follower) update(fn func(*FollowStatus)) {
	f.mu.Lock()
	fn(&f.st)
	f.mu.Unlock()
}

// followMode names the mode a configuration is in: "sentinel",
// "candidates" or "".
func followMode(sentinel bool, candidates []string) string {
	switch {
	case sentinel:
		return "sentinel"
	case len(candidates) > 0:
		return "candidates"
	}
	return ""
}

// followRun is followLoop's own state.
type followRun struct {
	p        *Proxy
	hold     *pauseOp // the hold in force (our pause), or nil
	holdEnd  *time.Timer
	holdUsed bool     // a hold was made in this outage
	failures int      // health checks failed in a row
	former   []string // the uplinks moved away from (candidates mode)
	split    string   // the two-masters error in force, "" when none
	healthy  bool     // the last check found the uplink a master
}

// followLoop runs until ctx ends (Shutdown).
func (p *Proxy) followLoop(ctx context.Context) {
	defer p.wg.Done()
	r := &followRun{p: p}
	defer r.endHold()
	for {
		var expired <-chan time.Time
		if r.holdEnd != nil {
			expired = r.holdEnd.C
		}
		select {
		case <-ctx.Done():
			return
		case h := <-p.follow.checks:
			r.checked(ctx, h)
		case a := <-p.follow.switched:
			r.failover(ctx, a, false)
		case ack := <-p.follow.suspect:
			cfg := p.conf().cfg
			if followMode(cfg.Uplink.Sentinel.Enabled(), cfg.Uplink.Candidates) != "" {
				r.startHold()
			}
			close(ack)
		case <-expired:
			r.holdEnd = nil
			p.log.Warn("no new primary within read_time_limit_ms: commands get the uplink-unavailable error",
				"uplink", p.conf().cfg.Uplink.Addr)
			r.endHold()
		}
	}
}

// checked acts on one health check of the uplink.
func (r *followRun) checked(ctx context.Context, h Health) {
	p := r.p
	cfg := p.conf().cfg
	mode := followMode(cfg.Uplink.Sentinel.Enabled(), cfg.Uplink.Candidates)
	if mode == "" {
		r.endHold() // the mode was turned off by a reload
		r.splitBrain(nil)
		return
	}
	healthy := h.OK && h.Role == "master"
	r.healthy = healthy
	switch {
	case healthy:
		r.failures, r.holdUsed = 0, false
		if r.hold != nil {
			p.log.Info("uplink back before a new primary was known", "uplink", cfg.Uplink.Addr)
			r.endHold()
		}
	case !h.OK:
		r.failures++
		r.startHold()
	}
	switch mode {
	case "sentinel":
		if addr, sentinel, err := p.askSentinels(ctx, cfg); err == nil && !sameAddr(addr, cfg.Uplink.Addr) {
			r.failover(ctx, announced{addr: addr, why: "sentinel " + sentinel + " get-master-addr-by-name", at: time.Now(), ask: true}, false)
		}
	case "candidates":
		r.candidates(ctx, h, healthy)
	}
}

// candidates asks every other server its role and moves to the one that
// is master, when the uplink is due to be left and exactly one is.
func (r *followRun) candidates(ctx context.Context, h Health, healthy bool) {
	p := r.p
	cfg := p.conf().cfg
	cur := cfg.Uplink.Addr
	var others []string
	for _, a := range append(slices.Clone(cfg.Uplink.Candidates), r.former...) {
		if !sameAddr(a, cur) && !slices.Contains(others, a) {
			others = append(others, a)
		}
	}
	roles := p.roles(ctx, others)
	var masters []string
	if healthy {
		masters = append(masters, cur)
	}
	for i, a := range others {
		if roles[i] == "master" {
			masters = append(masters, a)
		}
	}
	if len(masters) >= 2 {
		r.splitBrain(masters)
		return
	}
	r.splitBrain(nil)
	due := r.failures >= failoverFailures || (h.OK && h.Role != "master")
	if healthy || !due || len(masters) != 1 {
		return
	}
	why := fmt.Sprintf("uplink failed %d health checks in a row", r.failures)
	if h.OK {
		why = "uplink reports role " + h.Role
	}
	r.failover(ctx, announced{addr: masters[0], why: why + "; the only master among the candidates", at: time.Now()}, true)
}

// splitBrain records that masters (two or more) all report role master,
// or, with none, that this is over. It logs and records the change.
func (r *followRun) splitBrain(masters []string) {
	p := r.p
	msg := ""
	if len(masters) > 0 {
		msg = "more than one server reports role master: " + strings.Join(masters, ", ") + "; the proxy does not move"
	}
	if msg == r.split {
		return
	}
	r.split = msg
	// The history first: whoever sees the error in the status sees why.
	if msg != "" {
		p.log.Error("failover: two masters at once; not moving", "masters", strings.Join(masters, ","), "uplink", p.conf().cfg.Uplink.Addr)
		p.record("failover", false, time.Now(), msg)
	} else {
		p.log.Info("failover: one master again", "uplink", p.conf().cfg.Uplink.Addr)
	}
	p.follow.update(func(st *FollowStatus) { st.Error = msg })
}

// failover moves every client to a.addr once it answers as master
// (within read_time_limit_ms), as a retarget does; persist writes it into
// the configuration file (candidates mode; Sentinel mode never does).
func (r *followRun) failover(ctx context.Context, a announced, persist bool) {
	p := r.p
	from := p.conf().cfg.Uplink.Addr
	if a.addr == "" || sameAddr(a.addr, from) || (a.ask && r.healthy && from != "") {
		return
	}
	start := time.Now()
	fail := func(err error) {
		p.log.Error("failover failed; the uplink stays", "from", from, "to", a.addr, "reason", a.why, "err", err)
		p.record("failover", false, start, fmt.Sprintf("%s -> %s (%s): %v", from, a.addr, a.why, err))
	}
	if err := p.waitMaster(ctx, a.addr); err != nil {
		fail(err)
		return
	}
	cfg := p.conf().cfg.Clone()
	cfg.Uplink.Addr = a.addr
	p.reloadMu.Lock()
	if r.hold != nil { // our pause may still be draining: moveTo needs it paused
		select {
		case <-r.hold.done:
		case <-time.After(p.conf().limit + drainMargin + time.Second):
		}
	}
	moveStart := time.Now()
	err := p.moveTo(cfg)
	p.reloadMu.Unlock()
	if err != nil {
		fail(err)
		return
	}
	detail := fmt.Sprintf("%s -> %s (%s)", from, a.addr, a.why)
	if persist {
		if err := p.persist(a.addr); err != nil {
			detail += "; " + err.Error()
		}
	}
	held := time.Since(moveStart)
	if r.hold != nil {
		held = time.Since(r.hold.start)
	}
	r.endHold()
	r.failures, r.holdUsed = 0, false
	if from != "" && !slices.Contains(r.former, from) {
		r.former = append(r.former, from)
	}
	p.health.reconfigured()
	if from == "" { // the first master a sentinel names: not a failover
		p.log.Info("Sentinel names the primary", "uplink", a.addr, "reason", a.why)
		return
	}
	p.failovers.Add(1)
	p.log.Info("failover: following the new primary", "from", from, "to", a.addr, "reason", a.why,
		"held_ms", float64(held.Microseconds())/1000, "since_announce_ms", float64(time.Since(a.at).Microseconds())/1000)
	p.record("failover", true, start, fmt.Sprintf("%s; clients held %d ms", detail, held.Milliseconds()))
}

// startHold pauses the proxy while the uplink fails and no new primary is
// known, at most read_time_limit_ms. Not when a hold was already made in
// this outage, nor when the proxy is not running (an operator's pause is
// left alone).
func (r *followRun) startHold() {
	p := r.p
	if r.hold != nil || r.holdUsed {
		return
	}
	p.mu.Lock()
	running := p.state == StateRunning
	p.mu.Unlock()
	if !running {
		return
	}
	op, err := p.startPause()
	if err != nil {
		return
	}
	limit := p.conf().limit
	if limit <= 0 {
		limit = defaultHold
	}
	r.hold, r.holdUsed = op, true
	r.holdEnd = time.NewTimer(limit)
	p.log.Warn("uplink failing: holding commands until a new primary is known", "uplink", p.conf().cfg.Uplink.Addr,
		"at_most_ms", limit.Milliseconds())
}

// endHold unpauses, if the pause in force is still the hold's.
func (r *followRun) endHold() {
	p := r.p
	if r.holdEnd != nil {
		r.holdEnd.Stop()
		r.holdEnd = nil
	}
	op := r.hold
	if op == nil {
		return
	}
	r.hold = nil
	p.mu.Lock()
	ours := p.pause == op
	p.mu.Unlock()
	if ours {
		p.Unpause()
	}
}

// waitMaster waits, at most read_time_limit_ms, until addr answers (with
// the uplink's credentials and TLS settings) and reports role master.
func (p *Proxy) waitMaster(ctx context.Context, addr string) error {
	cfg := p.conf().cfg
	limit := cfg.ReadTimeLimit()
	if limit <= 0 {
		limit = defaultHold
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		role, err := p.role(ctx, addr)
		switch {
		case err == nil && role == "master":
			return nil
		case err == nil:
			last = fmt.Errorf("%s reports role %s", addr, role)
		default:
			last = err
		}
		if sleep(ctx, 50*time.Millisecond) != nil {
			return fmt.Errorf("not master within read_time_limit_ms: %w", last)
		}
	}
}

// role dials addr with the uplink settings and returns its INFO
// replication role.
func (p *Proxy) role(ctx context.Context, addr string) (string, error) {
	c, err := p.dialNode(ctx, p.conf().cfg, addr)
	if err != nil {
		return "", err
	}
	defer c.close()
	ri, err := c.info(ctx)
	if err != nil {
		return "", err
	}
	return ri.role, nil
}

// roles asks every server its role at once, each within a health check's
// time; "" for one that does not answer.
func (p *Proxy) roles(ctx context.Context, addrs []string) []string {
	conf := p.conf()
	timeout := max(conf.cfg.Uplink.CheckInterval(), minCheckTimeout)
	if conf.limit > 0 {
		timeout = min(timeout, max(conf.limit, minCheckTimeout))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := make([]string, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { out[i], _ = p.role(ctx, a) })
	}
	wg.Wait()
	return out
}
