package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// The raw listener: an unmanaged full-duplex byte relay to the uplink, for
// what the managed listener cannot carry (pub/sub, MONITOR, replication).
// Clients authenticate to Redis themselves. A reload does not move raw
// connections: terminate-raw-connections does, when the operator says so.

type rawSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (r *rawSet) add(c net.Conn) {
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
}

func (r *rawSet) remove(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

func (r *rawSet) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// TerminateRawConnections closes every raw relay connection and reports
// how many there were.
func (p *Proxy) TerminateRawConnections() int {
	p.raw.mu.Lock()
	n := len(p.raw.conns)
	for c := range p.raw.conns {
		c.Close()
	}
	p.raw.mu.Unlock()
	if n > 0 {
		p.log.Info("raw connections terminated", "count", n)
	}
	return n
}

func (p *Proxy) rawLoop(ln net.Listener) {
	defer p.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Error("raw accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		conf := p.conf()
		if conf.cfg.ListenRaw.TLS && conf.rawTLS != nil {
			conn = tls.Server(conn, conf.rawTLS)
		}
		p.raw.add(conn)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.raw.remove(conn)
			p.relay(conn, conf.target)
		}()
	}
}

// relay copies bytes both ways between a raw client and its own uplink
// connection until either side closes.
func (p *Proxy) relay(client net.Conn, t *target) {
	defer client.Close()
	log := p.log.With("client", client.RemoteAddr().String(), "raw", true)
	ctx, cancel := context.WithTimeout(context.Background(), p.conf().limit)
	up, err := t.connect(ctx)
	cancel()
	if err != nil {
		p.dialErrors.Add(1)
		log.Warn("raw relay: uplink dial failed", "uplink", t.addr, "err", err)
		return
	}
	defer up.Close()
	log.Info("raw connection opened", "uplink", t.addr)
	start := time.Now()
	errc := make(chan error, 2)
	go rawCopier{dst: up, src: client}.copyToUplink(errc)
	go rawCopier{dst: client, src: up}.copyToClient(errc)
	// A direction that ends cleanly has passed its end of stream on (each
	// copier half-closes); one that fails, or a terminate, ends both.
	err = <-errc
	if err != nil {
		client.Close()
		up.Close()
	}
	if err2 := <-errc; err == nil {
		err = err2
	}
	reason := "closed"
	if err != nil && !errors.Is(err, net.ErrClosed) {
		reason = err.Error()
	}
	log.Info("raw connection closed", "reason", reason, "duration_ms", time.Since(start).Milliseconds())
}

// rawCopier has a method per direction so that the goroutines have names
// in stack traces (as httputil's switchProtocolCopier).
type rawCopier struct{ dst, src net.Conn }

func (c rawCopier) copyToUplink(errc chan<- error) { errc <- c.copy() }
func (c rawCopier) copyToClient(errc chan<- error) { errc <- c.copy() }

func (c rawCopier) copy() error {
	_, err := io.Copy(c.dst, c.src)
	closeWrite(c.dst)
	return err
}

func closeWrite(c net.Conn) {
	switch cw := c.(type) {
	case *net.TCPConn:
		cw.CloseWrite()
	case *tls.Conn:
		cw.CloseWrite()
	default:
		c.Close()
	}
}
