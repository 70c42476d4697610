package config

import (
	"errors"
	"fmt"
	"math"
	"net"
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
	validateServer(&p, "listen", c.Listen.Addr, c.Listen.TLS, c.Listen.CertFile, c.Listen.KeyFile, c.Listen.ClientCAFile)
	c.validateListenRaw(&p)
	validateServer(&p, "admin", c.Admin.Addr, c.Admin.TLS, c.Admin.CertFile, c.Admin.KeyFile, c.Admin.ClientCAFile)
	pair(&p, "admin.user", c.Admin.User, "admin.pass", c.Admin.Pass)
	c.validateNumbers(&p)
	c.validateAddrsDiffer(&p)
	return p
}

func (c *Config) validateUplink(p *problems) {
	u := c.Uplink
	host, _, ok := validateAddr(p, "uplink.addr", u.Addr, true)
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
	if ok && host == "" && u.ServerName == "" && !u.SkipVerify {
		p.add("uplink.servername", "required when uplink.tls is true and uplink.addr has no host to verify")
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
// wildcard host overlaps every host on its port), and that the uplink is not
// the proxy itself.
func (c *Config) validateAddrsDiffer(p *problems) {
	var listeners []endpoint
	for _, kv := range [][2]string{{"listen.addr", c.Listen.Addr}, {"listen_raw.addr", c.ListenRaw.Addr}, {"admin.addr", c.Admin.Addr}} {
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
	up, ok := newEndpoint("uplink.addr", c.Uplink.Addr)
	if !ok {
		return
	}
	for _, l := range listeners {
		if l.key != "admin.addr" && l.host == up.host && l.port == up.port {
			p.add("uplink.addr", "same address as %s (%s): the proxy would connect to itself", l.key, l.addr)
		}
	}
}
