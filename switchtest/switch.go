package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"redis-proxy/internal/proc"
	"redis-proxy/internal/redistest"
)

// SwitchResult is one run of the switch procedure. Durations are in
// milliseconds; a step not reached is 0.
type SwitchResult struct {
	N          int    `json:"n"`
	From       string `json:"from"`
	To         string `json:"to"`
	OK         bool   `json:"ok"`
	FailedStep string `json:"failed_step,omitempty"`
	Error      string `json:"error,omitempty"`
	RolledBack string `json:"rolled_back,omitempty"` // what the roll-back did

	SyncMS        float64 `json:"initial_sync_ms"` // REPLICAOF until the replica is in sync and keeps up
	ForkMS        float64 `json:"fork_ms"`         // the master's fork for the full sync (latest_fork_usec)
	PauseMS       float64 `json:"pause_ms"`        // cmd=pause round trip (returns once paused)
	ProxyPauseMS  float64 `json:"proxy_pause_ms"`  // counters.last_pause_ms from /info.json
	CatchUpMS     float64 `json:"catch_up_ms"`     // master offset read until the replica has it
	PromoteMS     float64 `json:"promote_ms"`      // REPLICAOF NO ONE
	ConfigMS      float64 `json:"config_write_ms"` // writing the config file (paused)
	ReloadMS      float64 `json:"reload_ms"`       // cmd=reload round trip
	ProxyReloadMS float64 `json:"proxy_reload_ms"` // counters.last_reload_ms
	UnpauseMS     float64 `json:"unpause_ms"`      // cmd=unpause round trip
	HeldMS        float64 `json:"held_ms"`         // cmd=pause sent until cmd=unpause answered
	// OtherMS is the part of HeldMS in none of the steps above: this
	// program's own scheduling (on a busy machine).
	OtherMS      float64 `json:"other_ms"`
	MasterOffset int64   `json:"master_offset"`  // master_repl_offset while paused
	LagBytes     int64   `json:"lag_bytes"`      // how far behind the replica was at the first look
	CatchUpPolls int     `json:"catch_up_polls"` // INFO calls until it had caught up
	WritesPerS   float64 `json:"writes_per_s"`   // acknowledged writes/s since the previous switch
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// switchAborted says a switch failed at step; the run fails with it.
type switchAborted struct {
	step string
	err  error
}

func (e *switchAborted) Error() string { return e.step + ": " + e.err.Error() }

// doSwitch moves the proxy from r.cur to a fresh redis-server: with
// cmd=switch (cmdswitch.go), or with -manual the way the fallback runbook
// of doc/operations.md does, step by step (switchSteps):
//
//  1. start a new, empty redis-server
//  2. REPLICAOF the current one; wait for the initial sync, and until the
//     replica has replayed what the master buffered meanwhile
//  3. cmd=pause (returns once no command is in flight)
//  4. read the master's master_repl_offset; wait until the replica's
//     slave_repl_offset has reached it (every acknowledged write is there)
//  5. REPLICAOF NO ONE on the replica
//  6. write the config file with the new uplink; cmd=reload
//  7. cmd=unpause (a reload keeps a paused proxy paused)
//  8. stop the old server
//
// Past a step's deadline it rolls back: while the proxy is still on the
// old uplink, cmd=unpause there and stop the new server.
func (r *runner) doSwitch(ctx context.Context) SwitchResult {
	r.attempted++
	res := SwitchResult{N: r.attempted, From: r.cur.String()}
	now := time.Now()
	if d := now.Sub(r.mark); d > 0 {
		w := r.ld.total.writes.Load()
		res.WritesPerS = float64(w-r.markWrites) / d.Seconds()
		r.mark, r.markWrites = now, w
	}
	r.ps.beginSwitch()
	defer r.ps.endSwitch()
	var err error
	if r.o.Manual || r.o.inject != "" {
		err = r.switchSteps(ctx, &res)
	} else {
		err = r.cmdSwitch(ctx, &res)
	}
	r.ev.setPhase("load")
	if err != nil {
		var a *switchAborted
		if errors.As(err, &a) {
			res.FailedStep = a.step
		}
		res.Error = err.Error()
		r.logf("switch %d FAILED: %v; roll-back: %s", res.N, err, orNone(res.RolledBack))
		r.rep.fail("switch %d (%s -> %s) failed: %v; roll-back: %s", res.N, res.From, orDash(res.To), err, orNone(res.RolledBack))
		return res
	}
	res.OK = true
	r.logf("switch %d: %s -> %s: pause %.1f ms (proxy %.1f), catch-up %.1f ms, reload %.1f ms (proxy %.1f), clients held %.1f ms; %.0f writes/s",
		res.N, res.From, res.To, res.PauseMS, res.ProxyPauseMS, res.CatchUpMS, res.ReloadMS, res.ProxyReloadMS, res.HeldMS, res.WritesPerS)
	return res
}

func (r *runner) switchSteps(ctx context.Context, res *SwitchResult) error {
	old := r.cur
	step := func(name string) {
		r.ev.setPhase(fmt.Sprintf("switch %d: %s", res.N, name))
		r.vlogf("switch %d: %s", res.N, name)
	}
	abort := func(name string, err error) error { return &switchAborted{step: name, err: err} }

	// 1. A fresh server.
	step("start server")
	nw, err := r.startNode(ctx)
	if err != nil {
		return abort("start server", err)
	}
	res.To = nw.String()
	dropNew := func() {
		if err := nw.stop(); err != nil {
			r.logf("stopping %s: %v", nw, err)
		}
	}

	// 2. Replica of the current one, initial sync done.
	step("replicaof")
	host, port, err := net.SplitHostPort(old.addr())
	if err != nil {
		dropNew()
		return abort("replicaof", err)
	}
	start := time.Now()
	if _, err := nw.do("REPLICAOF", host, port); err != nil {
		dropNew()
		res.RolledBack = "stopped " + nw.String()
		return abort("replicaof", err)
	}
	step("initial sync")
	err = proc.WaitFor(ctx, syncDeadline, 20*time.Millisecond, func() (bool, string, error) {
		m, err := nw.info("replication")
		if err != nil {
			return false, "", err
		}
		done, state := inSync(m)
		return done, state, nil
	})
	if err == nil {
		// Right after its full sync the replica can still be well behind:
		// Redis 7.0 starts streaming to a replica that synced diskless
		// only at the replica's first REPLCONF ACK, sent from its
		// once-a-second cron, and the replica then replays what the
		// master buffered meanwhile. A pause now would hold the clients
		// for up to a second: wait, unpaused, until the replica is at the
		// offset the master has at that moment on the first look.
		err = r.keepUp(ctx, old, nw, time.Now().Add(syncDeadline))
	}
	res.SyncMS = ms(time.Since(start))
	if err == nil {
		// The master forked to send the full sync; a fork of a big
		// process stops it (and so its clients) for that long.
		if us, ferr := old.infoInt("stats", "latest_fork_usec"); ferr == nil {
			res.ForkMS = float64(us) / 1000
		}
	}
	if err != nil {
		dropNew()
		res.RolledBack = "stopped " + nw.String()
		return abort("initial sync", err)
	}

	// 3. Pause. From here on a failure must unpause the proxy.
	step("pause")
	pauseStart := time.Now()
	err = r.admin(ctx, "pause", r.rtl()+adminMargin)
	res.PauseMS = ms(time.Since(pauseStart))
	rollBack := func() {
		res.RolledBack = r.rollBack(ctx, old, nw)
	}
	if err != nil {
		rollBack()
		return abort("pause", err)
	}

	// 4. Catch-up: every byte the master has written to its replication
	// stream (every acknowledged write among them) has reached the
	// replica. The proxy is paused, so nothing is added meanwhile but the
	// master's own pings.
	step("catch-up")
	start = time.Now()
	target, err := old.infoInt("replication", "master_repl_offset")
	if err == nil {
		res.MasterOffset = target
		first := true
		want, deadline := target, catchUpDeadline
		if r.o.inject == "catch-up" && res.N == 1 {
			want, deadline = target+1<<40, 300*time.Millisecond
		}
		err = proc.WaitFor(ctx, deadline, 2*time.Millisecond, func() (bool, string, error) {
			m, err := nw.info("replication")
			if err != nil {
				return false, "", err
			}
			res.CatchUpPolls++
			if first {
				first = false
				if off, err := intField(m, "slave_repl_offset"); err == nil {
					res.LagBytes = max(0, target-off)
				}
			}
			return caughtUp(m, want)
		})
	}
	res.CatchUpMS = ms(time.Since(start))
	if err != nil {
		rollBack()
		return abort("catch-up", err)
	}
	r.vlogf("switch %d: the replica reached the master's offset %d (%d bytes behind at first, %d polls)", res.N, target, res.LagBytes, res.CatchUpPolls)

	// 5. Promote.
	step("promote")
	start = time.Now()
	_, err = nw.do("REPLICAOF", "NO", "ONE")
	if err == nil {
		err = proc.WaitFor(ctx, promoteDeadline, 2*time.Millisecond, func() (bool, string, error) {
			m, err := nw.info("replication")
			if err != nil {
				return false, "", err
			}
			return m["role"] == "master", "role:" + m["role"], nil
		})
	}
	res.PromoteMS = ms(time.Since(start))
	if err != nil {
		rollBack()
		return abort("promote", err)
	}

	// 6. Point the config at the new server; reload.
	step("reload")
	r.cfg.Uplink.Addr = nw.addr()
	if r.o.inject == "reload" && res.N == 1 {
		if r.cfg.Uplink.Addr, err = redistest.FreeAddr(); err != nil {
			return abort("reload", err)
		}
	}
	start = time.Now()
	err = r.writeConfig()
	res.ConfigMS = ms(time.Since(start))
	if err == nil {
		start = time.Now()
		err = r.admin(ctx, "reload", r.rtl()+adminMargin)
		res.ReloadMS = ms(time.Since(start))
	}
	if err != nil {
		// Did the proxy switch anyway (e.g. the reply was lost)?
		info, ierr := r.adm.info(ctx)
		if ierr == nil && info.Uplink.Addr == nw.addr() {
			r.cur = nw
			res.RolledBack = "none possible: the proxy is on " + nw.String() + " although cmd=reload failed; " +
				r.unpauseOnly(ctx)
			return abort("reload", err)
		}
		r.cfg.Uplink.Addr = old.addr()
		if werr := r.writeConfig(); werr != nil {
			r.logf("restoring the config file: %v", werr)
		}
		rollBack()
		return abort("reload", err)
	}
	r.cur = nw

	// 7. Unpause.
	step("unpause")
	start = time.Now()
	err = r.admin(ctx, "unpause", unpauseDeadline)
	if err != nil && ctx.Err() == nil {
		r.logf("switch %d: cmd=unpause: %v; once more", res.N, err)
		err = r.admin(ctx, "unpause", unpauseDeadline)
	}
	res.UnpauseMS = ms(time.Since(start))
	res.HeldMS = ms(time.Since(pauseStart))
	res.OtherMS = max(0, res.HeldMS-res.PauseMS-res.CatchUpMS-res.PromoteMS-res.ConfigMS-res.ReloadMS-res.UnpauseMS)
	if err != nil {
		return abort("unpause", err)
	}

	// The proxy's own view.
	actx, cancel := context.WithTimeout(ctx, unpauseDeadline)
	info, err := r.adm.info(actx)
	cancel()
	if err != nil {
		return abort("info.json", err)
	}
	res.ProxyPauseMS = info.Counters.LastPauseMS
	res.ProxyReloadMS = info.Counters.LastReloadMS
	if info.Uplink.Addr != nw.addr() || info.State != "running" {
		return abort("info.json", fmt.Errorf("state %s, uplink %s; want running on %s", info.State, info.Uplink.Addr, nw.addr()))
	}

	// 8. The old server goes.
	step("stop old server")
	if err := old.stop(); err != nil {
		r.logf("stopping %s: %v", old, err)
	}
	return nil
}

// keepUp waits until the replica, looked at right after the master's
// offset was read, already has it: then it keeps up with the load and
// the catch-up in the pause is only the last few bytes.
func (r *runner) keepUp(ctx context.Context, master, replica *node, deadline time.Time) error {
	for {
		mark, err := master.infoInt("replication", "master_repl_offset")
		if err != nil {
			return err
		}
		polls := 0
		err = proc.WaitFor(ctx, time.Until(deadline), 5*time.Millisecond, func() (bool, string, error) {
			m, err := replica.info("replication")
			if err != nil {
				return false, "", err
			}
			polls++
			done, state, err := caughtUp(m, mark)
			return done, "keeping up: " + state, err
		})
		if err != nil || polls == 1 {
			return err
		}
	}
}

// inSync reports, from a replica's INFO replication, whether its initial
// sync is done and its link to the master is up.
func inSync(m map[string]string) (bool, string) {
	state := fmt.Sprintf("role:%s master_link_status:%s master_sync_in_progress:%s",
		m["role"], m["master_link_status"], m["master_sync_in_progress"])
	return m["role"] == "slave" && m["master_link_status"] == "up" && m["master_sync_in_progress"] == "0", state
}

// caughtUp reports, from a replica's INFO replication, whether it has
// applied its master's replication stream up to offset target (the
// master's master_repl_offset) with its link still up.
func caughtUp(m map[string]string, target int64) (bool, string, error) {
	off, err := intField(m, "slave_repl_offset")
	if err != nil {
		return false, "", err
	}
	state := fmt.Sprintf("replica at offset %d of %d, master_link_status:%s", off, target, m["master_link_status"])
	return m["role"] == "slave" && off >= target && m["master_link_status"] == "up", state, nil
}

// admin posts one /cmd/ with a deadline.
func (r *runner) admin(ctx context.Context, cmd string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return r.adm.command(ctx, cmd)
}

// rollBack returns the proxy to the old uplink, which it never left:
// cmd=unpause there, and the new server is stopped. It says what it did.
func (r *runner) rollBack(ctx context.Context, old, nw *node) string {
	r.cur = old
	did := r.unpauseOnly(ctx)
	if err := nw.stop(); err != nil {
		return did + "; stopping " + nw.String() + ": " + err.Error()
	}
	return did + "; stopped " + nw.String()
}

// unpauseOnly sends cmd=unpause and says how it went.
func (r *runner) unpauseOnly(ctx context.Context) string {
	if err := r.admin(ctx, "unpause", unpauseDeadline); err != nil {
		return "cmd=unpause failed: " + err.Error()
	}
	return "cmd=unpause on " + r.cur.String()
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "none needed"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
