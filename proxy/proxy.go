package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"redis-proxy/config"
)

// ringSize bounds the commands one client may have in flight; a deeper
// pipeline waits for replies (and so does the client's TCP window).
const ringSize = 32

// drainMargin is added to read_time_limit_ms before a pause disconnects
// the sessions still holding it (inside MULTI, or stuck on a slow client).
const drainMargin = 250 * time.Millisecond

// Options are what New needs besides the configuration.
type Options struct {
	// Logger receives every log line; nil discards.
	Logger *slog.Logger
	// Version is shown in Status.
	Version string
	// LoadConfig reads the configuration again for a reload (the file
	// named by -f). Reload fails with a ConfigError when it is nil.
	LoadConfig func() (*config.Config, error)
	// ConfigPath is the configuration file (the file named by -f): a
	// switch or a retarget writes the new uplink.addr into it. "" writes
	// nothing (and a restart goes back to the old uplink).
	ConfigPath string
}

// runtimeConfig is the configuration in force and what is derived from it;
// it is replaced whole (atomically) by a reload.
type runtimeConfig struct {
	cfg       *config.Config
	target    *target
	listenTLS *tls.Config
	rawTLS    *tls.Config
	roTLS     *tls.Config
	limit     time.Duration
	idle      time.Duration
}

// Proxy is the running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	log        *slog.Logger
	version    string
	loadConfig func() (*config.Config, error)
	configPath string
	epoch      time.Time

	confp       atomic.Pointer[runtimeConfig]
	logMessages atomic.Bool

	// The state machine (state.go) and the pause gate it closes (gate.go).
	mu         sync.Mutex
	state      State
	stateSince time.Time // when state was entered; duration_ms of a transition is the time spent in the state left
	pause      *pauseOp  // the pause in progress or in force
	pausedAt   time.Time
	reloadMu   sync.Mutex
	gate       *gate

	sessMu   sync.Mutex
	sessions map[*session]struct{}
	stopping bool // under sessMu: no new session once Shutdown closes them
	closed   totals
	nextID   atomic.Uint64

	ln, rawLn net.Listener
	roLn      net.Listener // listen_ro (listen_ro.go)
	replicas  replicaPool  // the replicas listen_ro reads from (replicas.go)
	raw       rawSet
	wg        sync.WaitGroup
	stopped   chan struct{}

	timeLimitDisconnects atomic.Uint64
	dialErrors           atomic.Uint64
	reloads              atomic.Uint64
	reloadsFailed        atomic.Uint64
	pauses               atomic.Uint64
	accepted             atomic.Uint64
	rejected             atomic.Uint64
	dialLog              logLimiter

	hist    history
	scripts scriptCache

	// The last (or the running) switch (switch.go).
	swMu     sync.Mutex
	sw       SwitchReport
	switches atomic.Uint64

	health     healthState // the uplink health checks (health.go)
	follow     follower    // following a primary elected elsewhere (follow.go, sentinel.go)
	failovers  atomic.Uint64
	charts     chartRing          // the status page's charts (charts.go)
	stopHealth context.CancelFunc // ends the check loop and the chart sampler (Shutdown)

	statMu      sync.Mutex
	pauseHist   [len(pauseBounds)]uint64
	pauseCount  uint64
	pauseSum    time.Duration
	pausedTotal time.Duration
	lastPause   time.Duration
	lastReload  time.Duration
}

// New prepares a proxy for cfg (already validated); it opens nothing.
func New(cfg *config.Config, opts Options) (*Proxy, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p := &Proxy{
		log:        log,
		version:    opts.Version,
		loadConfig: opts.LoadConfig,
		configPath: opts.ConfigPath,
		epoch:      time.Now(),
		state:      StateStarting,
		stateSince: time.Now(),
		gate:       newGate(),
		sessions:   make(map[*session]struct{}),
		stopped:    make(chan struct{}),
	}
	p.health.kick = make(chan struct{}, 1)
	p.follow.init()
	p.raw.conns = make(map[net.Conn]struct{})
	conf, err := buildRuntime(cfg, 1)
	if err != nil {
		return nil, err
	}
	p.confp.Store(conf)
	p.logMessages.Store(cfg.LogMessages)
	return p, nil
}

func buildRuntime(cfg *config.Config, gen uint64) (*runtimeConfig, error) {
	t, err := newTarget(cfg, gen)
	if err != nil {
		return nil, err
	}
	conf := &runtimeConfig{cfg: cfg, target: t, limit: cfg.ReadTimeLimit(), idle: cfg.ClientIdleTimeout()}
	if conf.listenTLS, err = cfg.ListenTLS(); err != nil {
		return nil, err
	}
	if conf.rawTLS, err = cfg.ListenRawTLS(); err != nil {
		return nil, err
	}
	if conf.roTLS, err = cfg.ListenROTLS(); err != nil {
		return nil, err
	}
	return conf, nil
}

// conf is the runtime configuration in force.
func (p *Proxy) conf() *runtimeConfig { return p.confp.Load() }

// now is the proxy clock: monotonic nanoseconds since New.
func (p *Proxy) now() int64 { return int64(time.Since(p.epoch)) }

// wall turns a proxy-clock time into a deadline.
func (p *Proxy) wall(ns int64) time.Time { return p.epoch.Add(time.Duration(ns)) }

// Start opens the listeners and starts serving. The uplink may be down:
// it is not dialed until a client sends a command.
func (p *Proxy) Start() error {
	conf := p.conf()
	ln, err := net.Listen("tcp", conf.cfg.Listen.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if conf.cfg.ListenRaw.Addr != "" {
		rawLn, err := net.Listen("tcp", conf.cfg.ListenRaw.Addr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen_raw: %w", err)
		}
		p.rawLn = rawLn
	}
	if err := p.listenRO(conf); err != nil {
		ln.Close()
		if p.rawLn != nil {
			p.rawLn.Close()
		}
		return err
	}
	p.ln = ln
	if conf.cfg.Uplink.Sentinel.Enabled() {
		p.sentinelStart()
	}
	p.mu.Lock()
	p.setState(StateRunning)
	p.mu.Unlock()
	startTrimmer()
	p.wg.Add(1)
	go p.acceptLoop(ln, false)
	if p.roLn != nil {
		p.wg.Add(1)
		go p.acceptLoop(p.roLn, true)
	}
	if p.rawLn != nil {
		p.wg.Add(1)
		go p.rawLoop(p.rawLn)
	}
	hctx, stop := context.WithCancel(context.Background())
	p.stopHealth = stop
	p.wg.Add(4)
	go p.parkLoop(hctx)
	go p.healthLoop(hctx)
	go p.chartLoop(hctx)
	go p.followLoop(hctx)
	if p.replicas.kick != nil {
		p.wg.Add(1)
		go p.replicaLoop(hctx)
	}
	if conf.cfg.Uplink.Sentinel.Enabled() {
		p.wg.Add(1)
		go p.sentinelWatch(hctx)
	}
	return nil
}

// Addr is the managed listener's address (useful with port 0).
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// RawAddr is the raw listener's address, or nil.
func (p *Proxy) RawAddr() net.Addr {
	if p.rawLn == nil {
		return nil
	}
	return p.rawLn.Addr()
}

// acceptLoop serves listen, or listen_ro when ro.
func (p *Proxy) acceptLoop(ln net.Listener, ro bool) {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little, as
			// net/http does, rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Error("accept failed", "err", err, "retry_in_ms", backoff.Milliseconds())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		conf := p.conf()
		if tc := conf.serverTLS(ro); tc != nil {
			conn = tls.Server(conn, tc)
		}
		s, ok := p.register(conn, conf.cfg.MaxClients, ro)
		if s == nil && ok {
			continue // stopping
		}
		if !ok {
			p.rejected.Add(1)
			p.wg.Add(1)
			go p.rejectClient(conn)
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1) // done when the session finishes (park.go)
		go s.serve()
	}
}

// register adds a session unless max clients are connected or the proxy
// is stopping.
func (p *Proxy) register(conn net.Conn, max int, ro bool) (*session, bool) {
	p.sessMu.Lock()
	defer p.sessMu.Unlock()
	if p.stopping {
		conn.Close()
		return nil, true
	}
	if max > 0 && len(p.sessions) >= max {
		return nil, false
	}
	s := p.newSession(conn, ro)
	p.sessions[s] = struct{}{}
	return s, true
}

func (p *Proxy) unregister(s *session) {
	p.sessMu.Lock()
	delete(p.sessions, s)
	s.pend.publishCommands(&s.stats) // both sides have ended
	s.pend.publishReplies(&s.stats)
	s.stats.addTo(&p.closed)
	p.sessMu.Unlock()
}

// rejectClient answers a client over max_clients as Redis does, and closes.
func (p *Proxy) rejectClient(conn net.Conn) {
	defer p.wg.Done()
	conn.SetDeadline(time.Now().Add(time.Second))
	io.WriteString(conn, "-"+msgMaxClients+"\r\n")
	conn.Close()
	p.log.Warn("client rejected: max number of clients reached", "client", conn.RemoteAddr().String())
}

// forEachSession calls f for every session, under the registry lock.
func (p *Proxy) forEachSession(f func(*session)) {
	p.sessMu.Lock()
	defer p.sessMu.Unlock()
	for s := range p.sessions {
		f(s)
	}
}

// dialFailed counts a failed dial of a client's connection to t (the
// uplink, or a replica for listen_ro) and logs it, naming t, at most once
// a second with the number of failures in between, so that a dead uplink
// with 10,000 clients does not flood the log.
func (p *Proxy) dialFailed(s *session, t *target, rep *replica, err error) {
	p.dialErrors.Add(1)
	if ok, n := p.dialLog.allow(time.Now()); ok {
		msg, key := "uplink dial failed", "uplink"
		if rep != nil {
			msg, key = "replica dial failed", "replica"
		}
		p.log.Warn(msg, key, t.addr, "err", err, "client", s.remote, "failures_since_last_log", n)
	}
}

// logLimiter lets one line through a second and counts the others.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) < time.Second {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed + 1
	l.last, l.suppressed = now, 0
	return true, n
}

// Shutdown stops accepting, lets commands in flight finish (bounded by
// read_time_limit_ms, then by ctx), closes every connection and returns.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.state == StateStopping {
		p.mu.Unlock()
		select {
		case <-p.stopped:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	prev := p.state
	p.setState(StateStopping)
	p.cancelPause()
	p.gate.close()
	p.mu.Unlock()
	if p.stopHealth != nil {
		p.stopHealth()
	}
	start := time.Now()
	if p.ln != nil {
		p.ln.Close()
	}
	if p.rawLn != nil {
		p.rawLn.Close()
	}
	if p.roLn != nil {
		p.roLn.Close()
	}
	err := p.waitDrained(ctx.Done())
	p.sessMu.Lock()
	p.stopping = true
	for s := range p.sessions {
		s.apply(changeStop)
	}
	p.sessMu.Unlock()
	p.TerminateRawConnections()
	p.wg.Wait()
	close(p.stopped)
	p.log.Info("stopped", "from_state", string(prev), "duration_ms", time.Since(start).Milliseconds())
	return err
}

// Status returns a snapshot for the admin API.
func (p *Proxy) Status() Status {
	conf := p.conf()
	p.mu.Lock()
	state := p.state
	pausedFor := time.Duration(0)
	if state == StatePaused || (state == StateReloading && !p.pausedAt.IsZero()) {
		pausedFor = time.Since(p.pausedAt)
	}
	p.mu.Unlock()

	var t totals
	var clients, active int
	p.sessMu.Lock()
	t = p.closed
	for s := range p.sessions {
		s.stats.addTo(&t)
		active += s.q.len()
		clients++
	}
	p.sessMu.Unlock()

	st := Status{
		State:           state,
		Version:         p.version,
		UptimeS:         since(p.epoch),
		Uplink:          UplinkInfo{Addr: conf.cfg.Uplink.Addr, TLS: conf.cfg.Uplink.TLS, Health: p.Health()},
		Listen:          conf.cfg.Listen.Addr,
		ListenRaw:       conf.cfg.ListenRaw.Addr,
		ListenRO:        conf.cfg.ListenRO.Addr,
		Replicas:        p.replicaStatus(),
		Clients:         clients,
		ActiveRequests:  active,
		WaitingRequests: int(p.gate.waiting.Load()),
		RawConnections:  p.raw.count(),
		Config:          conf.cfg.Sanitized(),
		History:         p.hist.list(),
		Switch:          p.switchReport(),
		Follow:          p.follow.status(),
		Counters: Counters{
			Commands:             t.commands,
			Errors:               t.errors,
			TimeLimitDisconnects: p.timeLimitDisconnects.Load(),
			UplinkDialErrors:     p.dialErrors.Load(),
			Reloads:              p.reloads.Load(),
			ReloadsFailed:        p.reloadsFailed.Load(),
			Pauses:               p.pauses.Load(),
			Switches:             p.switches.Load(),
			Failovers:            p.failovers.Load(),
			ClientsAccepted:      p.accepted.Load(),
			ClientsRejected:      p.rejected.Load(),
			ReadFallbacks:        p.replicas.fallbacks.Load(),
		},
	}
	st.Latency = Histogram{Bounds: latencyBounds, Counts: make([]uint64, len(latencyBounds)), Count: t.count, Sum: float64(t.sumNs) / 1e9}
	var cum uint64
	for i := range latencyBounds {
		cum += t.buckets[i]
		st.Latency.Counts[i] = cum
	}
	p.statMu.Lock()
	st.Counters.PausedSeconds = (p.pausedTotal + pausedFor).Seconds()
	st.Counters.LastPauseMS = float64(p.lastPause) / 1e6
	st.Counters.LastReloadMS = float64(p.lastReload) / 1e6
	st.PauseDurations = Histogram{Bounds: pauseBounds[:], Counts: make([]uint64, len(pauseBounds)), Count: p.pauseCount, Sum: p.pauseSum.Seconds()}
	cum = 0
	for i := range pauseBounds {
		cum += p.pauseHist[i]
		st.PauseDurations.Counts[i] = cum
	}
	p.statMu.Unlock()
	return st
}

// Config returns the configuration in force (not sanitized; do not modify).
func (p *Proxy) Config() *config.Config { return p.conf().cfg }
