package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"redis-proxy/admin"
	"redis-proxy/config"
	"redis-proxy/proxy"
)

// stopMargin is added to read_time_limit_ms to bound a graceful stop: the
// proxy itself disconnects what is still in flight past the limit, so this
// is only a safety net.
const stopMargin = 5 * time.Second

// startupCheckTimeout bounds the uplink check made after start-up.
const startupCheckTimeout = 5 * time.Second

// serve runs the proxy and its admin server until SIGINT or SIGTERM (or
// ctx ends), reloading on SIGHUP. It returns the exit code. start is when
// the process began its work, for the start-up time.
func serve(ctx context.Context, path string, log *slog.Logger, start time.Time) int {
	// Signals first: a SIGTERM during start-up is a graceful stop too.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	cfg, err := config.Load(path)
	if err == nil {
		err = prefixLines(path+": ", cfg.LoadTLS())
	}
	if err != nil {
		logErrors(log, "bad config; not starting", err)
		return exitFailure
	}
	ver := versionString()
	procs := setProcs()
	p, err := proxy.New(cfg, proxy.Options{
		Logger:     log,
		Version:    ver,
		LoadConfig: func() (*config.Config, error) { return config.Load(path) },
		ConfigPath: path,
	})
	if err != nil {
		logErrors(log, "cannot start", err)
		return exitFailure
	}
	if err := p.Start(); err != nil {
		log.Error("cannot start", "err", err)
		return exitFailure
	}
	adm, err := startAdmin(p, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		stopProxy(p, log)
		return exitFailure
	}
	attrs := []any{
		"listen", p.Addr().String(),
		"admin", adm.Addr().String(),
		"uplink", cfg.Uplink.Addr,
		"uplink_tls", cfg.Uplink.TLS,
	}
	if raw := p.RawAddr(); raw != nil {
		attrs = append(attrs, "listen_raw", raw.String())
	}
	attrs = append(attrs, "config", path, "version", ver, "pid", os.Getpid(), "gomaxprocs", procs,
		"startup_ms", float64(time.Since(start).Microseconds())/1000)
	log.Info("started", attrs...)

	// Whether the uplink answers is worth a line, but must not delay
	// start-up: the proxy serves errors until it is back.
	checkCtx, cancelCheck := context.WithCancel(context.Background())
	defer cancelCheck()
	go checkUplink(checkCtx, cfg, log)

	var why []any
wait:
	for {
		select {
		case <-ctx.Done():
			why = []any{"reason", context.Cause(ctx).Error()}
			break wait
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				// In the background: a SIGTERM must not wait for a
				// reload's proof of a slow uplink.
				go reloadOnSignal(p, log)
				continue
			}
			why = []any{"signal", sig.String()}
			break wait
		}
	}

	log.Info("stopping", why...)
	cancelCheck() // not waited for: a stuck uplink must not hold the stop
	stopped := make(chan int, 1)
	go func() { stopped <- shutdown(p, adm, log) }()
	for {
		select {
		case code := <-stopped:
			return code
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Warn("SIGHUP ignored: stopping")
				continue
			}
			log.Error("second signal: forcing the stop without waiting for commands in flight", "signal", sig.String())
			return exitFailure
		}
	}
}

// startAdmin starts the admin server on admin.addr.
func startAdmin(p *proxy.Proxy, cfg *config.Config, log *slog.Logger) (*admin.Server, error) {
	tlsConf, err := cfg.AdminTLS()
	if err != nil {
		return nil, err
	}
	adm := admin.NewServer(p, log)
	if err := adm.Start(cfg.Admin.Addr, tlsConf); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return adm, nil
}

// checkUplink proves the uplink once and says how it went.
func checkUplink(ctx context.Context, cfg *config.Config, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, min(cfg.ReadTimeLimit(), startupCheckTimeout))
	defer cancel()
	start := time.Now()
	err := proxy.Prove(ctx, cfg)
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// Stopping already: say nothing.
	case err != nil:
		log.Warn("uplink not available at start-up; clients get the error until it is back",
			"uplink", cfg.Uplink.Addr, "err", err)
	default:
		log.Info("uplink ok", "uplink", cfg.Uplink.Addr,
			"duration_ms", float64(time.Since(start).Microseconds())/1000)
	}
}

// reloadOnSignal reloads for SIGHUP. The proxy logs the outcome (the
// changed keys, or why the reload was refused); a reload it would not even
// begin (one is already running, or the state does not allow it) is
// logged here.
func reloadOnSignal(p *proxy.Proxy, log *slog.Logger) {
	log.Info("SIGHUP: reloading the configuration")
	if err := p.Reload(context.Background()); errors.Is(err, proxy.ErrState) {
		log.Warn("SIGHUP: reload not done", "err", err)
	}
}

// shutdown stops the admin server and the proxy together: the proxy stops
// accepting, lets commands in flight finish (bounded by
// read_time_limit_ms) and closes every connection.
func shutdown(p *proxy.Proxy, adm *admin.Server, log *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), p.Config().ReadTimeLimit()+stopMargin)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := adm.Shutdown(ctx); err != nil {
			log.Warn("admin server: stop incomplete", "err", err)
		}
	})
	err := p.Shutdown(ctx)
	wg.Wait()
	if err != nil {
		log.Error("stop incomplete", "err", err)
		return exitFailure
	}
	return exitOK
}

// stopProxy stops a proxy whose start-up failed after it started.
func stopProxy(p *proxy.Proxy, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), stopMargin)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Error("stop incomplete", "err", err)
	}
}

// prefixLines prefixes every line of err with prefix; nil stays nil.
func prefixLines(prefix string, err error) error {
	if err == nil {
		return nil
	}
	lines := errorLines(prefix, err)
	errs := make([]error, len(lines))
	for i, l := range lines {
		errs[i] = errors.New(l)
	}
	return errors.Join(errs...)
}
