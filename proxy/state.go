package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"redis-proxy/config"
)

// The state machine behind pause, unpause, reload and stop. Everything
// here runs under p.mu except the waits.
//
//	starting -> running                        Start
//	running  -> pausing -> paused              Pause (pausing until every unit in flight is done)
//	pausing | paused -> running                Unpause
//	running | paused -> reloading -> (same)    Reload (pauses inside if it switches the uplink)
//	any      -> stopping                       Shutdown
//
// A pause closes the gate (gate.go) and waits until the units that got
// through are done.

// pauseOp is one pause: from the request until unpause.
type pauseOp struct {
	start  time.Time
	done   chan struct{} // closed when paused, or when cancelled
	cancel chan struct{}
	paused bool
}

var errCancelled = errors.New("cancelled")

func (p *Proxy) setState(s State) {
	if p.state == s {
		return
	}
	now := time.Now()
	p.log.Info("state changed", "from", string(p.state), "state", string(s),
		"duration_ms", float64(now.Sub(p.stateSince).Microseconds())/1000)
	p.state, p.stateSince = s, now
}

// State returns the current state.
func (p *Proxy) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// waitDrained waits until no unit is in flight. Past read_time_limit_ms
// (plus a margin) the sessions still holding one are disconnected, so it
// always returns in bounded time unless cancel closes first.
// Blocked commands are released at once (blocking.go).
func (p *Proxy) waitDrained(cancel <-chan struct{}) error {
	stop := make(chan struct{})
	defer close(stop)
	go p.releaseBlocked(stop)
	return p.gate.waitDrained(cancel, p.conf().limit+drainMargin, p.kickStragglers)
}

// kickStragglers disconnects the sessions that still hold a unit past the
// time limit: a MULTI left open, a client not reading its replies.
func (p *Proxy) kickStragglers() {
	p.forEachSession(func(s *session) {
		if s.hold.held() {
			p.timeLimitDisconnects.Add(1)
			s.logWarn("client held a pause past read_time_limit_ms; disconnecting", "in_multi", s.tx.inMulti.Load())
			s.close(errTimeLimit)
		}
	})
}

// cancelPause ends the pause in progress or in force. Under p.mu.
func (p *Proxy) cancelPause() {
	op := p.pause
	if op == nil {
		return
	}
	p.pause = nil
	if op.paused {
		p.statMu.Lock()
		p.pausedTotal += time.Since(p.pausedAt)
		p.statMu.Unlock()
		p.pausedAt = time.Time{}
	} else {
		close(op.cancel)
		close(op.done)
	}
}

// Pause stops forwarding new commands and returns once every command in
// flight has finished (state paused), or ctx is done.
func (p *Proxy) Pause(ctx context.Context) error {
	op, err := p.startPause()
	if err != nil {
		return err
	}
	select {
	case <-op.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !op.paused {
		return fmt.Errorf("pause: %w: unpaused before it completed", ErrState)
	}
	return nil
}

// PauseAsync starts a pause and returns at once.
func (p *Proxy) PauseAsync() error {
	_, err := p.startPause()
	return err
}

func (p *Proxy) startPause() (*pauseOp, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case StatePausing, StatePaused:
		return p.pause, nil
	case StateRunning:
	default:
		return nil, fmt.Errorf("pause: %w (%s)", ErrState, p.state)
	}
	op := &pauseOp{start: time.Now(), done: make(chan struct{}), cancel: make(chan struct{})}
	p.pause = op
	p.pauses.Add(1)
	p.setState(StatePausing)
	p.gate.close()
	go p.finishPause(op)
	return op, nil
}

// finishPause waits for the units in flight, then declares the pause.
func (p *Proxy) finishPause(op *pauseOp) {
	if err := p.waitDrained(op.cancel); err != nil {
		return
	}
	d := time.Since(op.start)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pause != op || p.state != StatePausing {
		return
	}
	op.paused = true
	p.pausedAt = time.Now()
	p.setState(StatePaused)
	close(op.done)
	p.observePause(d)
	p.log.Info("paused", "duration_ms", float64(d.Microseconds())/1000, "waiting_requests", p.gate.waiting.Load())
	p.record("pause", true, op.start, "")
}

// Unpause lets waiting commands go on, in order.
func (p *Proxy) Unpause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case StatePausing, StatePaused:
	default:
		return fmt.Errorf("unpause: %w (%s): not paused", ErrState, p.state)
	}
	var pausedFor time.Duration
	if op := p.pause; op != nil {
		pausedFor = time.Since(op.start)
	}
	p.cancelPause()
	p.setState(StateRunning)
	p.gate.open()
	p.log.Info("unpaused", "paused_ms", pausedFor.Milliseconds(), "waiting_requests", p.gate.waiting.Load())
	p.record("unpause", true, time.Now().Add(-pausedFor), fmt.Sprintf("paused %d ms", pausedFor.Milliseconds()))
	return nil
}

// ReloadAsync starts a reload and returns at once; the outcome is logged.
func (p *Proxy) ReloadAsync() error {
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	if state != StateRunning && state != StatePaused {
		return fmt.Errorf("reload: %w (%s)", ErrState, state)
	}
	go p.Reload(context.Background())
	return nil
}

// Reload reads the configuration again, proves it, pauses, switches every
// client to the new uplink and resumes (or stays paused if it was). It
// returns once done, or with the reason nothing changed. A second reload
// while one runs is refused (ErrState).
func (p *Proxy) Reload(ctx context.Context) error {
	if !p.reloadMu.TryLock() {
		err := fmt.Errorf("reload: %w: a reload is already in progress", ErrState)
		p.reloadsFailed.Add(1)
		p.log.Error("reload refused; the running configuration stays", "err", err)
		return err
	}
	defer p.reloadMu.Unlock()
	start := time.Now()
	changed, err := p.reload(ctx)
	d := time.Since(start)
	if err != nil {
		p.reloadsFailed.Add(1)
		p.log.Error("reload refused; the running configuration stays", "err", err, "duration_ms", d.Milliseconds())
		p.record("reload", false, start, err.Error())
		return err
	}
	if changed == nil {
		p.log.Info("reload: configuration unchanged", "duration_ms", d.Milliseconds())
		p.record("reload", true, start, "configuration unchanged")
		return nil
	}
	p.reloads.Add(1)
	p.statMu.Lock()
	p.lastReload = d
	p.statMu.Unlock()
	p.log.Info("reloaded", "changed", changed, "uplink", p.conf().target.addr, "duration_ms", float64(d.Microseconds())/1000)
	p.record("reload", true, start, strings.Join(changed, ", "))
	return nil
}

func (p *Proxy) reload(ctx context.Context) ([]string, error) {
	if p.loadConfig == nil {
		return nil, &ConfigError{Err: errors.New("reload: no configuration file to read")}
	}
	cfg, err := p.loadConfig()
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	old := p.conf()
	if cfg.Uplink.Sentinel.Enabled() && old.cfg.Uplink.Sentinel.Enabled() {
		cfg.Uplink.Addr = old.cfg.Uplink.Addr // the primary Sentinel names, not the file's
	}
	if cfg.Equal(old.cfg) {
		return nil, nil
	}
	if err := config.ReloadRefusal(old.cfg, cfg); err != nil {
		return nil, &ConfigError{Err: err}
	}
	if err := cfg.LoadTLS(); err != nil {
		return nil, &ConfigError{Err: err}
	}
	switching := config.UplinkChanged(old.cfg, cfg)
	gen := old.target.gen
	if switching {
		gen++
		pctx, cancel := context.WithTimeout(ctx, cfg.ReadTimeLimit())
		err := Prove(pctx, cfg)
		cancel()
		if err != nil {
			return nil, &ConfigError{Err: fmt.Errorf("new uplink does not prove: %w", err)}
		}
	}
	conf, err := buildRuntime(cfg, gen)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	if !switching {
		conf.target = old.target // same connections go on
	}

	p.mu.Lock()
	prev := p.state
	if prev != StateRunning && prev != StatePaused {
		p.mu.Unlock()
		return nil, fmt.Errorf("reload: %w (%s)", ErrState, prev)
	}
	p.setState(StateReloading)
	if switching {
		p.gate.close()
	}
	p.mu.Unlock()

	if switching && prev == StateRunning {
		start := time.Now()
		p.waitDrained(nil)
		p.log.Info("paused for the switch", "duration_ms", float64(time.Since(start).Microseconds())/1000)
	}
	if switching {
		p.installUplink(conf)
	} else {
		p.confp.Store(conf)
		p.forEachSession(func(s *session) { s.apply(changeSettings) })
	}
	p.logMessages.Store(cfg.LogMessages)
	p.health.reconfigured()

	p.mu.Lock()
	if p.state == StateReloading { // not if a stop came meanwhile
		p.setState(prev)
		if prev == StateRunning {
			p.gate.open()
		}
	}
	p.mu.Unlock()
	return config.Diff(old.cfg, cfg), nil
}

// installUplink puts conf, whose uplink is another server, in force
// while the gate is closed, and moves every client to it: the scripts
// loaded through the proxy go first (they do not replicate), then every
// session leaves its connection; subscribers and tracking clients move at
// once, and are subscribed again before this returns (bounded by the
// time limit), so that no waiting command goes on before them.
func (p *Proxy) installUplink(conf *runtimeConfig) {
	if err := p.loadScripts(conf.target, conf.limit); err != nil {
		p.log.Warn("scripts not loaded into the new uplink", "uplink", conf.target.addr, "err", err)
	}
	p.confp.Store(conf)
	var moves []<-chan struct{}
	p.forEachSession(func(s *session) {
		if ch := s.apply(changeUplink); ch != nil {
			moves = append(moves, ch)
		}
	})
	waitAll(moves, conf.limit)
}

// waitAll waits until every channel is closed, or d has passed.
func waitAll(chs []<-chan struct{}, d time.Duration) {
	if len(chs) == 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for _, ch := range chs {
		select {
		case <-ch:
		case <-timer.C:
			return
		}
	}
}
