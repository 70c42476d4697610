package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bounds on the millisecond settings.
const (
	// MaxReadTimeLimitMS is 24 hours: a pause waits for the commands in
	// flight, so it must finish in bounded time.
	MaxReadTimeLimitMS = int(24 * time.Hour / time.Millisecond)
	// MaxClientIdleTimeoutMS is the longest time.Duration in milliseconds.
	MaxClientIdleTimeoutMS = int(math.MaxInt64 / int64(time.Millisecond))
)

// Validate checks c without touching files or the network (LoadTLS reads the
// files) and returns every problem, each a *KeyError naming its key, joined
// with errors.Join; nil when c is valid.
func (c *Config) Validate() error {
	problems := c.validate()
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// problems collects *KeyErrors in the order they are found.
type problems []*KeyError

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (c *Config) validate() []*KeyError {
	var p problems
	c.validateUplink(&p)
	c.validateFollow(&p)
	validateServer(&p, "listen", c.Listen.Addr, c.Listen.TLS, c.Listen.CertFile, c.Listen.KeyFile, c.Listen.ClientCAFile)
	if c.Listen.ForwardAuth && c.Listen.Pass != "" {
		p.add("listen.forward_auth", "excludes listen.pass: with forward_auth Redis checks the clients' AUTH; set one or the other")
	}
	c.validateListenRO(&p)
	c.validateReplicas(&p)
	c.validateListenRaw(&p)
	validateServer(&p, "admin", c.Admin.Addr, c.Admin.TLS, c.Admin.CertFile, c.Admin.KeyFile, c.Admin.ClientCAFile)
	pair(&p, "admin.user", c.Admin.User, "admin.pass", c.Admin.Pass)
	c.validateSwitch(&p)
	c.validateNumbers(&p)
	c.validateAddrsDiffer(&p)
	return p
}

func (c *Config) validateUplink(p *problems) {
	u := c.Uplink
	// In Sentinel mode the sentinels name the primary: uplink.addr may be
	// left out, and is checked only when given.
	validateAddr(p, "uplink.addr", u.Addr, !u.Sentinel.Enabled())
	if u.User != "" && u.Pass == "" {
		p.add("uplink.pass", "required when uplink.user is set")
	}
	if !u.TLS {
		unused(p, "uplink", "uplink.tls is false",
			setting{"cacertfile", u.CACertFile != ""}, setting{"skipverify", u.SkipVerify},
			setting{"certfile", u.CertFile != ""}, setting{"keyfile", u.KeyFile != ""},
			setting{"servername", u.ServerName != ""})
		return
	}
	if u.CACertFile == "" && !u.SkipVerify {
		p.add("uplink.cacertfile", "required when uplink.tls is true, unless uplink.skipverify is true")
	}
	pair(p, "uplink.certfile", u.CertFile, "uplink.keyfile", u.KeyFile)
	if u.ServerName != "" || u.SkipVerify {
		return
	}
	// Every server dialled with the uplink's TLS settings needs a name to
	// verify its certificate against.
	for _, t := range c.uplinkTargets() {
		if e, ok := newEndpoint(t.key, t.addr); ok && e.host == "" {
			p.add("uplink.servername", "required when uplink.tls is true and %s has no host to verify", t.key)
		}
	}
}

// target is an address the proxy dials, with its key path.
type target struct{ key, addr string }

// uplinkTargets are the servers the proxy dials with the uplink's
// credentials and TLS settings: uplink.addr, the candidates and the fixed
// replicas.
func (c *Config) uplinkTargets() []target {
	t := []target{{"uplink.addr", c.Uplink.Addr}}
	t = appendTargets(t, "uplink.candidates", c.Uplink.Candidates)
	return appendTargets(t, "replicas.addrs", c.Replicas.Addrs)
}

func appendTargets(t []target, key string, addrs []string) []target {
	for i, a := range addrs {
		t = append(t, target{indexKey(key, i), a})
	}
	return t
}

// validateFollow checks how the proxy watches and follows its primary: the
// health check, the candidates and Sentinel.
func (c *Config) validateFollow(p *problems) {
	u := c.Uplink
	switch {
	case u.CheckIntervalMS < 0:
		p.add("uplink.check_interval_ms", "must be 0 (off) or more")
	case u.CheckIntervalMS > MaxClientIdleTimeoutMS:
		p.add("uplink.check_interval_ms", "must be at most %d", MaxClientIdleTimeoutMS)
	}
	validateList(p, "uplink.candidates", u.Candidates)
	s := u.Sentinel
	switch {
	case len(u.Candidates) > 0 && s.Enabled():
		p.add("uplink.candidates", "excludes uplink.sentinel: Sentinel names the primary; set one or the other")
	case len(u.Candidates) > 0 && u.CheckIntervalMS == 0:
		p.add("uplink.candidates", "set but uplink.check_interval_ms is 0 (off): the health check is what finds that the primary failed")
	}
	if !s.Enabled() {
		// No addrs and no master: Sentinel is off, its auth would never be used.
		unused(p, "uplink.sentinel", "uplink.sentinel is off (no addrs, no master)",
			setting{"user", s.User != ""}, setting{"pass", s.Pass != ""})
		return
	}
	if len(s.Addrs) == 0 {
		p.add("uplink.sentinel.addrs", "required when uplink.sentinel.master is set")
	}
	validateList(p, "uplink.sentinel.addrs", s.Addrs)
	if s.Master == "" {
		p.add("uplink.sentinel.master", "required when uplink.sentinel.addrs is set")
	}
	if s.User != "" && s.Pass == "" {
		p.add("uplink.sentinel.pass", "required when uplink.sentinel.user is set")
	}
}

func (c *Config) validateListenRO(p *problems) {
	r := c.ListenRO
	if r.Addr == "" {
		unused(p, "listen_ro", "listen_ro.addr is empty (listen_ro is off)",
			setting{"tls", r.TLS}, setting{"certfile", r.CertFile != ""}, setting{"keyfile", r.KeyFile != ""},
			setting{"clientcafile", r.ClientCAFile != ""}, setting{"pass", r.Pass != ""})
		return
	}
	validateServer(p, "listen_ro", r.Addr, r.TLS, r.CertFile, r.KeyFile, r.ClientCAFile)
	if c.Uplink.CheckIntervalMS == 0 {
		p.add("listen_ro.addr", "set but uplink.check_interval_ms is 0 (off): a replica serves reads only while its health check passes")
	}
	if len(c.Replicas.Addrs) == 0 && !c.Replicas.Discover {
		p.add("replicas.addrs", "required when listen_ro.addr is set and replicas.discover is false: listen_ro would have no replica to read from")
	}
}

func (c *Config) validateReplicas(p *problems) {
	r := c.Replicas
	validateList(p, "replicas.addrs", r.Addrs)
	if r.MaxLagBytes < 0 {
		p.add("replicas.max_lag_bytes", "must be 0 or more")
	}
}

func (c *Config) validateSwitch(p *problems) {
	s := c.Switch
	for _, kv := range []struct {
		key string
		ms  int
	}{{"switch.catchup_timeout_ms", s.CatchupTimeoutMS}, {"switch.gate_timeout_ms", s.GateTimeoutMS}} {
		switch {
		case kv.ms < 0:
			p.add(kv.key, "must be 0 (check once, without waiting) or more")
		case kv.ms > MaxReadTimeLimitMS:
			p.add(kv.key, "must be at most %d (24h)", MaxReadTimeLimitMS)
		}
	}
	admin, adminOK := newEndpoint("admin.addr", c.Admin.Addr)
	seen := make(map[string]string) // host:port -> key of its first peer
	for i, peer := range s.Peers {
		key := indexKey("switch.peers", i)
		u, msg := parsePeer(peer)
		if msg != "" {
			p.add(key, "%s", msg)
			continue
		}
		e, _ := newEndpoint(key, u.Host)
		id := net.JoinHostPort(e.host, strconv.Itoa(e.port))
		if first, dup := seen[id]; dup {
			p.add(key, "same proxy as %s (%s)", first, id)
			continue
		}
		seen[id] = key
		if adminOK && !admin.wildcard() && admin.host == e.host && admin.port == e.port {
			p.add(key, "%s is this proxy's own admin.addr; peers are the other proxies", id)
		}
	}
}

// parsePeer parses a switch.peers entry, an admin base URL such as
// http://10.0.0.2:7012, or says what is wrong with it; the URL's Host
// always has a port (80 or 443 when the entry has none). Messages never
// show a password the entry may hold.
func parsePeer(peer string) (*url.URL, string) {
	const want = "want an admin base URL such as http://10.0.0.2:7012"
	if peer == "" {
		return nil, "empty, " + want
	}
	shown := strconv.Quote(shorten(redactURL(peer)))
	if lower := strings.ToLower(peer); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return nil, fmt.Sprintf("%s: must start with http:// or https://; %s", shown, want)
	}
	u, err := url.Parse(peer)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) && !strings.Contains(peer, "@") {
			return nil, fmt.Sprintf("%s is not a URL (%v); %s", shown, uerr.Err, want)
		}
		return nil, fmt.Sprintf("%s is not a URL; %s", shown, want)
	}
	switch {
	case u.Hostname() == "":
		return nil, fmt.Sprintf("%s has no host; %s", shown, want)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Sprintf("%s has a path; %s (the proxy adds /cmd/)", shown, want)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Sprintf("%s has a query; %s", shown, want)
	case u.Fragment != "":
		return nil, fmt.Sprintf("%s has a fragment; %s", shown, want)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Sprintf("%s: port %s must be a number from 1 to 65535", shown, strconv.Quote(shorten(port)))
	}
	u.Host = net.JoinHostPort(u.Hostname(), port)
	return u, ""
}

// validateList checks a list of host:port addresses: each valid, none twice
// (also when spelled differently).
func validateList(p *problems, key string, addrs []string) {
	var seen []endpoint
	for i, addr := range addrs {
		k := indexKey(key, i)
		if addr == "" {
			p.add(k, "empty, want host:port")
			continue
		}
		if _, _, ok := validateAddr(p, k, addr, false); !ok {
			continue
		}
		e, _ := newEndpoint(k, addr)
		for _, s := range seen {
			if s.host == e.host && s.port == e.port {
				p.add(k, "same address as %s (%s); list each server once", s.key, s.addr)
				break
			}
		}
		seen = append(seen, e)
	}
}

// validateServer checks a listener that may serve TLS: listen, listen_raw
// (without clientcafile) or admin.
func validateServer(p *problems, section, addr string, useTLS bool, certFile, keyFile, clientCAFile string) {
	validateAddr(p, section+".addr", addr, true)
	if !useTLS {
		unused(p, section, section+".tls is false", setting{"certfile", certFile != ""},
			setting{"keyfile", keyFile != ""}, setting{"clientcafile", clientCAFile != ""})
		return
	}
	if certFile == "" {
		p.add(section+".certfile", "required when %s.tls is true", section)
	}
	if keyFile == "" {
		p.add(section+".keyfile", "required when %s.tls is true", section)
	}
}

func (c *Config) validateListenRaw(p *problems) {
	r := c.ListenRaw
	if r.Addr != "" {
		validateServer(p, "listen_raw", r.Addr, r.TLS, r.CertFile, r.KeyFile, "")
		return
	}
	// listen_raw is optional: without an address nothing else may be set.
	unused(p, "listen_raw", "listen_raw.addr is empty (listen_raw is off)",
		setting{"tls", r.TLS}, setting{"certfile", r.CertFile != ""}, setting{"keyfile", r.KeyFile != ""})
}

// setting is a key of a section and whether the file sets it.
type setting struct {
	name string
	set  bool
}

// unused reports each setting that is set although, for reason, it would
// never be applied: a setting that silently does nothing is a mistake, not a
// default.
func unused(p *problems, section, reason string, settings ...setting) {
	for _, s := range settings {
		if s.set {
			p.add(section+"."+s.name, "set but %s", reason)
		}
	}
}

// pair reports either of two settings that only work together.
func pair(p *problems, keyA, a, keyB, b string) {
	if a != "" && b == "" {
		p.add(keyB, "required when %s is set", keyA)
	}
	if b != "" && a == "" {
		p.add(keyA, "required when %s is set", keyB)
	}
}

func (c *Config) validateNumbers(p *problems) {
	switch {
	case c.ReadTimeLimitMS <= 0:
		p.add("read_time_limit_ms", "must be greater than 0: it bounds every command, and a pause waits for the commands in flight, so it must finish in bounded time")
	case c.ReadTimeLimitMS > MaxReadTimeLimitMS:
		p.add("read_time_limit_ms", "must be at most %d (24h)", MaxReadTimeLimitMS)
	}
	if c.MaxClients < 0 {
		p.add("max_clients", "must be 0 (unlimited) or more")
	}
	switch {
	case c.ClientIdleTimeoutMS < 0:
		p.add("client_idle_timeout_ms", "must be 0 (never) or more")
	case c.ClientIdleTimeoutMS > MaxClientIdleTimeoutMS:
		p.add("client_idle_timeout_ms", "must be at most %d", MaxClientIdleTimeoutMS)
	}
}

// validateAddr checks that addr is host:port with a numeric port from 1 to
// 65535 (the host may be empty: every address, or for a dial the local
// system). It returns the host and port when addr is valid.
func validateAddr(p *problems, key, addr string, required bool) (host string, port int, ok bool) {
	if addr == "" {
		if required {
			p.add(key, "required")
		}
		return "", 0, false
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		var aerr *net.AddrError
		if errors.As(err, &aerr) {
			err = errors.New(aerr.Err)
		}
		p.add(key, "%s is not host:port (%v)", strconv.Quote(shorten(addr)), err)
		return "", 0, false
	}
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || strings.TrimLeft(portStr, "0123456789") != "" {
		p.add(key, "port %s must be a number from 1 to 65535", strconv.Quote(shorten(portStr)))
		return "", 0, false
	}
	return host, port, true
}

// endpoint is a valid address, for comparing addresses.
type endpoint struct {
	key, addr string
	host      string // normalized: lower case, IPs in canonical form
	port      int
}

func newEndpoint(key, addr string) (endpoint, bool) {
	var discard problems
	host, port, ok := validateAddr(&discard, key, addr, false)
	if !ok {
		return endpoint{}, false
	}
	host = strings.ToLower(host)
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return endpoint{key: key, addr: addr, host: host, port: port}, true
}

// wildcard reports whether e listens on every address.
func (e endpoint) wildcard() bool {
	ip := net.ParseIP(e.host)
	return e.host == "" || ip != nil && ip.IsUnspecified()
}

// validateAddrsDiffer checks that no two listeners share an address (a
// wildcard host overlaps every host on its port), and that no server the
// proxy dials is the proxy itself.
func (c *Config) validateAddrsDiffer(p *problems) {
	var listeners []endpoint
	for _, kv := range [][2]string{
		{"listen.addr", c.Listen.Addr}, {"listen_ro.addr", c.ListenRO.Addr},
		{"listen_raw.addr", c.ListenRaw.Addr}, {"admin.addr", c.Admin.Addr},
	} {
		if e, ok := newEndpoint(kv[0], kv[1]); ok {
			listeners = append(listeners, e)
		}
	}
	for i, b := range listeners {
		for _, a := range listeners[:i] {
			switch {
			case a.port != b.port:
			case a.host == b.host:
				p.add(b.key, "same address as %s (%s); each listener needs its own", a.key, a.addr)
			case a.wildcard() || b.wildcard():
				p.add(b.key, "%s overlaps %s (%s) on port %d; each listener needs its own address", b.addr, a.key, a.addr, b.port)
			}
		}
	}
	targets := []target{{"uplink.addr", c.Uplink.Addr}}
	targets = appendTargets(targets, "uplink.candidates", c.Uplink.Candidates)
	targets = appendTargets(targets, "uplink.sentinel.addrs", c.Uplink.Sentinel.Addrs)
	targets = appendTargets(targets, "replicas.addrs", c.Replicas.Addrs)
	for _, t := range targets {
		up, ok := newEndpoint(t.key, t.addr)
		if !ok {
			continue
		}
		for _, l := range listeners {
			if l.key != "admin.addr" && l.host == up.host && l.port == up.port {
				p.add(t.key, "same address as %s (%s): the proxy would connect to itself", l.key, l.addr)
			}
		}
	}
}
