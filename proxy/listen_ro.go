package proxy

import (
	"crypto/tls"
	"fmt"
	"net"
)

// listen_ro: a second managed listener for reads. Its sessions are
// listen's in every way (pipelining, RESP3, pub/sub, state replayed, the
// pause gate) but three: the password is listen_ro.pass (no
// forward_auth), and each connection goes to a replica chosen by
// chooseTarget (replicas.go).

// maxDialTries bounds the servers one command's dial tries: each replica
// whose connection fails is marked unhealthy, and the next is tried.
const maxDialTries = 8

// listenRO opens listen_ro when configured, and prepares the replica checks.
func (p *Proxy) listenRO(conf *runtimeConfig) error {
	if conf.cfg.ListenRO.Addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", conf.cfg.ListenRO.Addr)
	if err != nil {
		return fmt.Errorf("listen_ro: %w", err)
	}
	p.roLn = ln
	p.replicas.kick = make(chan struct{}, 1)
	return nil
}

// ROAddr is listen_ro's address, or nil.
func (p *Proxy) ROAddr() net.Addr {
	if p.roLn == nil {
		return nil
	}
	return p.roLn.Addr()
}

// serverTLS is the TLS configuration of listen, or of listen_ro when ro;
// nil: plain TCP.
func (conf *runtimeConfig) serverTLS(ro bool) *tls.Config {
	if ro {
		if conf.cfg.ListenRO.TLS {
			return conf.roTLS
		}
		return nil
	}
	if conf.cfg.Listen.TLS {
		return conf.listenTLS
	}
	return nil
}

// listenPass is the password the session's listener asks for ("" none).
func (s *session) listenPass() string {
	if s.ro {
		return s.p.conf().cfg.ListenRO.Pass
	}
	return s.p.conf().cfg.Listen.Pass
}

// forwardsAuth reports whether the client's AUTH goes to Redis
// (listen.forward_auth; never on listen_ro).
func (s *session) forwardsAuth() bool {
	return !s.ro && s.p.conf().cfg.Listen.ForwardAuth
}

// leaveReplica lets the replies in flight on a live listen_ro connection
// arrive before the session leaves it for another server (its replica is
// no longer healthy, or a replica is again): moving costs the client
// nothing but the new connection.
func (s *session) leaveReplica() error {
	if !s.ro || s.up.dead.Load() {
		return nil
	}
	s.flushUp()
	return s.q.waitEmpty(s.done)
}

// where is the session's listener and the server its connection goes to,
// for the client list.
func (s *session) where() (listener, server string) {
	listener = "listen"
	if s.ro {
		listener = "listen_ro"
	}
	if u := s.cur.Load(); u != nil && !u.dead.Load() {
		if u.rep != nil {
			server = u.rep.addr
		} else {
			server = s.p.conf().target.addr
		}
	}
	return listener, server
}
