package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"redis-proxy/config"
)

// Retarget: move every client to another server, as a reload that changes
// uplink.addr does, and write the new address into the configuration
// file. cmd=retarget on a peer is how a switch moves it (switch.go).

// ErrRefused is returned (wrapped) by Switch and Retarget when they refuse
// before anything changed: a bad address, an unreachable target, a target
// that is not a replica of the primary. The admin API answers it with 400.
var ErrRefused = errors.New("refused")

// refused wraps ErrRefused with the reason.
func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// checkAddr checks a HOST:PORT given to switch or retarget.
func checkAddr(addr string) error {
	if addr == "" {
		return refused("missing to=HOST:PORT")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return refused("to=%.100q: want HOST:PORT", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return refused("to=%.100q: bad port", addr)
	}
	return nil
}

// Retarget proves to (dial, TLS, AUTH with the uplink credentials, PING),
// moves every client to it and writes it into the configuration file. It
// checks nothing about the server's role. An address that does not prove
// is refused (ErrRefused) and nothing changes; while a reload or a switch
// runs, or in Sentinel mode, it is ErrState. A configuration file that
// cannot be written is logged; the clients have moved all the same.
func (p *Proxy) Retarget(ctx context.Context, to string) error {
	start := time.Now()
	err := p.retarget(ctx, to)
	if err != nil {
		p.log.Error("retarget refused; the uplink stays", "to", to, "err", err)
		p.record("retarget", false, start, err.Error())
	}
	return err
}

func (p *Proxy) retarget(ctx context.Context, to string) error {
	if err := checkAddr(to); err != nil {
		return fmt.Errorf("retarget: %w", err)
	}
	if p.conf().cfg.Uplink.Sentinel.Enabled() {
		return fmt.Errorf("retarget: %w: Sentinel names the primary (uplink.sentinel)", ErrState)
	}
	if !p.reloadMu.TryLock() {
		return fmt.Errorf("retarget: %w: a reload or a switch is in progress", ErrState)
	}
	defer p.reloadMu.Unlock()
	start := time.Now()
	from := p.conf().cfg.Uplink.Addr
	cfg, err := p.proveAddr(ctx, to)
	if err != nil {
		return fmt.Errorf("retarget: %w", err)
	}
	if err := p.moveTo(cfg); err != nil {
		return fmt.Errorf("retarget: %w", err)
	}
	detail := from + " -> " + to
	if err := p.persist(to); err != nil {
		detail += "; " + err.Error()
	}
	p.log.Info("retargeted", "from", from, "uplink", to, "duration_ms", float64(time.Since(start).Microseconds())/1000)
	p.record("retarget", true, start, detail)
	return nil
}

// proveAddr returns the configuration in force with uplink.addr set to
// addr, once addr proves (Prove); an address that does not is ErrRefused.
func (p *Proxy) proveAddr(ctx context.Context, addr string) (*config.Config, error) {
	cfg := p.conf().cfg.Clone()
	cfg.Uplink.Addr = addr
	pctx, cancel := context.WithTimeout(ctx, cfg.ReadTimeLimit())
	defer cancel()
	if err := Prove(pctx, cfg); err != nil {
		return nil, refused("%v", err)
	}
	return cfg, nil
}

// moveTo puts cfg (the configuration in force with another uplink.addr)
// in force and moves every client to its uplink, as a reload that changes
// the uplink does (state.go): the state is reloading meanwhile, a running
// proxy is paused for the move (only until the commands in flight are
// done), a paused one stays paused. The caller holds reloadMu.
func (p *Proxy) moveTo(cfg *config.Config) error {
	old := p.conf()
	conf, err := buildRuntime(cfg, old.target.gen+1)
	if err != nil {
		return err
	}
	p.mu.Lock()
	prev := p.state
	if prev != StateRunning && prev != StatePaused {
		p.mu.Unlock()
		return fmt.Errorf("%w (%s)", ErrState, prev)
	}
	p.setState(StateReloading)
	p.gate.close()
	p.mu.Unlock()
	if prev == StateRunning {
		p.waitDrained(nil)
	}
	p.installUplink(conf)
	p.mu.Lock()
	if p.state == StateReloading { // not if a stop came meanwhile
		p.setState(prev)
		if prev == StateRunning {
			p.gate.open()
		}
	}
	p.mu.Unlock()
	return nil
}

// persist writes addr as uplink.addr into the configuration file
// (Options.ConfigPath), so that a later reload or restart keeps it. A
// failure is logged and returned; without a file there is nothing to do.
func (p *Proxy) persist(addr string) error {
	if p.configPath == "" {
		p.log.Warn("no configuration file to write the new uplink into; a restart goes back to the old one", "uplink", addr)
		return nil
	}
	if err := config.WriteUplinkAddr(p.configPath, addr); err != nil {
		err = fmt.Errorf("the configuration file still names the old uplink: %w", err)
		p.log.Error("persisting the new uplink failed; a reload or restart would go back to the old one", "uplink", addr, "err", err)
		return err
	}
	return nil
}
