// Package config parses, validates and sanitizes redis-proxy's JSON
// configuration, builds the tls.Configs for every
// listener and the uplink, and says what a reload may change.
//
// It imports nothing of the project's own.
package config

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

// Config is the whole configuration file. Field names follow the JSON keys.
//
// A Config built as a literal has the zero value, not the default, in every
// key it does not set (false for replicas.discover, 0 for the time limits):
// start from Default() to get the defaults.
type Config struct {
	Uplink              Uplink    `json:"uplink"`
	Listen              Listen    `json:"listen"`
	ListenRO            ListenRO  `json:"listen_ro"`
	Replicas            Replicas  `json:"replicas"`
	ListenRaw           ListenRaw `json:"listen_raw"`
	Admin               Admin     `json:"admin"`
	Switch              Switch    `json:"switch"`
	LogMessages         bool      `json:"log_messages"`
	ReadTimeLimitMS     int       `json:"read_time_limit_ms"`
	MaxClients          int       `json:"max_clients"`
	ClientIdleTimeoutMS int       `json:"client_idle_timeout_ms"`
}

// Uplink is the upstream Redis.
type Uplink struct {
	Addr       string `json:"addr"`
	User       string `json:"user"`
	Pass       string `json:"pass"`
	TLS        bool   `json:"tls"`
	CACertFile string `json:"cacertfile"`
	SkipVerify bool   `json:"skipverify"`
	CertFile   string `json:"certfile"`
	KeyFile    string `json:"keyfile"`
	ServerName string `json:"servername"`

	// CheckIntervalMS is the period of the health check (PING and INFO
	// replication) on the proxy's own uplink connection; 0 = off.
	CheckIntervalMS int `json:"check_interval_ms"`
	// Candidates are the other servers (host:port) that may become the
	// primary; the proxy follows one that does. It may list uplink.addr too.
	Candidates []string `json:"candidates"`
	// Sentinel, when Enabled, names the primary instead of uplink.addr.
	Sentinel Sentinel `json:"sentinel"`
}

// CheckInterval is check_interval_ms as a duration; 0 means no health check.
func (u Uplink) CheckInterval() time.Duration {
	return time.Duration(u.CheckIntervalMS) * time.Millisecond
}

// Sentinel is the Redis Sentinel deployment that names the primary.
type Sentinel struct {
	Addrs  []string `json:"addrs"`  // the sentinels, host:port
	Master string   `json:"master"` // the master name the sentinels monitor
	User   string   `json:"user"`   // Sentinel's own ACL user, optional
	Pass   string   `json:"pass"`   // Sentinel's own password, optional
}

// Enabled reports whether Sentinel mode is on: any address or a master name
// is set. An empty sentinel object, or none, is off.
func (s Sentinel) Enabled() bool {
	return len(s.Addrs) > 0 || s.Master != ""
}

// Listen is the managed RESP listener clients connect to.
type Listen struct {
	Addr         string `json:"addr"`
	Pass         string `json:"pass"`
	TLS          bool   `json:"tls"`
	CertFile     string `json:"certfile"`
	KeyFile      string `json:"keyfile"`
	ClientCAFile string `json:"clientcafile"`
	// ForwardAuth sends clients' AUTH and HELLO AUTH to Redis (ACL users)
	// instead of checking them against Pass, which must then be empty.
	ForwardAuth bool `json:"forward_auth"`
}

// ListenRO is the optional managed listener for reads, served by healthy
// replicas; off while Addr is empty.
type ListenRO struct {
	Addr         string `json:"addr"`
	TLS          bool   `json:"tls"`
	CertFile     string `json:"certfile"`
	KeyFile      string `json:"keyfile"`
	ClientCAFile string `json:"clientcafile"`
	Pass         string `json:"pass"`
}

// Replicas are the replicas listen_ro serves reads from.
type Replicas struct {
	Addrs           []string `json:"addrs"`            // fixed list, host:port
	Discover        bool     `json:"discover"`         // also those the primary (or Sentinel) lists; default true
	MaxLagBytes     int      `json:"max_lag_bytes"`    // beyond it a replica is not used; default 1048576
	FallbackPrimary bool     `json:"fallback_primary"` // no healthy replica: read from the primary; default true
}

// ListenRaw is the optional unmanaged full-duplex relay listener.
type ListenRaw struct {
	Addr     string `json:"addr"`
	TLS      bool   `json:"tls"`
	CertFile string `json:"certfile"`
	KeyFile  string `json:"keyfile"`
}

// Admin is the HTTP(S) admin API and status page.
type Admin struct {
	Addr         string `json:"addr"`
	TLS          bool   `json:"tls"`
	CertFile     string `json:"certfile"`
	KeyFile      string `json:"keyfile"`
	ClientCAFile string `json:"clientcafile"`
	User         string `json:"user"`
	Pass         string `json:"pass"`
}

// Switch is how cmd=switch moves the proxy, and its peers, to a new primary.
type Switch struct {
	CatchupTimeoutMS int      `json:"catchup_timeout_ms"` // the target catching up, before any pause
	GateTimeoutMS    int      `json:"gate_timeout_ms"`    // the final offset equality, inside the pause
	Fence            bool     `json:"fence"`              // make the old primary a replica of the new one; default true
	Peers            []string `json:"peers"`              // admin base URLs of the other proxies, http(s)://host:port
}

// CatchupTimeout is catchup_timeout_ms as a duration.
func (s Switch) CatchupTimeout() time.Duration {
	return time.Duration(s.CatchupTimeoutMS) * time.Millisecond
}

// GateTimeout is gate_timeout_ms as a duration.
func (s Switch) GateTimeout() time.Duration {
	return time.Duration(s.GateTimeoutMS) * time.Millisecond
}

// KeyError is one problem with one key of the configuration.
type KeyError struct {
	Key string // the key path, e.g. "listen.certfile"; "" for the whole document
	Msg string // what is wrong, e.g. "required when listen.tls is true"
	Err error  // the underlying error, if any (e.g. fs.ErrNotExist for a TLS file)
}

func (e *KeyError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// Unwrap returns the underlying error, if any.
func (e *KeyError) Unwrap() error { return e.Err }

// Defaults for the keys that have one other than the zero value. They apply
// only to keys absent from the file: an explicit 0 stays 0.
const (
	DefaultReadTimeLimitMS  = 5000
	DefaultMaxClients       = 10000
	DefaultCheckIntervalMS  = 1000
	DefaultMaxLagBytes      = 1 << 20
	DefaultCatchupTimeoutMS = 60000
	DefaultGateTimeoutMS    = 1000
	DefaultDiscover         = true // replicas.discover
	DefaultFallbackPrimary  = true // replicas.fallback_primary
	DefaultFence            = true // switch.fence
)

// Default returns a Config holding every default and no addresses. Its
// lists are empty, not nil.
func Default() *Config {
	return &Config{
		Uplink: Uplink{
			CheckIntervalMS: DefaultCheckIntervalMS,
			Candidates:      []string{},
			Sentinel:        Sentinel{Addrs: []string{}},
		},
		Replicas: Replicas{
			Addrs:           []string{},
			Discover:        DefaultDiscover,
			MaxLagBytes:     DefaultMaxLagBytes,
			FallbackPrimary: DefaultFallbackPrimary,
		},
		Switch: Switch{
			CatchupTimeoutMS: DefaultCatchupTimeoutMS,
			GateTimeoutMS:    DefaultGateTimeoutMS,
			Fence:            DefaultFence,
			Peers:            []string{},
		},
		ReadTimeLimitMS: DefaultReadTimeLimitMS,
		MaxClients:      DefaultMaxClients,
	}
}

// ReadTimeLimit is read_time_limit_ms as a duration: the hard limit on one
// forwarded command.
func (c *Config) ReadTimeLimit() time.Duration {
	return time.Duration(c.ReadTimeLimitMS) * time.Millisecond
}

// ClientIdleTimeout is client_idle_timeout_ms as a duration; 0 means never.
func (c *Config) ClientIdleTimeout() time.Duration {
	return time.Duration(c.ClientIdleTimeoutMS) * time.Millisecond
}

// MarshalJSON writes a nil list as [], as the strict parser wants it: a
// Config built as a literal marshals to a file Parse reads back.
func (u Uplink) MarshalJSON() ([]byte, error) {
	type plain Uplink // without this method
	u.Candidates = nonNil(u.Candidates)
	return json.Marshal(plain(u))
}

// MarshalJSON writes a nil list as [], see Uplink.MarshalJSON.
func (s Sentinel) MarshalJSON() ([]byte, error) {
	type plain Sentinel
	s.Addrs = nonNil(s.Addrs)
	return json.Marshal(plain(s))
}

// MarshalJSON writes a nil list as [], see Uplink.MarshalJSON.
func (r Replicas) MarshalJSON() ([]byte, error) {
	type plain Replicas
	r.Addrs = nonNil(r.Addrs)
	return json.Marshal(plain(r))
}

// MarshalJSON writes a nil list as [], see Uplink.MarshalJSON.
func (s Switch) MarshalJSON() ([]byte, error) {
	type plain Switch
	s.Peers = nonNil(s.Peers)
	return json.Marshal(plain(s))
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// Clone returns a deep copy of c (nil for nil). Its lists are never nil.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	cp := *c
	for _, l := range cp.lists() {
		*l = append([]string{}, *l...)
	}
	return &cp
}

// lists points at every list of c.
func (c *Config) lists() []*[]string {
	return []*[]string{&c.Uplink.Candidates, &c.Uplink.Sentinel.Addrs, &c.Replicas.Addrs, &c.Switch.Peers}
}

// Equal reports whether c and o hold the same configuration. Two nil
// configs are equal, and so are a nil list and an empty one.
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	cv, ov := leaves(c), leaves(o)
	for key, v := range cv {
		if !sameValue(v, ov[key]) {
			return false
		}
	}
	return true
}

// Redacted is what Sanitized shows in place of a password.
const Redacted = "***"

// Sanitized returns a deep copy of c with every non-empty password
// (uplink.pass, uplink.sentinel.pass, listen.pass, listen_ro.pass,
// admin.pass, and the password of a switch.peers URL) replaced by "***": the
// only form of the config that may be shown, logged or served. An empty
// password stays empty, so the copy still tells whether one is set.
func (c *Config) Sanitized() *Config {
	s := c.Clone()
	if s == nil {
		return nil
	}
	for _, p := range []*string{&s.Uplink.Pass, &s.Uplink.Sentinel.Pass, &s.Listen.Pass, &s.ListenRO.Pass, &s.Admin.Pass} {
		*p = redact(*p)
	}
	for i, peer := range s.Switch.Peers {
		s.Switch.Peers[i] = redactURL(peer)
	}
	return s
}

func redact(pass string) string {
	if pass == "" {
		return ""
	}
	return Redacted
}

// redactURL replaces the password of a URL's user information with "***".
// A string that does not parse as a URL but has an '@' in it is hidden
// whole: where its password would end cannot be told.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return Redacted
		}
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	// url.UserPassword would escape the asterisks: put the user
	// information back by hand.
	user := url.User(u.User.Username()).String()
	u.User = nil
	rest := strings.TrimPrefix(u.String(), u.Scheme+"://")
	return u.Scheme + "://" + user + ":" + Redacted + "@" + rest
}
