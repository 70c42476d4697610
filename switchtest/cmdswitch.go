package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// switchReport is the reply of cmd=switch (doc/admin-api.md).
type switchReport struct {
	OK         bool    `json:"ok"`
	Error      string  `json:"error"`
	RolledBack bool    `json:"rolled_back"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	PausedMS   float64 `json:"paused_ms"`
	Phases     []struct {
		Name string  `json:"name"`
		MS   float64 `json:"ms"`
	} `json:"phases"`
}

func (s switchReport) phase(name string) float64 {
	for _, p := range s.Phases {
		if p.Name == name {
			return p.MS
		}
	}
	return 0
}

// switchCmd posts cmd=switch to=addr attach=yes and returns the report;
// an error is a reply that is not the report, or a transport failure.
func (a *adminClient) switchCmd(ctx context.Context, addr string) (switchReport, int, error) {
	var rep switchReport
	form := url.Values{"cmd": {"switch"}, "to": {addr}, "attach": {"yes"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/cmd/", strings.NewReader(form.Encode()))
	if err != nil {
		return rep, 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.hc.Do(req)
	if err != nil {
		return rep, 0, fmt.Errorf("cmd=switch: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return rep, resp.StatusCode, fmt.Errorf("cmd=switch: reading the reply: %w", err)
	}
	if err := json.Unmarshal(body, &rep); err != nil || rep.Phases == nil {
		return rep, resp.StatusCode, fmt.Errorf("cmd=switch: HTTP %d, not the report of doc/admin-api.md: %q", resp.StatusCode, body)
	}
	return rep, resp.StatusCode, nil
}

// cmdSwitch moves the proxy from r.cur to a fresh redis-server with one
// command, cmd=switch to=... attach=yes: the proxy makes the new server a
// replica, waits for it, pauses (itself and its peers), checks the
// offsets, promotes it, fences the old primary, moves every client and
// writes the config file. The phases' times go into the result; the old
// server, a replica of the new one now, is stopped afterwards.
func (r *runner) cmdSwitch(ctx context.Context, res *SwitchResult) error {
	old := r.cur
	r.ev.setPhase(fmt.Sprintf("switch %d: start server", res.N))
	nw, err := r.startNode(ctx)
	if err != nil {
		return &switchAborted{step: "start server", err: err}
	}
	res.To = nw.String()
	r.ev.setPhase(fmt.Sprintf("switch %d: cmd=switch", res.N))
	sctx, cancel := context.WithTimeout(ctx, syncDeadline+r.rtl()+adminMargin)
	defer cancel()
	start := time.Now()
	rep, code, err := r.adm.switchCmd(sctx, nw.addr())
	total := ms(time.Since(start))
	res.SyncMS = rep.phase("attach") + rep.phase("catchup")
	res.PauseMS = rep.phase("pause")
	res.CatchUpMS = rep.phase("gate")
	res.PromoteMS = rep.phase("promote") + rep.phase("fence")
	res.ReloadMS = rep.phase("retarget")
	res.ConfigMS = rep.phase("persist")
	res.UnpauseMS = rep.phase("unpause")
	res.HeldMS = rep.PausedMS
	res.OtherMS = max(0, total-res.SyncMS-res.PauseMS-res.CatchUpMS-res.PromoteMS-res.ReloadMS-res.ConfigMS-res.UnpauseMS-rep.phase("prove"))
	if err == nil && (code != http.StatusOK || !rep.OK || rep.Error != "") {
		err = fmt.Errorf("HTTP %d: %s (rolled_back %v)", code, rep.Error, rep.RolledBack)
	}
	if err != nil {
		step := "cmd=switch"
		for i := len(rep.Phases) - 1; i >= 0; i-- {
			if rep.Phases[i].MS > 0 {
				step = rep.Phases[i].Name
				break
			}
		}
		if rep.RolledBack || code == http.StatusBadRequest {
			res.RolledBack = "by the proxy (rolled_back); stopped " + nw.String()
			if serr := nw.stop(); serr != nil {
				res.RolledBack += ": " + serr.Error()
			}
		} else {
			res.RolledBack = "none: the proxy did not roll back"
		}
		return &switchAborted{step: step, err: err}
	}
	r.cur = nw
	r.cfg.Uplink.Addr = nw.addr() // the proxy wrote it into the file
	// The offset at which the new primary took over (its
	// second_repl_offset is that + 1): the old one's at the gate.
	if off, err := nw.infoInt("replication", "second_repl_offset"); err == nil {
		res.MasterOffset = off - 1
	}

	actx, cancel2 := context.WithTimeout(ctx, unpauseDeadline)
	info, err := r.adm.info(actx)
	cancel2()
	if err != nil {
		return &switchAborted{step: "info.json", err: err}
	}
	res.ProxyPauseMS = info.Counters.LastPauseMS
	if info.Uplink.Addr != nw.addr() || info.State != "running" {
		return &switchAborted{step: "info.json", err: fmt.Errorf("state %s, uplink %s; want running on %s", info.State, info.Uplink.Addr, nw.addr())}
	}
	if len(r.fleet) > 1 {
		// Every proxy of the fleet, by /info.json and by its config file.
		actx, cancel3 := context.WithTimeout(ctx, unpauseDeadline)
		err := r.checkFleet(actx, nw.addr())
		cancel3()
		if err != nil {
			return &switchAborted{step: "fleet", err: err}
		}
	}
	r.ev.setPhase(fmt.Sprintf("switch %d: stop old server", res.N))
	if err := old.stop(); err != nil {
		r.logf("stopping %s: %v", old, err)
	}
	return nil
}
