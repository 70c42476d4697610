package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"redis-proxy/config"
)

// The replicas listen_ro reads from: replicas.addrs, plus (with
// replicas.discover) those the primary lists in INFO replication, or in
// Sentinel mode those the sentinels list (SENTINEL REPLICAS; the
// primary's list while no sentinel answers). After
// every health check of the primary each replica is checked on the
// proxy's own connection (PING, INFO replication): it is healthy when it
// answers, says role:slave with master_link_status:up, and lags the
// primary by at most replicas.max_lag_bytes (the primary's
// master_repl_offset minus its slave_repl_offset). A connection of a
// client's that fails to a replica marks it unhealthy until a check
// passes. A listen_ro session dials the healthy replica with the fewest
// clients; its connection stays in use while that replica stays healthy
// (current), and a new one is chosen before its next command otherwise.

// replicaGenBit marks the generation of a replica's target, so that it
// never equals a primary's (SCAN cursors, server.go, compare them).
const replicaGenBit = 1 << 62

// errNoReplica is a listen_ro command's dial with no healthy replica and
// replicas.fallback_primary off.
var errNoReplica = errors.New("no healthy replica")

// replica is one server of the set.
type replica struct {
	addr    string
	t       atomic.Pointer[target]
	healthy atomic.Bool
	clients atomic.Int64 // listen_ro sessions assigned to it

	// Under pool.mu.
	configured bool   // in replicas.addrs
	listed     bool   // configured, or discovered at the last check
	source     string // where it was last found: "replicas.addrs", "primary", "sentinel <addr>"
	lag        int64
	err        string
	checked    bool

	conn *uplink // the check connection: the check loop's own
}

// replicaPool is the set and its checks.
type replicaPool struct {
	mu     sync.Mutex
	list   []*replica
	basis  *target // the primary target the replicas' targets were built with
	gen    uint64
	cfg    *config.Config
	nextOK atomic.Int32 // healthy replicas, recomputed at each change

	fallbacks   atomic.Uint64
	fallbackLog logLimiter
	discovery   string        // where the last check found the replicas ("" without discover): the replica loop's own
	kick        chan struct{} // buffered: the primary was checked, check the replicas
}

// kickCheck asks the replica loop for a check (after the primary's).
func (rp *replicaPool) kickCheck() {
	if rp.kick == nil {
		return
	}
	select {
	case rp.kick <- struct{}{}:
	default:
	}
}

// discover lists the replicas replicas.discover finds, and where: in
// Sentinel mode those the first sentinel that answers lists ("sentinel
// <addr>"), else, or when none answers, those the primary listed at its
// last check ("primary"; sentinelErr says why no sentinel answered).
// Without discover: none, "".
func discover(ctx context.Context, cfg *config.Config, primary replInfo, d time.Duration) (addrs []string, source string, sentinelErr error) {
	if !cfg.Replicas.Discover {
		return nil, "", nil
	}
	if cfg.Uplink.Sentinel.Enabled() {
		addrs, sa, err := sentinelReplicas(ctx, cfg, d)
		if err == nil {
			return addrs, "sentinel " + sa, nil
		}
		sentinelErr = err
	}
	for _, sl := range primary.slaves {
		if sl.ip != "" && sl.port > 0 {
			addrs = append(addrs, net.JoinHostPort(sl.ip, strconv.Itoa(sl.port)))
		}
	}
	return addrs, "primary", sentinelErr
}

// sync brings the set up to date with the configuration in force and the
// replicas discovered (found, from source); it returns the replicas to
// check.
func (rp *replicaPool) sync(conf *runtimeConfig, found []string, source string) []*replica {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	cfg := conf.cfg
	settings := rp.basis != conf.target || rp.cfg != cfg && !sameReplicaSettings(rp.cfg, cfg)
	rp.cfg = cfg
	want := make(map[string]bool)
	for _, a := range cfg.Replicas.Addrs {
		want[a] = true
	}
	discovered := make(map[string]bool)
	for _, a := range found {
		discovered[a] = true
	}
	have := make(map[string]*replica)
	kept := rp.list[:0]
	for _, r := range rp.list {
		r.configured = want[r.addr]
		if !r.configured && !cfg.Replicas.Discover {
			rp.setHealth(r, false, 0, "no longer configured")
			r.closeCheck()
			continue // dropped from the set
		}
		have[r.addr] = r
		kept = append(kept, r)
	}
	rp.list = kept
	add := func(addr string, configured bool) {
		if _, ok := have[addr]; ok {
			return
		}
		r := &replica{addr: addr, configured: configured}
		have[addr] = r
		rp.list = append(rp.list, r)
	}
	for _, a := range cfg.Replicas.Addrs {
		add(a, true)
	}
	for a := range discovered {
		add(a, false)
	}
	if settings {
		rp.basis = conf.target
		rp.gen++
	}
	for _, r := range rp.list {
		if !settings && r.t.Load() != nil {
			continue
		}
		t, err := newReplicaTarget(cfg, r.addr, replicaGenBit|rp.gen)
		if err != nil {
			rp.setHealth(r, false, 0, err.Error())
			continue
		}
		r.t.Store(t)
		r.closeCheck()
	}
	by := "the primary"
	if sa, ok := strings.CutPrefix(source, "sentinel "); ok {
		by = "Sentinel (" + sa + ")"
	}
	var check []*replica
	for _, r := range rp.list {
		r.listed = r.configured || discovered[r.addr]
		switch {
		case r.configured:
			r.source = "replicas.addrs"
		case r.listed:
			r.source = source
		}
		switch {
		case r.addr == conf.target.addr:
			rp.setHealth(r, false, 0, "it is the primary")
			r.closeCheck()
		case !r.listed:
			rp.setHealth(r, false, 0, "no longer listed by "+by)
			r.closeCheck()
		case r.t.Load() != nil:
			check = append(check, r)
		}
	}
	return check
}

// sameReplicaSettings reports whether a and b dial replicas alike.
func sameReplicaSettings(a, b *config.Config) bool {
	if a == nil || b == nil {
		return false
	}
	ua, ub := a.Uplink, b.Uplink
	return ua.User == ub.User && ua.Pass == ub.Pass && ua.TLS == ub.TLS && ua.SkipVerify == ub.SkipVerify &&
		ua.ServerName == ub.ServerName && ua.CACertFile == ub.CACertFile && ua.CertFile == ub.CertFile && ua.KeyFile == ub.KeyFile
}

// newReplicaTarget is how to reach addr with the uplink's credentials and
// TLS settings.
func newReplicaTarget(cfg *config.Config, addr string, gen uint64) (*target, error) {
	tc, err := cfg.UplinkTLSFor(addr)
	if err != nil {
		return nil, err
	}
	return &target{gen: gen, addr: addr, user: cfg.Uplink.User, pass: cfg.Uplink.Pass, tls: tc}, nil
}

func (r *replica) closeCheck() {
	if r.conn != nil {
		r.conn.conn.Close()
		r.conn = nil
	}
}

// setHealth records a replica's state; the caller holds rp.mu.
func (rp *replicaPool) setHealth(r *replica, ok bool, lag int64, msg string) (changed bool) {
	r.lag, r.err, r.checked = lag, msg, true
	if r.healthy.Swap(ok) == ok {
		return false
	}
	n := int32(0)
	for _, o := range rp.list {
		if o.healthy.Load() {
			n++
		}
	}
	rp.nextOK.Store(n)
	return true
}

// replicaLoop checks the replicas after each check of the primary, until
// ctx ends.
func (p *Proxy) replicaLoop(ctx context.Context) {
	defer p.wg.Done()
	rp := &p.replicas
	defer func() {
		rp.mu.Lock()
		for _, r := range rp.list {
			r.closeCheck()
		}
		rp.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rp.kick:
		}
		p.checkReplicas(ctx, p.conf())
	}
}

// checkReplicas checks every replica of the set at once, and moves the
// subscribed clients of those whose health changed.
func (p *Proxy) checkReplicas(ctx context.Context, conf *runtimeConfig) {
	rp := &p.replicas
	timeout := max(conf.cfg.Uplink.CheckInterval(), minCheckTimeout)
	if conf.limit > 0 {
		timeout = min(timeout, max(conf.limit, minCheckTimeout))
	}
	found, source, serr := discover(ctx, conf.cfg, p.lastReplication(), timeout)
	if ctx.Err() != nil {
		return
	}
	// The lag is measured against the primary's latest offset: a check of
	// it may have ended while the sentinels were asked.
	primary := p.lastReplication()
	if source != rp.discovery {
		rp.discovery = source
		switch {
		case serr != nil:
			p.log.Warn("no sentinel lists the replicas: discovering those the primary lists", "master", conf.cfg.Uplink.Sentinel.Master, "err", serr)
		case source != "":
			p.log.Info("discovering replicas", "source", source, "replicas", len(found))
		}
	}
	check := rp.sync(conf, found, source)
	type result struct {
		ri  replInfo
		c   *uplink
		err error
	}
	results := make([]result, len(check))
	var wg sync.WaitGroup
	for i, r := range check {
		rp.mu.Lock()
		c, t := r.conn, r.t.Load()
		r.conn = nil
		rp.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i].c, results[i].ri, results[i].err = checkOne(ctx, t, c, timeout)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		for _, res := range results {
			if res.c != nil {
				res.c.conn.Close()
			}
		}
		return
	}
	maxLag := int64(conf.cfg.Replicas.MaxLagBytes)
	var moved bool
	rp.mu.Lock()
	for i, r := range check {
		res := results[i]
		r.conn = res.c
		wasChecked := r.checked
		ok, lag, msg := false, int64(0), ""
		switch ri := res.ri; {
		case res.err != nil:
			msg = res.err.Error()
		case ri.role != "slave":
			msg = "role " + ri.role
		case ri.masterLinkStatus != "up":
			msg = "master_link_status " + ri.masterLinkStatus
		default:
			lag = max(primary.masterReplOffset-ri.slaveReplOffset, 0)
			ok = lag <= maxLag
			if !ok {
				msg = fmt.Sprintf("lags %d bytes (max_lag_bytes %d)", lag, maxLag)
			}
		}
		if rp.setHealth(r, ok, lag, msg) || !wasChecked {
			moved = true
			if ok {
				p.log.Info("replica healthy", "replica", r.addr, "lag_bytes", lag)
			} else {
				p.log.Warn("replica not healthy: no new readers, its readers move", "replica", r.addr, "err", msg)
			}
		}
	}
	rp.mu.Unlock()
	if moved {
		p.moveReaders()
	}
}

// checkOne runs one check of t on c (dialed when nil); it returns the
// connection to keep (nil after a failure).
func checkOne(ctx context.Context, t *target, c *uplink, timeout time.Duration) (*uplink, replInfo, error) {
	if c == nil {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		u, err := t.dial(dctx, newReplay(), nil)
		cancel()
		if err != nil {
			return nil, replInfo{}, err
		}
		c = u
	}
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	c.conn.SetDeadline(time.Now().Add(timeout))
	info, err := roundTrip(c)
	if !stop() {
		err = errShutdown
	}
	if err != nil {
		c.conn.Close()
		return nil, replInfo{}, err
	}
	return c, parseReplication(info), nil
}

// moveReaders moves at once the subscribed (pinned) listen_ro sessions
// whose connection is no longer current: they may send no command.
func (p *Proxy) moveReaders() {
	p.forEachSession(func(s *session) {
		if !s.ro || !s.pinned.Load() {
			return
		}
		if u := s.cur.Load(); u != nil && !u.dead.Load() && !s.current(u) {
			s.requestMove()
		}
	})
}

// current reports whether the session may go on using u: for listen, a
// connection to the uplink in force; for listen_ro, one to a replica still
// healthy, or to the primary while no replica is and fallback_primary is on.
func (s *session) current(u *uplink) bool {
	conf := s.p.conf()
	if !s.ro {
		return u.gen == conf.target.gen
	}
	if r := u.rep; r != nil {
		t := r.t.Load()
		return r.healthy.Load() && t != nil && t.gen == u.gen
	}
	return u.gen == conf.target.gen && s.p.replicas.nextOK.Load() == 0 && conf.cfg.Replicas.FallbackPrimary
}

// chooseTarget is the server the session's next connection goes to: the
// primary for listen; for listen_ro the healthy replica with the fewest
// clients (the session counted on it), or in fallback the primary (nil
// replica).
func (s *session) chooseTarget(conf *runtimeConfig) (*target, *replica, error) {
	if !s.ro {
		return conf.target, nil, nil
	}
	rp := &s.p.replicas
	rp.mu.Lock()
	var best *replica
	for _, r := range rp.list {
		if r.healthy.Load() && r.t.Load() != nil && (best == nil || r.clients.Load() < best.clients.Load()) {
			best = r
		}
	}
	if best != nil {
		best.clients.Add(1)
	}
	rp.mu.Unlock()
	s.setReplica(best)
	if best != nil {
		return best.t.Load(), best, nil
	}
	if !conf.cfg.Replicas.FallbackPrimary {
		return nil, nil, errNoReplica
	}
	rp.fallbacks.Add(1)
	if ok, n := rp.fallbackLog.allow(time.Now()); ok {
		s.p.log.Warn("no healthy replica: reads go to the primary (replicas.fallback_primary)", "uplink", conf.target.addr, "client", s.remote, "fallbacks_since_last_log", n)
	}
	return conf.target, nil, nil
}

// setReplica records the replica the session is assigned to (already
// counted on it), uncounting it from the one before. The request
// goroutine's.
func (s *session) setReplica(r *replica) {
	if s.rep != nil {
		s.rep.clients.Add(-1)
	}
	s.rep = r
}

// replicaDialFailed marks r unhealthy after a client's connection to it
// failed; it reports whether another server may be tried.
func (p *Proxy) replicaDialFailed(r *replica, err error) bool {
	if r == nil {
		return false
	}
	rp := &p.replicas
	rp.mu.Lock()
	changed := rp.setHealth(r, false, r.lag, "dial failed: "+err.Error())
	rp.mu.Unlock()
	if changed {
		p.log.Warn("replica not healthy: a client's connection failed; no new readers until a check passes", "replica", r.addr, "err", err)
	}
	return true
}

// replicaStatus lists the set for Status.
func (p *Proxy) replicaStatus() []ReplicaInfo {
	rp := &p.replicas
	rp.mu.Lock()
	defer rp.mu.Unlock()
	out := make([]ReplicaInfo, 0, len(rp.list))
	for _, r := range rp.list {
		out = append(out, ReplicaInfo{Addr: r.addr, Healthy: r.healthy.Load(), LagBytes: r.lag, Clients: int(max(r.clients.Load(), 0)), Error: r.err, Source: r.source})
	}
	return out
}
