// Package config parses, validates and sanitizes redis-proxy's JSON
// configuration (CONTRACT.md section 2), builds the tls.Configs for every
// listener and the uplink, and says what a reload may change.
//
// It imports nothing of the project's own.
package config

import "time"

// Config is the whole configuration file. Field names follow the JSON keys.
type Config struct {
	Uplink              Uplink    `json:"uplink"`
	Listen              Listen    `json:"listen"`
	ListenRaw           ListenRaw `json:"listen_raw"`
	Admin               Admin     `json:"admin"`
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
}

// Listen is the managed RESP listener clients connect to.
type Listen struct {
	Addr         string `json:"addr"`
	Pass         string `json:"pass"`
	TLS          bool   `json:"tls"`
	CertFile     string `json:"certfile"`
	KeyFile      string `json:"keyfile"`
	ClientCAFile string `json:"clientcafile"`
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
	DefaultReadTimeLimitMS = 5000
	DefaultMaxClients      = 10000
)

// Default returns a Config holding every default and no addresses.
func Default() *Config {
	return &Config{
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

// Clone returns a deep copy of c (nil for nil).
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	cp := *c // every field is a value: the copy shares nothing
	return &cp
}

// Equal reports whether c and o hold the same configuration. Two nil
// configs are equal.
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	return *c == *o
}

// Redacted is what Sanitized shows in place of a password.
const Redacted = "***"

// Sanitized returns a deep copy of c with every non-empty password
// (uplink.pass, listen.pass, admin.pass) replaced by "***": the only form of
// the config that may be shown, logged or served. An empty password stays
// empty, so the copy still tells whether one is set.
func (c *Config) Sanitized() *Config {
	s := c.Clone()
	if s == nil {
		return nil
	}
	for _, p := range []*string{&s.Uplink.Pass, &s.Listen.Pass, &s.Admin.Pass} {
		*p = redact(*p)
	}
	return s
}

func redact(pass string) string {
	if pass == "" {
		return ""
	}
	return Redacted
}
