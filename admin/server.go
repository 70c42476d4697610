package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves Handler on admin.addr, over HTTP or HTTPS.
type Server struct {
	srv  *http.Server
	log  *slog.Logger
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// NewServer prepares a server for Handler(c, logger); it opens nothing.
func NewServer(c Controller, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		log: logger,
		srv: &http.Server{
			Handler:           Handler(c, logger),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			// cmd=pause and cmd=reload answer once done, and
			// /debug/pprof/profile takes its time: be generous.
			WriteTimeout:   cmdTimeout + time.Minute,
			IdleTimeout:    2 * time.Minute,
			MaxHeaderBytes: 64 << 10,
			ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
	}
}

// Start listens on addr now and serves in a goroutine; with tlsConf (which
// must hold a certificate, and may require client certificates) it serves
// HTTPS. Start may be called once.
func (s *Server) Start(addr string, tlsConf *tls.Config) error {
	if s.ln != nil {
		return errors.New("admin: server already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.done = make(chan struct{})
	s.srv.TLSConfig = tlsConf
	go func() {
		defer close(s.done)
		var err error
		if tlsConf != nil {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin: server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return nil
}

// Addr is the address Start listens on, or nil before Start.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops accepting and waits for requests in flight; when ctx ends
// first, it closes the connections left and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	if s.done != nil {
		<-s.done // Serve returns as soon as the listener is closed
	}
	return err
}
