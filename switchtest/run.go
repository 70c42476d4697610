package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"redis-proxy/config"
)

// options are the parameters of one run (the flags of main).
type options struct {
	Clients         int
	Proxies         int           // proxies in front of the same primary (fleet.go); 1 or less: one
	Switches        int           // 0: on demand only (SIGHUP), or every Interval with Forever
	Forever         bool          // switch every Interval until stopped
	Duration        time.Duration // see the -duration flag
	Interval        time.Duration
	Rate            float64 // writes a second per client; 0 = as fast as it goes
	Subscribers     int     // pub/sub subscribers through the proxy (pubsub.go); 0 = none
	Publishers      int     // publishers; needed with Subscribers
	PublishRate     float64 // messages a second per publisher
	ProxyBin        string  // prebuilt proxy; "" builds this repository
	BuildFlags      []string
	RedisServer     string
	ReadTimeLimitMS int
	Keep            bool
	Manual          bool // the manual runbook (pause, REPLICAOF, reload, unpause) instead of cmd=switch
	Verbose         bool
	Log             io.Writer // progress lines; nil: none

	// inject makes one step of the first switch fail, for the tests of
	// the roll-back: "catch-up" (the replica never reaches the offset)
	// or "reload" (the config names an uplink nobody listens on, so the
	// proxy refuses it).
	inject string
	// kinds, if set, are the only kinds of client in the load.
	kinds []clientKind
}

// control steers a run from outside (signals in main, nothing in tests).
type control struct {
	Stop   <-chan struct{} // closed: end the run (stop the load, verify, report)
	Switch <-chan struct{} // a value: one switch now
}

// Step deadlines of the switch procedure. Past one, the switch is rolled
// back (the proxy is unpaused on the old uplink) and the run fails. They
// are generous: this may run on a busy machine.
const (
	syncDeadline    = 60 * time.Second // the new replica's initial sync
	catchUpDeadline = 15 * time.Second // replica offset reaches the master's, while paused
	promoteDeadline = 10 * time.Second
	adminMargin     = 15 * time.Second // added to read_time_limit_ms for pause and reload
	unpauseDeadline = 10 * time.Second
	clientMargin    = 30 * time.Second
	stopMargin      = 10 * time.Second // added to read_time_limit_ms for the proxy's graceful stop
)

// runner is one run: the processes it started and what it measured.
type runner struct {
	o       options
	log     io.Writer
	dir     string
	cfg     config.Config
	cfgPath string
	nodes   []*node      // every redis-server started, for the clean-up
	cur     *node        // the proxy's uplink
	px      *proxyProc   // the proxy (in a fleet, the coordinator, fleet[0])
	adm     *adminClient // its admin API
	fleet   []*member    // every proxy, the coordinator first
	// fleetExited is closed when a proxy of the fleet exits, firstExited
	// then being that one.
	fleetExited chan struct{}
	firstExited *member
	ev          *eventLog
	ld          *load
	ps          *pubsubLoad // nil without subscribers
	rep         *Report

	attempted  int
	mark       time.Time // progress: when the last progress line was written
	markWrites int64
}

func (r *runner) rtl() time.Duration {
	return time.Duration(r.o.ReadTimeLimitMS) * time.Millisecond
}

// clientTimeout bounds one client operation: longer than the longest
// stall the switch procedure can cause before it rolls back, so that only
// a hang shows as a client timeout.
func (r *runner) clientTimeout() time.Duration {
	return 2*(r.rtl()+adminMargin) + catchUpDeadline + promoteDeadline + unpauseDeadline + clientMargin
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "switchtest: "+format+"\n", args...)
}

func (r *runner) vlogf(format string, args ...any) {
	if r.o.Verbose {
		r.logf(format, args...)
	}
}

// run does a whole run and returns its report, or an error when it could
// not set up (no redis-server, the proxy does not build or start, clients
// cannot connect) or was aborted by ctx. Everything it started is stopped
// before it returns.
func run(ctx context.Context, o options, ctl control) (rep *Report, err error) {
	if o.Clients <= 0 {
		o.Clients = 50
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Proxies < 1 {
		o.Proxies = 1
	}
	if o.ReadTimeLimitMS <= 0 {
		o.ReadTimeLimitMS = config.DefaultReadTimeLimitMS
	}
	r := &runner{o: o, log: o.Log, ev: newEventLog()}
	if r.log == nil {
		r.log = io.Discard
	}
	if r.dir, err = os.MkdirTemp("", "switchtest-"); err != nil {
		return nil, err
	}
	defer r.cleanup(ctx)

	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	r.loop(ctx, ctl)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("aborted: %w", context.Cause(ctx))
	}
	r.finish(ctx)
	return r.rep, nil
}

// setup starts the first redis-server, the proxy and the load.
func (r *runner) setup(ctx context.Context) error {
	first, err := r.startNode(ctx)
	if err != nil {
		return err
	}
	r.cur = first
	srvInfo, err := first.info("server")
	if err != nil {
		return err
	}

	bin := r.o.ProxyBin
	if bin == "" {
		r.vlogf("building the proxy into %s", r.dir)
		if bin, err = buildProxy(ctx, r.dir, r.o.BuildFlags); err != nil {
			return err
		}
	}
	if err := r.startProxies(ctx, bin); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, unpauseDeadline)
	defer cancel()
	var info proxyInfo
	for i, m := range r.fleet {
		if err := m.adm.healthz(actx); err != nil {
			return fmt.Errorf("proxy %s started but: %w", m.name, err)
		}
		mi, err := m.adm.info(actx)
		if err != nil {
			return err
		}
		if mi.Uplink.Addr != first.addr() {
			return fmt.Errorf("proxy %s: /info.json: uplink %s, want %s", m.name, mi.Uplink.Addr, first.addr())
		}
		if i == 0 {
			info = mi
		}
	}

	addrs := r.listenAddrs()
	r.ld, err = startLoad(r.o.Clients, addrs, r.clientTimeout(), r.o.Rate, r.ev, r.o.kinds)
	if err != nil {
		return err
	}
	r.mark = r.ld.start
	if r.o.Subscribers > 0 {
		rate := r.o.PublishRate
		if rate <= 0 {
			rate = defaultPublishRate
		}
		r.o.PublishRate = rate
		r.ps, err = startPubSub(r.o.Subscribers, r.o.Publishers, rate, addrs, r.clientTimeout(), r.ev, r.o.Clients)
		if err != nil {
			return err
		}
	}
	r.rep = &Report{
		Clients:         r.o.Clients,
		ClientMix:       clientMix(r.ld.clients),
		Mode:            r.mode(),
		SwitchesPlanned: r.o.Switches,
		RedisVersion:    srvInfo["redis_version"],
		ProxyVersion:    info.Version,
		ProxyBinary:     bin,
		ReadTimeLimitMS: r.o.ReadTimeLimitMS,
		RatePerClient:   r.o.Rate,
	}
	if len(r.fleet) == 1 {
		r.logf("%d clients writing through the proxy %s (admin %s) to %s; redis-server %s",
			r.o.Clients, r.cfg.Listen.Addr, r.cfg.Admin.Addr, first, r.rep.RedisVersion)
		return nil
	}
	r.rep.Proxies = len(r.fleet)
	for _, m := range r.fleet {
		r.logf("proxy %s: listen %s, admin %s, switch.peers %q", m.name, m.cfg.Listen.Addr, m.cfg.Admin.Addr, m.cfg.Switch.Peers)
	}
	r.logf("%d clients writing through %d proxies (client i through proxy p(i mod %d + 1)) to %s; redis-server %s",
		r.o.Clients, len(r.fleet), len(r.fleet), first, r.rep.RedisVersion)
	return nil
}

// mode names how switches are triggered.
func (r *runner) mode() string {
	switch {
	case r.o.Switches > 0:
		return "bounded"
	case r.o.Forever:
		return "forever: one every -interval, and on SIGHUP"
	}
	return "on demand: SIGHUP"
}

// startNode starts the next redis-server.
func (r *runner) startNode(ctx context.Context) (*node, error) {
	name := fmt.Sprintf("r%d", len(r.nodes)+1)
	n, err := startNode(ctx, r.dir, name, r.o.RedisServer)
	if err != nil {
		return nil, err
	}
	r.nodes = append(r.nodes, n)
	return n, nil
}

// startProxies starts the proxies: the peers first, then the coordinator
// with their admin base URLs in switch.peers (none with one proxy).
func (r *runner) startProxies(ctx context.Context, bin string) error {
	var peers []*member
	var urls []string
	for i := 2; i <= r.o.Proxies; i++ {
		m, err := r.startMember(ctx, bin, fmt.Sprintf("p%d", i), nil)
		if err != nil {
			for _, p := range peers {
				p.px.kill()
			}
			return err
		}
		peers = append(peers, m)
		urls = append(urls, "http://"+m.cfg.Admin.Addr)
	}
	coord, err := r.startMember(ctx, bin, "p1", urls)
	if err != nil {
		for _, p := range peers {
			p.px.kill()
		}
		return err
	}
	r.fleet = append([]*member{coord}, peers...)
	r.cfg, r.cfgPath, r.px, r.adm = coord.cfg, coord.cfgPath, coord.px, coord.adm
	r.watchFleet()
	return nil
}

// writeConfig writes r.cfg to the config file atomically (a reload must
// never read half a file).
func (r *runner) writeConfig() error { return writeConfigFile(r.cfgPath, &r.cfg) }

// wake is why wait returned.
type wake int

const (
	wakeTimer wake = iota
	wakeSwitch
	wakeStop
	wakeEnd
	wakeAbort
	wakeProxyDied
)

// wait lets the load run for d (d < 0: until something else happens).
func (r *runner) wait(ctx context.Context, ctl control, d time.Duration, end <-chan time.Time) wake {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return wakeAbort
	case <-ctl.Stop:
		r.rep.StoppedEarly = r.o.Switches > 0 && r.attempted < r.o.Switches
		return wakeStop
	case <-ctl.Switch:
		return wakeSwitch
	case <-end:
		return wakeEnd
	case <-timer:
		return wakeTimer
	case <-r.fleetExited:
		m := r.firstExited
		name := "the proxy"
		if len(r.fleet) > 1 {
			name = "proxy " + m.name
		}
		r.rep.fail("%s exited during the run (%v); its log ends:\n%s", name, m.px.p.State(), m.px.logTail())
		return wakeProxyDied
	}
}

// loop runs the switches: with Switches > 0, one every interval (or
// Duration/(Switches+1)) and then one more interval of load; with Forever
// one every interval until stopped; otherwise only on ctl.Switch. A
// failed switch ends the run.
func (r *runner) loop(ctx context.Context, ctl control) {
	o := r.o
	interval := o.Interval
	if o.Switches > 0 && o.Duration > 0 {
		interval = o.Duration / time.Duration(o.Switches+1)
	}
	var end <-chan time.Time
	if o.Switches == 0 && o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		end = t.C
	}
	auto := o.Switches > 0 || o.Forever
	switch {
	case o.Switches > 0:
		r.logf("%d switches, one every %v", o.Switches, interval)
	case o.Forever:
		r.logf("a switch every %v until SIGINT (Ctrl-C)%s; SIGHUP (kill -HUP %d) switches at once", interval, endNote(o.Duration), os.Getpid())
	default:
		r.logf("long-running: SIGHUP (kill -HUP %d) switches, SIGINT (Ctrl-C)%s ends the run and verifies", os.Getpid(), endNote(o.Duration))
	}
	for {
		last := o.Switches > 0 && r.attempted >= o.Switches
		d := interval
		if !auto {
			d = -1
		}
		switch r.wait(ctx, ctl, d, end) {
		case wakeTimer:
			if last {
				return
			}
		case wakeSwitch:
		default:
			return
		}
		res := r.doSwitch(ctx)
		r.rep.Switches = append(r.rep.Switches, res)
		if !res.OK {
			return
		}
	}
}

func endNote(d time.Duration) string {
	if d > 0 {
		return fmt.Sprintf(" (or %v)", d)
	}
	return ""
}

// finish stops the load, reads the proxy's counters, verifies the data on
// the final server, stops the proxy and completes the report.
func (r *runner) finish(ctx context.Context) {
	rep := r.rep
	actx, cancel := context.WithTimeout(ctx, unpauseDeadline)
	defer cancel()
	befores := make([]proxyInfo, len(r.fleet))
	var err error
	for i, m := range r.fleet {
		var e error
		if befores[i], e = m.adm.info(actx); e != nil {
			rep.fail("proxy %s: /info.json before the end of the load: %v", m.name, e)
			err = e
		}
	}
	r.ld.halt()
	r.ps.halt()
	r.ev.setPhase("verify")
	rep.LoadS = r.ld.end.Sub(r.ld.start).Seconds()
	rep.collectLoad(r.ld.clients)
	if r.ps != nil {
		rep.PubSub = r.ps.result(r.o.PublishRate)
	}
	// Client i, subscriber j and publisher k went through proxy i, j and
	// k mod the fleet's size.
	want := make([]int, len(r.fleet))
	count := func(n int) {
		for i := range n {
			want[i%len(r.fleet)]++
		}
	}
	count(r.o.Clients)
	if r.ps != nil {
		count(len(r.ps.subs))
		count(len(r.ps.pubs))
	}
	for _, m := range r.fleet[1:] {
		rep.Peers = append(rep.Peers, PeerEnd{Name: m.name, Admin: "http://" + m.cfg.Admin.Addr})
	}
	for i, m := range r.fleet {
		name := "the proxy"
		if len(r.fleet) > 1 {
			name = "proxy " + m.name
		}
		if err == nil && befores[i].Clients != want[i] {
			rep.fail("%s had %d clients at the end of the load, want %d", name, befores[i].Clients, want[i])
		}
		after, err := m.adm.info(actx)
		if err != nil {
			rep.fail("%s: /info.json after the load: %v", name, err)
			continue
		}
		if i == 0 {
			rep.setProxy(after)
		} else {
			rep.Peers[i-1].Proxy = proxyEnd(after)
		}
		if after.Uplink.Addr != r.cur.addr() {
			rep.fail("%s's uplink is %s, want %s", name, after.Uplink.Addr, r.cur)
		}
		if len(r.fleet) > 1 && after.Counters.ClientsAccepted != uint64(want[i]) {
			rep.fail("%s accepted %d clients, want %d (a client connected again)", name, after.Counters.ClientsAccepted, want[i])
		}
	}

	r.logf("load stopped; verifying %d clients' writes on %s", len(r.ld.clients), r.cur)
	v, err := verify(r.cur.addr(), r.ld.clients)
	if err != nil {
		rep.fail("verification on %s: %v", r.cur, err)
	}
	rep.Verification = &v

	for i, m := range r.fleet {
		name := "the proxy"
		end := &rep.Proxy
		if i > 0 {
			name = "proxy " + m.name
			end = &rep.Peers[i-1].Proxy
		} else if len(r.fleet) > 1 {
			name = "proxy p1"
		}
		code, forced := m.px.stop(r.rtl() + stopMargin)
		end.ExitCode = code
		if forced {
			rep.fail("%s did not stop within %v of SIGTERM; killed", name, r.rtl()+stopMargin)
		} else if code != 0 {
			rep.fail("%s exited with status %d on SIGTERM, want 0", name, code)
		}
		end.LogWarnings, end.Warnings = m.px.logWarnings()
	}
	rep.Events, rep.EventsDropped = r.ev.snapshot()
	if r.o.Keep {
		rep.TempDir = r.dir
	}
	rep.judge()
}

// cleanup stops whatever still runs, by PID, and removes the temp dir
// unless -keep.
func (r *runner) cleanup(ctx context.Context) {
	if r.ld != nil {
		r.ld.signalStop()
	}
	for _, m := range r.fleet {
		if ctx.Err() != nil {
			m.px.kill()
		} else {
			m.px.stop(r.rtl() + stopMargin)
		}
	}
	if r.ld != nil {
		r.ld.wait() // quick: the proxy is gone, so every client's call ends
	}
	r.ps.abort()
	for _, m := range r.fleet {
		m.adm.close()
	}
	for _, n := range r.nodes {
		if err := n.stop(); err != nil {
			r.logf("stopping %s: %v", n, err)
		}
	}
	if r.o.Keep {
		r.logf("kept %s (config.json, proxy.log, r*.log)", r.dir)
		return
	}
	if err := os.RemoveAll(r.dir); err != nil {
		r.logf("removing %s: %v", r.dir, err)
	}
}

// defaultPublishRate is the messages a second of each publisher.
const defaultPublishRate = 100
