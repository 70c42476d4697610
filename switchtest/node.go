package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"redis-proxy/internal/redistest"
)

const (
	// nodeStartDeadline bounds a redis-server's start (its ready line).
	nodeStartDeadline = 30 * time.Second
	// controlTimeout bounds one command on a node's control connection.
	controlTimeout = 10 * time.Second
)

// serverArgs are given to every redis-server (on top of redistest's
// --save "" --appendonly no): the full sync of a new replica goes over the
// socket at once. Redis 7.0 syncs diskless by default but waits
// repl-diskless-sync-delay (5 s) for more replicas first.
var serverArgs = []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}

// node is one redis-server this program started, with a direct control
// connection (never through the proxy).
type node struct {
	name    string
	srv     *redistest.Server
	ctl     *redistest.Client
	logf    *os.File
	stopped bool
}

func (n *node) addr() string { return n.srv.Addr }

func (n *node) String() string { return n.name + " " + n.srv.Addr }

// startNode starts a fresh, empty redis-server in dir/<name>, logging to
// dir/<name>.log.
func startNode(ctx context.Context, dir, name, binary string) (*node, error) {
	sdir := filepath.Join(dir, name)
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, nodeStartDeadline)
	defer cancel()
	srv, err := redistest.StartServer(ctx, redistest.Options{
		Binary: binary,
		Dir:    sdir,
		Args:   serverArgs,
		Stdout: logf,
	})
	if err != nil {
		logf.Close()
		return nil, err
	}
	ctl, err := redistest.Dial(srv.Addr, controlTimeout)
	if err != nil {
		_ = srv.Stop()
		logf.Close()
		return nil, fmt.Errorf("%s %s: %w", name, srv.Addr, err)
	}
	return &node{name: name, srv: srv, ctl: ctl, logf: logf}, nil
}

// do sends one command on the control connection; an error reply is an
// error.
func (n *node) do(args ...any) (redistest.Value, error) {
	v, err := n.ctl.Do(args...)
	if err == nil {
		err = v.Err()
	}
	if err != nil {
		return v, fmt.Errorf("%s: %v: %w", n, args, err)
	}
	return v, nil
}

// info returns INFO section as key -> value.
func (n *node) info(section string) (map[string]string, error) {
	v, err := n.do("INFO", section)
	if err != nil {
		return nil, err
	}
	return parseInfo(v.Str), nil
}

// infoInt reads one integer field of INFO section.
func (n *node) infoInt(section, key string) (int64, error) {
	m, err := n.info(section)
	if err != nil {
		return 0, err
	}
	return intField(m, key)
}

// stop stops the server (SIGTERM by PID, then SIGKILL) and closes its
// connection and log. It is idempotent.
func (n *node) stop() error {
	if n.stopped {
		return nil
	}
	n.stopped = true
	n.ctl.Close()
	err := n.srv.Stop()
	n.logf.Close()
	return err
}

// parseInfo parses the text of INFO: "key:value" lines, "# Section"
// headers and blank lines ignored.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// intField returns m[key] as an integer.
func intField(m map[string]string, key string) (int64, error) {
	s, ok := m[key]
	if !ok {
		return 0, fmt.Errorf("INFO has no %s", key)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("INFO %s: %w", key, err)
	}
	return n, nil
}
