package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is the outcome of a run; -json prints it as it is.
type Report struct {
	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`

	Clients         int     `json:"clients"`
	ClientMix       string  `json:"client_mix"`
	Mode            string  `json:"mode"`             // "bounded", "forever" or "on demand"
	SwitchesPlanned int     `json:"switches_planned"` // 0: forever or on demand
	SwitchesDone    int     `json:"switches_done"`
	SwitchesFailed  int     `json:"switches_failed"`
	StoppedEarly    bool    `json:"stopped_early,omitempty"` // SIGINT before every planned switch
	LoadS           float64 `json:"load_s"`
	RedisVersion    string  `json:"redis_version"`
	ProxyVersion    string  `json:"proxy_version"`
	ProxyBinary     string  `json:"proxy_binary"`
	ReadTimeLimitMS int     `json:"read_time_limit_ms"`
	RatePerClient   float64 `json:"rate_per_client"` // writes/s limit; 0 = none
	// PauseBoundMS is what every cmd=pause must stay below: far below
	// read_time_limit_ms, which would mean the pause waited for a client
	// until the limit disconnected it.
	PauseBoundMS float64 `json:"pause_bound_ms"`
	SlowPauses   int     `json:"slow_pauses"` // pauses at or above the bound

	// Per-switch figures over the successful switches, in ms.
	Pause       Summary `json:"pause_ms"`            // cmd=pause round trip
	ProxyPause  Summary `json:"proxy_last_pause_ms"` // the proxy's own measure
	CatchUp     Summary `json:"catch_up_ms"`
	Promote     Summary `json:"promote_ms"`
	Reload      Summary `json:"reload_ms"` // cmd=reload round trip
	ProxyReload Summary `json:"proxy_last_reload_ms"`
	Held        Summary `json:"clients_held_ms"` // cmd=pause sent .. cmd=unpause answered
	InitialSync Summary `json:"initial_sync_ms"`
	Fork        Summary `json:"fork_ms"` // the master's fork for the full sync

	// The load, client side.
	WritesAcked       int64   `json:"writes_acknowledged"`
	WritesUncertain   int64   `json:"writes_uncertain"`
	Commands          int64   `json:"commands"`
	WritesPerS        float64 `json:"writes_per_s"`
	CommandsPerS      float64 `json:"commands_per_s"`
	MaxLatencyMS      float64 `json:"max_latency_ms"` // slowest command or batch
	MaxLatencyAtS     float64 `json:"max_latency_at_s"`
	MaxLatencyPhase   string  `json:"max_latency_phase"`
	ClientErrors      int64   `json:"client_errors"`
	UnexpectedReplies int64   `json:"unexpected_replies"`
	Disconnects       int64   `json:"client_disconnects"`
	// DisconnectsByKind splits Disconnects by how the clients write
	// ("single", "pipeline", "multi", "tx-pipeline"); kinds without one are
	// left out.
	DisconnectsByKind map[string]int64 `json:"client_disconnects_by_kind,omitempty"`
	IdleClients       int              `json:"idle_clients"` // clients with no acknowledged write

	// On the final server.
	Verification *Verification `json:"verification"`
	// PubSub is the pub/sub load's judgement; nil without subscribers.
	PubSub           *PubSubResult `json:"pubsub,omitempty"`
	WritesLost       int64         `json:"writes_lost"`
	WritesDuplicated int64         `json:"writes_duplicated"`

	Proxy ProxyEnd `json:"proxy"`
	// Proxies is the fleet's size with -proxies > 1 (Proxy is then the
	// coordinator's, p1), else 0; Peers the other proxies' ends.
	Proxies int       `json:"proxies,omitempty"`
	Peers   []PeerEnd `json:"peers,omitempty"`

	Switches      []SwitchResult `json:"switches"`
	Events        []Event        `json:"events,omitempty"`
	EventsDropped int            `json:"events_dropped,omitempty"`
	TempDir       string         `json:"temp_dir,omitempty"`
}

// ProxyEnd is the proxy's side at the end: /info.json counters after the
// load, its exit status on SIGTERM, its log's warnings.
type ProxyEnd struct {
	ClientsAccepted      uint64   `json:"clients_accepted"`
	Commands             uint64   `json:"commands"`
	Errors               uint64   `json:"errors"`
	TimeLimitDisconnects uint64   `json:"time_limit_disconnects"`
	UplinkDialErrors     uint64   `json:"uplink_dial_errors"`
	Pauses               uint64   `json:"pauses"`
	Switches             uint64   `json:"switches"` // done with cmd=switch
	Reloads              uint64   `json:"reloads"`
	ReloadsFailed        uint64   `json:"reloads_failed"`
	ExitCode             int      `json:"exit_code"`
	LogWarnings          int      `json:"log_warnings"`
	Warnings             []string `json:"warnings,omitempty"`
}

// Summary is the median and maximum of a set of durations (ms).
type Summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	Max float64 `json:"max"`
}

// summarize returns the nearest-rank median and the maximum.
func summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Summary{N: len(s), P50: s[(len(s)+1)/2-1], Max: s[len(s)-1]}
}

func (rep *Report) fail(format string, args ...any) {
	rep.Failures = append(rep.Failures, fmt.Sprintf(format, args...))
}

// clientMix describes the clients: how many of each kind and protocol.
func clientMix(clients []*loadClient) string {
	kinds := make([]int, numKinds)
	resp3 := 0
	for _, c := range clients {
		kinds[c.kind]++
		if c.resp3 {
			resp3++
		}
	}
	return fmt.Sprintf("%d one command at a time, %d pipelining %d commands, %d MULTI/EXEC, %d two MULTI/EXEC in one write; %d RESP3, %d RESP2; dbs 0-%d",
		kinds[kindSingle], kinds[kindPipeline], 2*pipelineDepth, kinds[kindMulti], kinds[kindTxPipeline],
		resp3, len(clients)-resp3, min(len(clients), numDBs)-1)
}

// pauseBound is the bound on every pause for a read_time_limit_ms of
// rtlMS: 1 s, or half the limit when that is less. A pause that waits for
// a client until the limit disconnects it takes the whole limit.
func pauseBound(rtlMS int) float64 { return min(1000, float64(rtlMS)/2) }

// collectLoad sums the clients' records (after the load stopped).
func (rep *Report) collectLoad(clients []*loadClient) {
	var slowest *loadClient
	for _, c := range clients {
		acked := c.incrAcked + int64(len(c.listAcked))
		rep.WritesAcked += acked
		rep.WritesUncertain += c.incrUncertain + int64(len(c.listUncertain))
		rep.Commands += c.commands
		rep.ClientErrors += c.errors
		rep.UnexpectedReplies += c.unexpected
		rep.Disconnects += c.disconnects
		if c.disconnects > 0 {
			if rep.DisconnectsByKind == nil {
				rep.DisconnectsByKind = make(map[string]int64)
			}
			rep.DisconnectsByKind[c.kind.String()] += c.disconnects
		}
		if slowest == nil || c.maxLatency > slowest.maxLatency {
			slowest = c
		}
		if acked == 0 {
			rep.IdleClients++
		}
	}
	if slowest != nil {
		rep.MaxLatencyMS = ms(slowest.maxLatency)
		rep.MaxLatencyAtS, rep.MaxLatencyPhase = slowest.maxLatencyAt, slowest.maxLatencyPhase
	}
	if rep.LoadS > 0 {
		rep.WritesPerS = float64(rep.WritesAcked) / rep.LoadS
		rep.CommandsPerS = float64(rep.Commands) / rep.LoadS
	}
}

func (rep *Report) setProxy(info proxyInfo) { rep.Proxy = proxyEnd(info) }

// proxyEnd is the ProxyEnd of a proxy's /info.json (exit status and log
// warnings come later).
func proxyEnd(info proxyInfo) ProxyEnd {
	c := info.Counters
	return ProxyEnd{
		ClientsAccepted:      c.ClientsAccepted,
		Commands:             c.Commands,
		Errors:               c.Errors,
		TimeLimitDisconnects: c.TimeLimitDisconnects,
		UplinkDialErrors:     c.UplinkDialErrors,
		Pauses:               c.Pauses,
		Switches:             c.Switches,
		Reloads:              c.Reloads,
		ReloadsFailed:        c.ReloadsFailed,
	}
}

// judge computes the summaries and decides Pass: no failed switch, every
// pause below pauseBound, no client error, unexpected reply or
// disconnect, nothing lost, duplicated, invented or reordered, every
// client made progress, and the proxy's own counters and exit status
// agree.
func (rep *Report) judge() {
	var pause, proxyPause, catchUp, promote, reload, proxyReload, held, sync, fork []float64
	for _, s := range rep.Switches {
		if !s.OK {
			rep.SwitchesFailed++
			continue
		}
		rep.SwitchesDone++
		pause = append(pause, s.PauseMS)
		proxyPause = append(proxyPause, s.ProxyPauseMS)
		catchUp = append(catchUp, s.CatchUpMS)
		promote = append(promote, s.PromoteMS)
		reload = append(reload, s.ReloadMS)
		proxyReload = append(proxyReload, s.ProxyReloadMS)
		held = append(held, s.HeldMS)
		sync = append(sync, s.SyncMS)
		fork = append(fork, s.ForkMS)
	}
	rep.Pause, rep.ProxyPause = summarize(pause), summarize(proxyPause)
	rep.CatchUp, rep.Promote = summarize(catchUp), summarize(promote)
	rep.Reload, rep.ProxyReload = summarize(reload), summarize(proxyReload)
	rep.Held, rep.InitialSync = summarize(held), summarize(sync)
	rep.Fork = summarize(fork)

	// Every pause that was sent, failed switches included.
	rep.PauseBoundMS = pauseBound(rep.ReadTimeLimitMS)
	for _, s := range rep.Switches {
		if s.PauseMS >= rep.PauseBoundMS {
			rep.SlowPauses++
			rep.fail("switch %d: cmd=pause took %.1f ms (the proxy's last_pause_ms: %.1f), want < %.0f ms: far below read_time_limit_ms %d",
				s.N, s.PauseMS, s.ProxyPauseMS, rep.PauseBoundMS, rep.ReadTimeLimitMS)
		}
	}

	if v := rep.Verification; v != nil {
		rep.WritesLost, rep.WritesDuplicated = v.Lost, v.Duplicated
		if v.Phantom > 0 || v.OutOfOrder > 0 {
			rep.fail("%d list entries never sent, %d out of order", v.Phantom, v.OutOfOrder)
		}
	}
	counts := []struct {
		n    int64
		what string
	}{
		{rep.ClientErrors, "client errors (error replies)"},
		{rep.UnexpectedReplies, "unexpected replies"},
		{rep.Disconnects, "client disconnects" + byKind(rep.DisconnectsByKind)},
		{rep.WritesLost, "acknowledged writes lost"},
		{rep.WritesDuplicated, "writes duplicated"},
		{int64(rep.IdleClients), "clients without a single acknowledged write"},
		{int64(rep.Proxy.Errors), "error replies counted by the proxy (counters.errors)"},
		{int64(rep.Proxy.TimeLimitDisconnects), "time-limit disconnects counted by the proxy"},
	}
	for _, pe := range rep.Peers {
		if pe.Proxy.Errors != 0 {
			rep.fail("%d error replies counted by proxy %s (counters.errors)", pe.Proxy.Errors, pe.Name)
		}
		if pe.Proxy.TimeLimitDisconnects != 0 {
			rep.fail("%d time-limit disconnects counted by proxy %s", pe.Proxy.TimeLimitDisconnects, pe.Name)
		}
	}
	for _, c := range counts {
		if c.n != 0 {
			rep.fail("%d %s", c.n, c.what)
		}
	}
	if rep.PubSub != nil {
		rep.Failures = append(rep.Failures, rep.PubSub.failures()...)
	}
	rep.Pass = len(rep.Failures) == 0
}

// WriteText prints the report for people.
func (rep *Report) WriteText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	verdict := "PASS"
	if !rep.Pass {
		verdict = "FAIL"
	}
	planned := "(" + rep.Mode + ")"
	if rep.SwitchesPlanned > 0 {
		planned = fmt.Sprintf("of %d planned", rep.SwitchesPlanned)
	}
	early := ""
	if rep.StoppedEarly {
		early = " (stopped early by a signal)"
	}
	p("")
	p("switchtest report: %s", verdict)
	p("  setup      redis-server %s, redis-proxy %s, read_time_limit_ms %d", rep.RedisVersion, rep.ProxyVersion, rep.ReadTimeLimitMS)
	if rep.Proxies > 1 {
		p("  proxies    %d: p1 the coordinator (switch.peers: the others, every cmd=switch), client i through p(i mod %d + 1)", rep.Proxies, rep.Proxies)
	}
	p("  clients    %d: %s", rep.Clients, rep.ClientMix)
	p("  switches   %d done %s, %d failed%s", rep.SwitchesDone, planned, rep.SwitchesFailed, early)
	limit := "as fast as each client can"
	if rep.RatePerClient > 0 {
		limit = fmt.Sprintf("at most %g writes/s per client", rep.RatePerClient)
	}
	p("  load       %.1f s, %s", rep.LoadS, limit)
	p("")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "per switch (ms)\tp50\tmax\t")
	row := func(name string, s Summary) { fmt.Fprintf(tw, "%s\t%s\t%s\t\n", name, fmtMS(s.P50), fmtMS(s.Max)) }
	row("pause: cmd=pause round trip", rep.Pause)
	row("pause: proxy last_pause_ms", rep.ProxyPause)
	row("catch-up to the master's offset", rep.CatchUp)
	row("promote (REPLICAOF NO ONE)", rep.Promote)
	row("reload: cmd=reload round trip", rep.Reload)
	row("reload: proxy last_reload_ms", rep.ProxyReload)
	row("clients held (pause .. unpause)", rep.Held)
	row("initial sync (not paused)", rep.InitialSync)
	row("  of which the master's fork", rep.Fork)
	tw.Flush()
	p("")

	p("load (client side)")
	p("  writes acknowledged   %d (%.0f/s)", rep.WritesAcked, rep.WritesPerS)
	p("  writes uncertain      %d", rep.WritesUncertain)
	p("  commands              %d (%.0f/s)", rep.Commands, rep.CommandsPerS)
	p("  slowest command       %.1f ms (began at %.3f s; phase at its end: %s)", rep.MaxLatencyMS, rep.MaxLatencyAtS, rep.MaxLatencyPhase)
	p("")
	p("checks (each must be 0)")
	p("  client errors         %d", rep.ClientErrors)
	p("  unexpected replies    %d", rep.UnexpectedReplies)
	p("  client disconnects    %d%s", rep.Disconnects, byKind(rep.DisconnectsByKind))
	p("  %-22s%d   (of %d; the cmd=pause round trip, with read_time_limit_ms %d)",
		fmt.Sprintf("pauses >= %.0f ms", rep.PauseBoundMS), rep.SlowPauses, len(rep.Switches), rep.ReadTimeLimitMS)
	if v := rep.Verification; v != nil {
		p("  writes lost           %d   (of %d acknowledged writes checked on %s)", v.Lost, v.WritesChecked, v.Server)
		p("  writes duplicated     %d", v.Duplicated)
		p("  never sent / reordered %d / %d", v.Phantom, v.OutOfOrder)
		if v.UncertainApplied+v.UncertainAbsent > 0 {
			p("  (uncertain writes: %d applied, %d not)", v.UncertainApplied, v.UncertainAbsent)
		}
	} else {
		p("  writes lost           not verified")
	}
	p("  proxy counters.errors %d, time_limit_disconnects %d", rep.Proxy.Errors, rep.Proxy.TimeLimitDisconnects)
	p("")
	if ps := rep.PubSub; ps != nil {
		ps.writeText(p)
		p("")
	}
	p("proxy: %d pauses, %d reloads (%d failed), %d clients accepted, %d commands, %d uplink dial errors, exit status %d, %d WARN/ERROR log lines",
		rep.Proxy.Pauses, rep.Proxy.Reloads, rep.Proxy.ReloadsFailed, rep.Proxy.ClientsAccepted, rep.Proxy.Commands,
		rep.Proxy.UplinkDialErrors, rep.Proxy.ExitCode, rep.Proxy.LogWarnings)
	for _, l := range rep.Proxy.Warnings {
		p("  %s", l)
	}
	for _, pe := range rep.Peers {
		x := pe.Proxy
		p("proxy %s (peer, %s): %d pauses, %d clients accepted, %d commands, %d errors, %d time-limit disconnects, %d uplink dial errors, exit status %d, %d WARN/ERROR log lines",
			pe.Name, pe.Admin, x.Pauses, x.ClientsAccepted, x.Commands, x.Errors, x.TimeLimitDisconnects, x.UplinkDialErrors, x.ExitCode, x.LogWarnings)
		for _, l := range x.Warnings {
			p("  %s", l)
		}
	}

	if len(rep.Switches) > 0 {
		p("")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "#\tfrom\tto\tsync\tfork\tpause\tproxy\tcatch-up\tpromote\treload\tproxy\tunpause\theld\twrites/s\t")
		for _, s := range rep.Switches {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t\n",
				s.N, s.From, orDash(s.To), fmtMS(s.SyncMS), fmtMS(s.ForkMS), fmtMS(s.PauseMS), fmtMS(s.ProxyPauseMS),
				fmtMS(s.CatchUpMS), fmtMS(s.PromoteMS), fmtMS(s.ReloadMS), fmtMS(s.ProxyReloadMS),
				fmtMS(s.UnpauseMS), fmtMS(s.HeldMS), s.WritesPerS)
		}
		tw.Flush()
		p("  (ms; \"proxy\" = the proxy's last_pause_ms / last_reload_ms from /info.json)")
		for _, s := range rep.Switches {
			if !s.OK {
				p("  switch %d FAILED at %s: %s; roll-back: %s", s.N, s.FailedStep, s.Error, orNone(s.RolledBack))
			}
		}
	}

	if v := rep.Verification; v != nil && len(v.Problems) > 0 {
		p("")
		p("verification problems:")
		for _, pr := range v.Problems {
			p("  %s", pr)
		}
	}
	if len(rep.Events) > 0 {
		p("")
		p("client events (first %d%s):", len(rep.Events), dropped(rep.EventsDropped))
		for _, e := range rep.Events {
			p("  %7.3fs client %d [%s] %s: %s", e.AtS, e.Client, e.Phase, e.Kind, e.What)
		}
	}
	if rep.TempDir != "" {
		p("")
		p("kept: %s", rep.TempDir)
	}
	p("")
	if rep.Pass {
		p("result: PASS")
		return
	}
	p("result: FAIL")
	for _, f := range rep.Failures {
		p("  - %s", strings.ReplaceAll(f, "\n", "\n    "))
	}
}

// fmtMS formats milliseconds with two decimals below 10, one above.
func fmtMS(x float64) string {
	if x < 10 {
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

func dropped(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d more not kept", n)
}

// byKind renders disconnects by client kind, " (tx-pipeline 3, ...)", in
// the order of the kinds; "" for none.
func byKind(m map[string]int64) string {
	var parts []string
	for k := range numKinds {
		if n := m[k.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
