package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"redis-proxy/config"
)

// The switch (cmd=switch): move this proxy and its switch.peers from the
// current primary to one of its replicas with no acknowledged write lost
// and no client disconnected. The phases, in order:
//
//	prove     dial the target with the uplink credentials, PING; it must be
//	          a replica of the current primary (INFO replication)
//	attach    with attach=yes, REPLICAOF the current primary on a target
//	          that is not yet its replica
//	catchup   unpaused: wait until the target streams and keeps up
//	pause     this proxy and every peer (cmd=pause on their admin API)
//	gate      the target's slave_repl_offset reaches the primary's
//	          master_repl_offset read once everyone is paused
//	promote   REPLICAOF NO ONE on the target
//	fence     switch.fence: REPLICAOF target on the old primary
//	retarget  move every client (as a reload does), and every peer
//	          (cmd=retarget)
//	persist   write uplink.addr into the configuration file
//	unpause   this proxy and the peers (those paused before stay paused)
//
// Up to the gate a failure puts everything back (rolled_back); past the
// promotion the switch goes forward, and the report names what failed.
// A switch holds reloadMu: a reload, a retarget and another switch wait
// for none of it and are refused.

// phaseNames are the phases of a switch, in order.
var phaseNames = []string{"prove", "attach", "catchup", "pause", "gate", "promote", "fence", "retarget", "persist", "unpause"}

// pollInterval is how often a switch looks at the target's offset while
// it catches up (unpaused); gatePoll is the same inside the pause.
const (
	pollInterval = 10 * time.Millisecond
	gatePoll     = 500 * time.Microsecond
)

// switchReport is the report shown in Status: the last or the running
// switch, "idle" before the first.
func (p *Proxy) switchReport() SwitchReport {
	p.swMu.Lock()
	defer p.swMu.Unlock()
	r := p.sw
	if r.State == "" {
		return SwitchReport{State: "idle", Phases: []Phase{}}
	}
	r.Phases = slices.Clone(r.Phases)
	return r
}

// switchOp is one switch in progress: its report (published to Status at each
// step) and what the roll-back must undo.
type switchOp struct {
	p      *Proxy
	to     string
	attach bool
	cfg    *config.Config // the configuration in force at the start
	rep    SwitchReport

	target, primary *ctlConn
	wasPaused       bool            // this proxy was paused before the switch
	peersPaused     []string        // peers this switch paused (to unpause)
	keepPaused      map[string]bool // peers paused before the switch, or left on the old primary
	pausedAt        time.Time
}

// publish copies the report to Status.
func (op *switchOp) publish() {
	op.p.swMu.Lock()
	op.p.sw = op.rep
	op.p.sw.Phases = slices.Clone(op.rep.Phases)
	op.p.swMu.Unlock()
}

// phase runs one phase, timed, and publishes the report before and after.
func (op *switchOp) phase(name string, f func() error) error {
	op.rep.Phase = name
	op.publish()
	start := time.Now()
	err := f()
	i := slices.Index(phaseNames, name)
	op.rep.Phases[i].MS = float64(time.Since(start).Microseconds()) / 1000
	op.publish()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Switch moves this proxy and its switch.peers to the server at to (a
// replica of the current primary; with attach, the proxy makes it one
// first), in the phases above, and returns the report. Errors wrap
// ErrRefused when nothing changed (bad address, unreachable target, not a
// replica without attach), ErrState when another switch or a reload runs
// or in Sentinel mode; any other error came after the switch started, and
// the report's RolledBack says whether everything was put back.
func (p *Proxy) Switch(ctx context.Context, to string, attach bool) (SwitchReport, error) {
	op, err := p.beginSwitch(to, attach)
	if err != nil {
		return op.rep, err
	}
	defer p.reloadMu.Unlock()
	return op.run(ctx)
}

// SwitchAsync starts a switch and returns at once, once the checks that
// need no round trip passed (the same errors as Switch for them); the
// progress and the outcome are in Status().Switch and the log.
func (p *Proxy) SwitchAsync(to string, attach bool) error {
	op, err := p.beginSwitch(to, attach)
	if err != nil {
		return err
	}
	go func() {
		defer p.reloadMu.Unlock()
		op.run(context.Background())
	}()
	return nil
}

// beginSwitch makes the checks that need no round trip and takes
// reloadMu; on success the caller runs the switch and unlocks.
func (p *Proxy) beginSwitch(to string, attach bool) (*switchOp, error) {
	cfg := p.conf().cfg
	op := &switchOp{p: p, to: to, attach: attach, cfg: cfg, keepPaused: map[string]bool{}}
	op.rep = SwitchReport{State: "failed", From: cfg.Uplink.Addr, To: to, Phases: make([]Phase, len(phaseNames))}
	for i, n := range phaseNames {
		op.rep.Phases[i].Name = n
	}
	fail := func(err error) (*switchOp, error) {
		err = fmt.Errorf("switch: %w", err)
		op.rep.Error = err.Error()
		op.rep.RolledBack = true // nothing was changed
		p.log.Error("switch refused", "to", to, "err", err)
		p.record("switch", false, time.Now(), err.Error())
		return op, err
	}
	if err := checkAddr(to); err != nil {
		return fail(err)
	}
	if cfg.Uplink.Sentinel.Enabled() {
		return fail(fmt.Errorf("%w: Sentinel owns the topology (uplink.sentinel); switch through Sentinel", ErrState))
	}
	if sameAddr(to, cfg.Uplink.Addr) {
		return fail(refused("%s is the current primary", to))
	}
	if !p.reloadMu.TryLock() {
		return fail(fmt.Errorf("%w: a switch, a reload or a retarget is in progress", ErrState))
	}
	if s := p.State(); s != StateRunning && s != StatePaused && s != StatePausing {
		p.reloadMu.Unlock()
		return fail(fmt.Errorf("%w (%s)", ErrState, s))
	}
	op.rep.State, op.rep.Phase = "running", phaseNames[0]
	op.publish()
	return op, nil
}

// run is the switch itself; reloadMu is held.
func (op *switchOp) run(ctx context.Context) (SwitchReport, error) {
	p := op.p
	start := time.Now()
	p.log.Info("switch started", "from", op.rep.From, "to", op.to, "attach", op.attach, "peers", len(op.cfg.Switch.Peers))
	defer func() {
		if op.target != nil {
			op.target.close()
		}
		if op.primary != nil {
			op.primary.close()
		}
	}()
	err := op.steps(ctx)
	if !op.pausedAt.IsZero() {
		op.rep.PausedMS = float64(time.Since(op.pausedAt).Microseconds()) / 1000
	}
	op.rep.OK = err == nil
	op.rep.State = "done"
	if err != nil {
		op.rep.State = "failed"
	}
	op.rep.Phase = ""
	if err != nil {
		err = fmt.Errorf("switch: %w", err)
		op.rep.Error = err.Error()
	}
	op.publish()
	d := float64(time.Since(start).Microseconds()) / 1000
	detail := fmt.Sprintf("%s -> %s, paused %.1f ms", op.rep.From, op.to, op.rep.PausedMS)
	switch {
	case err != nil:
		p.log.Error("switch failed", "from", op.rep.From, "to", op.to, "err", err, "rolled_back", op.rep.RolledBack, "duration_ms", d)
		detail += "; " + err.Error()
		if op.rep.RolledBack {
			detail += "; rolled back"
		}
	case op.rep.Error != "":
		p.switches.Add(1)
		p.log.Warn("switched, with a problem", "from", op.rep.From, "uplink", op.to, "problem", op.rep.Error, "paused_ms", op.rep.PausedMS, "duration_ms", d)
		detail += "; " + op.rep.Error
	default:
		p.switches.Add(1)
		p.log.Info("switched", "from", op.rep.From, "uplink", op.to, "paused_ms", op.rep.PausedMS, "duration_ms", d)
	}
	p.record("switch", err == nil, start, detail)
	return op.rep, err
}

// steps runs the phases. An error before the promotion has been rolled
// back when it returns (rep.RolledBack); after it, the switch goes on and
// problems are collected in rep.Error with a nil error.
func (op *switchOp) steps(ctx context.Context) error {
	var replica bool
	if err := op.phase("prove", func() error {
		var err error
		replica, err = op.prove(ctx)
		return err
	}); err != nil {
		op.rep.RolledBack = true
		return err
	}
	if !replica {
		if err := op.phase("attach", func() error { return op.attachTarget(ctx) }); err != nil {
			op.rep.RolledBack = true
			return err
		}
	}
	if err := op.phase("catchup", func() error { return op.catchUp(ctx) }); err != nil {
		op.rep.RolledBack = true
		return err
	}
	if err := op.phase("pause", func() error { return op.pauseAll(ctx) }); err != nil {
		op.rollBack()
		return err
	}
	if err := op.phase("gate", func() error { return op.gate(ctx) }); err != nil {
		op.rollBack()
		return err
	}
	if err := op.phase("promote", func() error { return op.promote(ctx) }); err != nil {
		op.rollBack()
		return err
	}
	// Past the promotion, forward only.
	var problems []string
	if op.cfg.Switch.Fence {
		if err := op.phase("fence", func() error { return op.fence(ctx) }); err != nil {
			problems = append(problems, err.Error())
		}
	}
	var moveErr error
	op.phase("retarget", func() error {
		var perr []string
		perr, moveErr = op.retargetAll(ctx)
		problems = append(problems, perr...)
		return nil
	})
	if moveErr != nil {
		// This proxy could not move (it is stopping): nothing else to do.
		op.unpauseAll()
		return fmt.Errorf("retarget: %w", moveErr)
	}
	op.phase("persist", func() error {
		if err := op.p.persist(op.to); err != nil {
			problems = append(problems, "persist: "+err.Error())
		}
		return nil
	})
	op.phase("unpause", func() error { op.unpauseAll(); return nil })
	op.rep.Error = strings.Join(problems, "; ")
	return nil
}

// prove dials the target and the current primary with the uplink
// credentials and reports whether the target is already a replica of the
// primary. Without attach, a target that is not is refused.
func (op *switchOp) prove(ctx context.Context) (bool, error) {
	var err error
	if op.target, err = op.p.dialNode(ctx, op.cfg, op.to); err != nil {
		return false, refused("target %s: %v", op.to, err)
	}
	if err := op.target.ping(ctx); err != nil {
		return false, refused("target %s: %v", op.to, err)
	}
	if op.primary, err = op.p.dialNode(ctx, op.cfg, op.rep.From); err != nil {
		return false, refused("current primary %s: %v", op.rep.From, err)
	}
	ri, err := op.target.info(ctx)
	if err != nil {
		return false, refused("target %s: INFO replication: %v", op.to, err)
	}
	itsPrimary := net.JoinHostPort(ri.masterHost, strconv.Itoa(ri.masterPort))
	replica := ri.role == "slave" && sameAddr(itsPrimary, op.rep.From)
	if !replica && !op.attach {
		what := "a primary"
		if ri.role == "slave" {
			what = "a replica of " + itsPrimary
		}
		return false, refused("target %s is %s, not a replica of %s; attach=yes makes it one", op.to, what, op.rep.From)
	}
	return replica, nil
}

// attachTarget makes the target a replica of the current primary.
func (op *switchOp) attachTarget(ctx context.Context) error {
	host, port, err := net.SplitHostPort(op.rep.From)
	if err != nil {
		return err
	}
	if _, err := op.target.do(ctx, "REPLICAOF", host, port); err != nil {
		return fmt.Errorf("REPLICAOF %s %s on %s: %w", host, port, op.to, err)
	}
	return nil
}

// catchUp waits, unpaused, until the target streams from the primary and
// keeps up: its applied offset has reached the primary's offset read just
// before looking at it (switch.catchup_timeout_ms).
func (op *switchOp) catchUp(ctx context.Context) error {
	deadline := time.Now().Add(op.cfg.Switch.CatchupTimeout())
	state := "no answer"
	for {
		mark, err := op.primary.masterOffset(ctx)
		if err != nil {
			return fmt.Errorf("primary %s: %w", op.rep.From, err)
		}
		ri, err := op.target.info(ctx)
		if err != nil {
			return fmt.Errorf("target %s: %w", op.to, err)
		}
		state = fmt.Sprintf("role:%s master_link_status:%s master_sync_in_progress:%s, offset %d of %d",
			ri.role, ri.masterLinkStatus, ri.masterSyncInProgress, ri.slaveReplOffset, mark)
		if ri.streaming() && ri.masterSyncInProgress == "0" && ri.slaveReplOffset >= mark {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("target %s not caught up within switch.catchup_timeout_ms (%d): %s", op.to, op.cfg.Switch.CatchupTimeoutMS, state)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}

// pauseAll pauses this proxy and every peer, at the same time. If any
// fails, those paused are unpaused.
func (op *switchOp) pauseAll(ctx context.Context) error {
	p := op.p
	peers := op.cfg.Switch.Peers
	// Which peers are paused already: they stay paused afterwards.
	for _, peer := range peers {
		if st, err := op.peerState(ctx, peer); err == nil && (st == string(StatePaused) || st == string(StatePausing)) {
			op.keepPaused[peer] = true
		}
	}
	s := p.State()
	op.wasPaused = s == StatePaused || s == StatePausing
	op.pausedAt = time.Now()
	limit := op.cfg.ReadTimeLimit() + drainMargin + 2*time.Second
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	errs := make([]error, len(peers)+1)
	var wg sync.WaitGroup
	for i, peer := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = op.peerCmd(pctx, peer, url.Values{"cmd": {"pause"}})
		}()
	}
	errs[len(peers)] = p.Pause(pctx)
	wg.Wait()
	var failed []string
	for i, peer := range peers {
		if errs[i] == nil {
			op.peersPaused = append(op.peersPaused, peer)
		} else {
			failed = append(failed, fmt.Sprintf("peer %s: %v", redactPeer(peer), errs[i]))
		}
	}
	if err := errs[len(peers)]; err != nil {
		failed = append(failed, "this proxy: "+err.Error())
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// gate reads the primary's master_repl_offset, everyone being paused,
// and waits until the target has applied it (switch.gate_timeout_ms; 0:
// one look).
func (op *switchOp) gate(ctx context.Context) error {
	want, err := op.primary.masterOffset(ctx)
	if err != nil {
		return fmt.Errorf("primary %s: %w", op.rep.From, err)
	}
	deadline := time.Now().Add(op.cfg.Switch.GateTimeout())
	for {
		ri, err := op.target.info(ctx)
		if err != nil {
			return fmt.Errorf("target %s: %w", op.to, err)
		}
		if ri.streaming() && ri.slaveReplOffset >= want {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("target %s at offset %d of the primary's %d (master_link_status:%s) after switch.gate_timeout_ms (%d)",
				op.to, ri.slaveReplOffset, want, ri.masterLinkStatus, op.cfg.Switch.GateTimeoutMS)
		}
		if err := sleep(ctx, gatePoll); err != nil {
			return err
		}
	}
}

// promote makes the target a primary. An answer lost on the way is
// settled by asking the target its role on a new connection.
func (op *switchOp) promote(ctx context.Context) error {
	_, err := op.target.do(ctx, "REPLICAOF", "NO", "ONE")
	if err == nil {
		return nil
	}
	var rerr replyError
	if errors.As(err, &rerr) {
		return err
	}
	op.target.close()
	op.target = nil
	c, derr := op.p.dialNode(ctx, op.cfg, op.to)
	if derr != nil {
		return fmt.Errorf("%w; and the target's role is unknown: %v", err, derr)
	}
	op.target = c
	ri, ierr := c.info(ctx)
	if ierr != nil {
		return fmt.Errorf("%w; and the target's role is unknown: %v", err, ierr)
	}
	if ri.role == "master" {
		return nil
	}
	return err
}

// fence makes the old primary a replica of the new one.
func (op *switchOp) fence(ctx context.Context) error {
	host, port, err := net.SplitHostPort(op.to)
	if err != nil {
		return err
	}
	if _, err := op.primary.do(ctx, "REPLICAOF", host, port); err != nil {
		return fmt.Errorf("REPLICAOF %s %s on the old primary %s: %w", host, port, op.rep.From, err)
	}
	return nil
}

// retargetAll moves this proxy's clients to the target and sends
// cmd=retarget to every peer. A peer that fails stays paused, on the old
// primary: it is reported, and an operator retargets it.
func (op *switchOp) retargetAll(ctx context.Context) ([]string, error) {
	cfg := op.cfg.Clone()
	cfg.Uplink.Addr = op.to
	peers := op.peersPaused
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	pctx, cancel := context.WithTimeout(ctx, op.cfg.ReadTimeLimit()+drainMargin+2*time.Second)
	defer cancel()
	for i, peer := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = op.peerCmd(pctx, peer, url.Values{"cmd": {"retarget"}, "to": {op.to}})
		}()
	}
	moveErr := op.p.moveTo(cfg)
	wg.Wait()
	var problems []string
	for i, peer := range peers {
		if errs[i] != nil {
			op.keepPaused[peer] = true
			problems = append(problems, fmt.Sprintf("peer %s not retargeted, left paused on the old primary (retarget it: cmd=retarget to=%s): %v",
				redactPeer(peer), op.to, errs[i]))
		}
	}
	return problems, moveErr
}

// unpauseAll unpauses this proxy and the peers this switch paused, but
// not those paused before it (nor a peer left on the old primary).
func (op *switchOp) unpauseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, peer := range op.peersPaused {
		if op.keepPaused[peer] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := op.peerCmd(ctx, peer, url.Values{"cmd": {"unpause"}}); err != nil {
				op.p.log.Error("switch: cannot unpause a peer; unpause it by hand", "peer", redactPeer(peer), "err", err)
			}
		}()
	}
	if !op.wasPaused {
		if err := op.p.Unpause(); err != nil {
			op.p.log.Error("switch: cannot unpause", "err", err)
		}
	}
	wg.Wait()
}

// rollBack undoes a switch stopped before the promotion: everything is
// unpaused; the clients never left the old primary.
func (op *switchOp) rollBack() {
	op.unpauseAll()
	op.rep.RolledBack = true
}
