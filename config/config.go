// Package config parses, validates and sanitizes redis-proxy's JSON
// configuration (CONTRACT.md section 2), builds the tls.Configs for every
// listener and the uplink, and says what a reload may change.
//
// It imports nothing of the project's own.
package config

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
