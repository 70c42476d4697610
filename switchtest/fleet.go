package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"redis-proxy/config"
	"redis-proxy/internal/redistest"
)

// The fleet mode (-proxies n, n > 1): n proxies in front of the same
// primary. The first, the coordinator, lists the others' admin base URLs
// in switch.peers; cmd=switch goes to it only, and it pauses the peers,
// gates, promotes, fences and retargets the peers itself. The load is
// spread over all of them: client i goes through proxy i mod n.

// member is one proxy of the fleet: p1 is the coordinator.
type member struct {
	name    string // "p1", "p2"...
	cfg     config.Config
	cfgPath string
	px      *proxyProc
	adm     *adminClient
}

// PeerEnd is a peer proxy's side at the end, as ProxyEnd is the
// coordinator's.
type PeerEnd struct {
	Name  string   `json:"name"`
	Admin string   `json:"admin"`
	Proxy ProxyEnd `json:"proxy"`
}

// startMember writes name's config (free loopback ports, uplink = r.cur,
// switch.peers = peers) and starts the proxy, with other ports if one was
// taken meanwhile. The coordinator's files are config.json and proxy.log,
// as in a run with one proxy; a peer's config-<name>.json and
// proxy-<name>.log.
func (r *runner) startMember(ctx context.Context, bin, name string, peers []string) (*member, error) {
	m := &member{name: name, cfgPath: filepath.Join(r.dir, "config.json")}
	logPath := filepath.Join(r.dir, "proxy.log")
	if name != "p1" {
		m.cfgPath = filepath.Join(r.dir, "config-"+name+".json")
		logPath = filepath.Join(r.dir, "proxy-"+name+".log")
	}
	m.cfg = *config.Default()
	m.cfg.ReadTimeLimitMS = r.o.ReadTimeLimitMS
	m.cfg.Uplink.Addr = r.cur.addr()
	m.cfg.Switch.Peers = peers
	var verbose io.Writer
	if r.o.Verbose {
		verbose = prefixWriter{w: r.log, prefix: name + " "}
	}
	for attempt := 1; ; attempt++ {
		listen, err := redistest.FreeAddr()
		if err != nil {
			return nil, err
		}
		admin, err := redistest.FreeAddr()
		if err != nil {
			return nil, err
		}
		m.cfg.Listen.Addr, m.cfg.Admin.Addr = listen, admin
		if err := writeConfigFile(m.cfgPath, &m.cfg); err != nil {
			return nil, err
		}
		m.px, err = startProxy(ctx, bin, m.cfgPath, logPath, verbose)
		if err == nil {
			r.vlogf("proxy %s pid %d started (listen %s, admin %s)", name, m.px.pid(), listen, admin)
			m.adm = newAdminClient(admin)
			return m, nil
		}
		if attempt == 3 || !errors.Is(err, errAddrInUse) {
			return nil, fmt.Errorf("proxy %s: %w", name, err)
		}
	}
}

// prefixWriter prefixes each write (one log line) with a proxy's name.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// writeConfigFile writes cfg to path atomically (a reload must never read
// half a file).
func writeConfigFile(path string, cfg *config.Config) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fileUplink is uplink.addr as the config file at path says now.
func fileUplink(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var c struct {
		Uplink struct {
			Addr string `json:"addr"`
		} `json:"uplink"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return c.Uplink.Addr, nil
}

// checkFleet checks that every proxy of the fleet runs on addr, by its
// /info.json and its config file.
func (r *runner) checkFleet(ctx context.Context, addr string) error {
	for _, m := range r.fleet {
		info, err := m.adm.info(ctx)
		if err != nil {
			return fmt.Errorf("proxy %s: %w", m.name, err)
		}
		if info.Uplink.Addr != addr || info.State != "running" {
			return fmt.Errorf("proxy %s: state %s, uplink %s; want running on %s", m.name, info.State, info.Uplink.Addr, addr)
		}
		f, err := fileUplink(m.cfgPath)
		if err != nil {
			return fmt.Errorf("proxy %s: %w", m.name, err)
		}
		if f != addr {
			return fmt.Errorf("proxy %s: config file %s has uplink.addr %s, want %s", m.name, filepath.Base(m.cfgPath), f, addr)
		}
	}
	return nil
}

// listenAddrs are the proxies' client addresses, the coordinator's first.
func (r *runner) listenAddrs() []string {
	var addrs []string
	for _, m := range r.fleet {
		addrs = append(addrs, m.cfg.Listen.Addr)
	}
	return addrs
}

// anyExited is closed when any proxy of the fleet has exited; name says
// which one first.
func (r *runner) watchFleet() {
	r.fleetExited = make(chan struct{})
	done := make(chan *member, len(r.fleet))
	for _, m := range r.fleet {
		go func() {
			<-m.px.exited()
			done <- m
		}()
	}
	go func() {
		r.firstExited = <-done
		close(r.fleetExited)
	}()
}
