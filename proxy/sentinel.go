package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"redis-proxy/config"
	"redis-proxy/resp"
)

// Sentinel mode (uplink.sentinel): the sentinels name the primary. At
// start-up the proxy asks them (the first that answers) for the master's
// address and uses it as the uplink, without writing it into the
// configuration file; it starts all the same when none answers (clients
// get the uplink-unavailable error meanwhile). It then listens to
// +switch-master on one sentinel (the next one when that one fails), and
// asks again after each health check. followLoop (follow.go) makes the
// move. The uplink's TLS settings apply to the sentinels too; the
// sentinels' own credentials are uplink.sentinel.user and pass. With
// listen_ro and replicas.discover, the replica checks (replicas.go) ask
// the sentinels for the master's replicas (SENTINEL REPLICAS).

const (
	// sentinelAskTimeout bounds one question to one sentinel.
	sentinelAskTimeout = time.Second
	// sentinelKeepalive is how long the subscription may be silent
	// before the proxy PINGs; a second silence ends it.
	sentinelKeepalive = 2 * time.Second
	// sentinelRetry is the wait after every sentinel failed in turn.
	sentinelRetry = 500 * time.Millisecond
	// maxSentinelBulk bounds a bulk string a sentinel sends.
	maxSentinelBulk = 64 << 10
)

// sentinelConn is the proxy's connection to one sentinel.
type sentinelConn struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
}

// dialSentinel connects to a sentinel (TLS as the uplink) and AUTHs with
// uplink.sentinel.user and pass when set.
func dialSentinel(ctx context.Context, cfg *config.Config, addr string) (*sentinelConn, error) {
	tc, err := cfg.UplinkTLSFor(addr)
	if err != nil {
		return nil, err
	}
	t := &target{addr: addr, tls: tc}
	conn, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	c := &sentinelConn{addr: addr, conn: conn, br: bufio.NewReaderSize(conn, ioBufSize)}
	if s := cfg.Uplink.Sentinel; s.Pass != "" {
		args := []string{"AUTH", s.Pass}
		if s.User != "" {
			args = []string{"AUTH", s.User, s.Pass}
		}
		if _, err := c.do(ctx, args...); err != nil {
			conn.Close()
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	return c, nil
}

func (c *sentinelConn) close() { c.conn.Close() }

func (c *sentinelConn) send(args ...string) error {
	_, err := c.conn.Write(resp.AppendCommand(nil, args...))
	return err
}

// do sends one command and reads its reply, within ctx's deadline.
func (c *sentinelConn) do(ctx context.Context, args ...string) (sval, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	}
	if err := c.send(args...); err != nil {
		return sval{}, err
	}
	return c.read()
}

// sval is a reply as a sentinel sends it: a string (simple, bulk or
// integer), an array, or a null.
type sval struct {
	s    string
	arr  []sval
	null bool
}

// strs returns an array's strings.
func (v sval) strs() []string {
	out := make([]string, len(v.arr))
	for i, e := range v.arr {
		out[i] = e.s
	}
	return out
}

var errSentinelReply = errors.New("sentinel: malformed reply")

// read reads one reply; an error reply is a replyError.
func (c *sentinelConn) read() (sval, error) { return readSval(c.br, 0) }

func readSval(br *bufio.Reader, depth int) (sval, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return sval{}, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return sval{}, errSentinelReply
	}
	typ, body := line[0], string(line[1:len(line)-2])
	switch typ {
	case '+', ':':
		return sval{s: body}, nil
	case '-':
		return sval{}, replyError(body)
	case '$', '*':
		n, err := strconv.Atoi(body)
		switch {
		case err != nil || n < -1:
			return sval{}, errSentinelReply
		case n == -1:
			return sval{null: true}, nil
		case typ == '$':
			if n > maxSentinelBulk {
				return sval{}, errSentinelReply
			}
			b := make([]byte, n+2)
			if _, err := io.ReadFull(br, b); err != nil {
				return sval{}, err
			}
			return sval{s: string(b[:n])}, nil
		}
		if depth > 2 || n > 1024 {
			return sval{}, errSentinelReply
		}
		v := sval{arr: make([]sval, 0, n)}
		for range n {
			e, err := readSval(br, depth+1)
			if err != nil {
				return sval{}, err
			}
			v.arr = append(v.arr, e)
		}
		return v, nil
	}
	return sval{}, errSentinelReply
}

// masterAddr asks for the master's address.
func (c *sentinelConn) masterAddr(ctx context.Context, name string) (string, error) {
	v, err := c.do(ctx, "SENTINEL", "get-master-addr-by-name", name)
	switch {
	case err != nil:
		return "", err
	case v.null:
		return "", fmt.Errorf("sentinel %s does not know master %q", c.addr, name)
	case len(v.arr) != 2:
		return "", errSentinelReply
	}
	return net.JoinHostPort(v.arr[0].s, v.arr[1].s), nil
}

// askSentinels asks each sentinel in turn for the master's address; the
// first that answers decides. It returns the address and that sentinel.
func (p *Proxy) askSentinels(ctx context.Context, cfg *config.Config) (addr, sentinel string, err error) {
	return eachSentinel(ctx, cfg, func(sa string) (string, error) { return askSentinel(ctx, cfg, sa) })
}

// eachSentinel asks the sentinels in turn; the first that answers
// decides. It returns the answer and that sentinel, or every error.
func eachSentinel[T any](ctx context.Context, cfg *config.Config, ask func(sa string) (T, error)) (T, string, error) {
	var errs []error
	for _, sa := range cfg.Uplink.Sentinel.Addrs {
		v, err := ask(sa)
		if err == nil {
			return v, sa, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", sa, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no sentinel configured"))
	}
	var zero T
	return zero, "", errors.Join(errs...)
}

func askSentinel(ctx context.Context, cfg *config.Config, sa string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, sentinelAskTimeout)
	defer cancel()
	c, err := dialSentinel(ctx, cfg, sa)
	if err != nil {
		return "", err
	}
	defer c.close()
	return c.masterAddr(ctx, cfg.Uplink.Sentinel.Master)
}

// masterReplicas asks for the master's replicas (SENTINEL REPLICAS): a
// list of flat field/value lists. It returns the addresses (ip:port) of
// those not flagged s_down, o_down or disconnected.
func (c *sentinelConn) masterReplicas(ctx context.Context, name string) ([]string, error) {
	v, err := c.do(ctx, "SENTINEL", "REPLICAS", name)
	switch {
	case err != nil:
		return nil, err
	case v.null:
		return nil, errSentinelReply
	}
	var addrs []string
	for _, e := range v.arr {
		f := e.strs()
		if len(f)%2 != 0 {
			return nil, errSentinelReply
		}
		m := make(map[string]string, len(f)/2)
		for i := 0; i < len(f); i += 2 {
			m[f[i]] = f[i+1]
		}
		if m["ip"] == "" || m["port"] == "" || downFlag(m["flags"]) {
			continue
		}
		addrs = append(addrs, net.JoinHostPort(m["ip"], m["port"]))
	}
	return addrs, nil
}

// downFlag reports whether a sentinel's flags ("slave,s_down,...") say
// the instance is down or disconnected.
func downFlag(flags string) bool {
	for _, f := range strings.Split(flags, ",") {
		switch f {
		case "s_down", "o_down", "disconnected":
			return true
		}
	}
	return false
}

// sentinelReplicas asks each sentinel in turn (each within d) for the
// master's replicas; the first that answers decides. It returns them and
// that sentinel.
func sentinelReplicas(ctx context.Context, cfg *config.Config, d time.Duration) (addrs []string, sentinel string, err error) {
	return eachSentinel(ctx, cfg, func(sa string) ([]string, error) { return askSentinelReplicas(ctx, cfg, sa, d) })
}

func askSentinelReplicas(ctx context.Context, cfg *config.Config, sa string, d time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, min(d, sentinelAskTimeout))
	defer cancel()
	c, err := dialSentinel(ctx, cfg, sa)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.masterReplicas(ctx, cfg.Uplink.Sentinel.Master)
}

// sentinelStart asks the sentinels for the master before the proxy
// serves, and makes it the uplink (in memory only). When none answers the
// uplink stays as configured (possibly none) and the watcher keeps trying.
func (p *Proxy) sentinelStart() {
	old := p.conf()
	cfg := old.cfg
	ctx, cancel := context.WithTimeout(context.Background(), max(min(cfg.ReadTimeLimit(), 3*time.Second), sentinelAskTimeout))
	defer cancel()
	addr, sentinel, err := p.askSentinels(ctx, cfg)
	if err != nil {
		p.log.Warn("no sentinel named the primary at start-up; trying again", "master", cfg.Uplink.Sentinel.Master, "err", err)
		return
	}
	p.log.Info("Sentinel names the primary", "uplink", addr, "master", cfg.Uplink.Sentinel.Master, "sentinel", sentinel)
	if addr == cfg.Uplink.Addr {
		return
	}
	c := cfg.Clone()
	c.Uplink.Addr = addr
	conf, err := buildRuntime(c, old.target.gen+1)
	if err != nil {
		p.log.Error("the primary Sentinel names cannot be used", "uplink", addr, "err", err)
		return
	}
	p.confp.Store(conf)
}

// sentinelWatch keeps a +switch-master subscription on one sentinel,
// moving to the next when it fails, until ctx ends (Shutdown).
func (p *Proxy) sentinelWatch(ctx context.Context) {
	defer p.wg.Done()
	failed := 0
	for i := 0; ctx.Err() == nil; i++ {
		cfg := p.conf().cfg
		s := cfg.Uplink.Sentinel
		if len(s.Addrs) == 0 {
			if sleep(ctx, time.Second) != nil {
				return
			}
			continue
		}
		sa := s.Addrs[i%len(s.Addrs)]
		err := p.watchSentinel(ctx, cfg, sa)
		p.follow.update(func(st *FollowStatus) { st.Sentinel = "" })
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("sentinel subscription ended; trying the next sentinel", "sentinel", sa, "err", err)
		if failed++; failed >= len(s.Addrs) {
			failed = 0
			if sleep(ctx, sentinelRetry) != nil {
				return
			}
		}
	}
}

// watchSentinel subscribes to +switch-master on sa and hands every
// switch of our master to followLoop; after subscribing it asks for the
// master once (a switch may have been missed meanwhile). It returns when
// the connection fails.
func (p *Proxy) watchSentinel(ctx context.Context, cfg *config.Config, sa string) error {
	dctx, cancel := context.WithTimeout(ctx, sentinelAskTimeout)
	c, err := dialSentinel(dctx, cfg, sa)
	if err != nil {
		cancel()
		return err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	master := cfg.Uplink.Sentinel.Master
	if _, err := c.do(dctx, "SUBSCRIBE", "+switch-master"); err != nil {
		cancel()
		return fmt.Errorf("SUBSCRIBE: %w", err)
	}
	cancel()
	if addr, err := askSentinel(ctx, cfg, sa); err == nil {
		p.announce(ctx, announced{addr: addr, why: "sentinel " + sa + " get-master-addr-by-name", at: time.Now(), ask: true})
	}
	p.follow.update(func(st *FollowStatus) { st.Sentinel = sa })
	p.log.Info("listening to +switch-master", "sentinel", sa, "master", master)
	pinged := false
	for {
		c.conn.SetDeadline(time.Now().Add(sentinelKeepalive))
		v, err := c.read()
		var ne net.Error
		switch {
		case err != nil && errors.As(err, &ne) && ne.Timeout() && !pinged:
			pinged = true
			c.conn.SetDeadline(time.Now().Add(sentinelKeepalive))
			if err := c.send("PING"); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		pinged = false
		m := v.strs()
		if len(m) != 3 || m[0] != "message" || m[1] != "+switch-master" {
			continue // the PING's answer
		}
		// "<name> <old-ip> <old-port> <new-ip> <new-port>"
		f := strings.Fields(m[2])
		if len(f) != 5 || f[0] != master {
			continue
		}
		to := net.JoinHostPort(f[3], f[4])
		p.log.Info("sentinel announces +switch-master", "sentinel", sa, "master", master,
			"from", net.JoinHostPort(f[1], f[2]), "to", to)
		p.announce(ctx, announced{addr: to, why: "sentinel " + sa + " +switch-master", at: time.Now()})
	}
}

// announce hands a master's address to followLoop.
func (p *Proxy) announce(ctx context.Context, a announced) {
	select {
	case p.follow.switched <- a:
	case <-ctx.Done():
	}
}
