package config

import (
	"strings"
	"testing"
)

const msgReadTimeLimitZero = "must be greater than 0: it bounds every command, and a pause waits for the commands in flight, so it must finish in bounded time"

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string
	}{
		{"valid", func(*Config) {}, nil},
		{"all addresses missing", func(c *Config) { c.Uplink.Addr, c.Listen.Addr, c.Admin.Addr = "", "", "" },
			[]string{"uplink.addr: required", "listen.addr: required", "admin.addr: required"}},
		{"no port", func(c *Config) { c.Uplink.Addr = "127.0.0.1" },
			[]string{`uplink.addr: "127.0.0.1" is not host:port (missing port in address)`}},
		{"too many colons", func(c *Config) { c.Listen.Addr = "::1:7010" },
			[]string{`listen.addr: "::1:7010" is not host:port (too many colons in address)`}},
		{"port not numeric", func(c *Config) { c.Admin.Addr = "localhost:http" },
			[]string{`admin.addr: port "http" must be a number from 1 to 65535`}},
		{"port 0", func(c *Config) { c.Listen.Addr = "127.0.0.1:0" },
			[]string{`listen.addr: port "0" must be a number from 1 to 65535`}},
		{"port too large", func(c *Config) { c.Listen.Addr = "127.0.0.1:65536" },
			[]string{`listen.addr: port "65536" must be a number from 1 to 65535`}},
		{"port with sign", func(c *Config) { c.Listen.Addr = "127.0.0.1:+80" },
			[]string{`listen.addr: port "+80" must be a number from 1 to 65535`}},
		{"empty port", func(c *Config) { c.Listen.Addr = "127.0.0.1:" },
			[]string{`listen.addr: port "" must be a number from 1 to 65535`}},
		{"valid address forms", func(c *Config) {
			c.Uplink.Addr, c.Listen.Addr, c.Admin.Addr = "redis.example.com:6379", ":7010", "[::1]:65535"
		}, nil},

		{"listen tls without files", func(c *Config) { c.Listen.TLS = true },
			[]string{"listen.certfile: required when listen.tls is true", "listen.keyfile: required when listen.tls is true"}},
		{"listen tls without keyfile", func(c *Config) { c.Listen.TLS, c.Listen.CertFile = true, "c.pem" },
			[]string{"listen.keyfile: required when listen.tls is true"}},
		{"listen tls without certfile", func(c *Config) { c.Listen.TLS, c.Listen.KeyFile = true, "k.pem" },
			[]string{"listen.certfile: required when listen.tls is true"}},
		{"listen tls files without tls", func(c *Config) {
			c.Listen.CertFile, c.Listen.KeyFile, c.Listen.ClientCAFile = "c.pem", "k.pem", "ca.pem"
		}, []string{
			"listen.certfile: set but listen.tls is false",
			"listen.keyfile: set but listen.tls is false",
			"listen.clientcafile: set but listen.tls is false",
		}},
		{"listen tls complete", func(c *Config) {
			c.Listen.TLS, c.Listen.CertFile, c.Listen.KeyFile, c.Listen.ClientCAFile = true, "c.pem", "k.pem", "ca.pem"
		}, nil},

		{"admin tls without files", func(c *Config) { c.Admin.TLS = true },
			[]string{"admin.certfile: required when admin.tls is true", "admin.keyfile: required when admin.tls is true"}},
		{"admin clientcafile without tls", func(c *Config) { c.Admin.ClientCAFile = "ca.pem" },
			[]string{"admin.clientcafile: set but admin.tls is false"}},
		{"admin user without pass", func(c *Config) { c.Admin.User = "ops" },
			[]string{"admin.pass: required when admin.user is set"}},
		{"admin pass without user", func(c *Config) { c.Admin.Pass = "x" },
			[]string{"admin.user: required when admin.pass is set"}},
		{"admin user and pass", func(c *Config) { c.Admin.User, c.Admin.Pass = "ops", "x" }, nil},

		{"uplink user without pass", func(c *Config) { c.Uplink.User = "proxy" },
			[]string{"uplink.pass: required when uplink.user is set"}},
		{"uplink pass without user", func(c *Config) { c.Uplink.Pass = "x" }, nil},
		{"uplink tls without ca", func(c *Config) { c.Uplink.TLS = true },
			[]string{"uplink.cacertfile: required when uplink.tls is true, unless uplink.skipverify is true"}},
		{"uplink tls skipverify", func(c *Config) { c.Uplink.TLS, c.Uplink.SkipVerify = true, true }, nil},
		{"uplink tls ca", func(c *Config) { c.Uplink.TLS, c.Uplink.CACertFile = true, "ca.pem" }, nil},
		{"uplink certfile without keyfile", func(c *Config) {
			c.Uplink.TLS, c.Uplink.CACertFile, c.Uplink.CertFile = true, "ca.pem", "c.pem"
		}, []string{"uplink.keyfile: required when uplink.certfile is set"}},
		{"uplink keyfile without certfile", func(c *Config) {
			c.Uplink.TLS, c.Uplink.CACertFile, c.Uplink.KeyFile = true, "ca.pem", "k.pem"
		}, []string{"uplink.certfile: required when uplink.keyfile is set"}},
		{"uplink tls settings without tls", func(c *Config) {
			c.Uplink.CACertFile, c.Uplink.SkipVerify, c.Uplink.CertFile, c.Uplink.KeyFile, c.Uplink.ServerName = "ca.pem", true, "c.pem", "k.pem", "redis"
		}, []string{
			"uplink.cacertfile: set but uplink.tls is false",
			"uplink.skipverify: set but uplink.tls is false",
			"uplink.certfile: set but uplink.tls is false",
			"uplink.keyfile: set but uplink.tls is false",
			"uplink.servername: set but uplink.tls is false",
		}},
		{"uplink tls with no host to verify", func(c *Config) {
			c.Uplink.Addr, c.Uplink.TLS, c.Uplink.CACertFile = ":6379", true, "ca.pem"
		}, []string{"uplink.servername: required when uplink.tls is true and uplink.addr has no host to verify"}},
		{"uplink tls no host, servername", func(c *Config) {
			c.Uplink.Addr, c.Uplink.TLS, c.Uplink.CACertFile, c.Uplink.ServerName = ":6379", true, "ca.pem", "redis"
		}, nil},

		{"listen_raw settings without addr", func(c *Config) {
			c.ListenRaw.TLS, c.ListenRaw.CertFile, c.ListenRaw.KeyFile = true, "c.pem", "k.pem"
		}, []string{
			"listen_raw.tls: set but listen_raw.addr is empty (listen_raw is off)",
			"listen_raw.certfile: set but listen_raw.addr is empty (listen_raw is off)",
			"listen_raw.keyfile: set but listen_raw.addr is empty (listen_raw is off)",
		}},
		{"listen_raw bad addr", func(c *Config) { c.ListenRaw.Addr = "7011" },
			[]string{`listen_raw.addr: "7011" is not host:port (missing port in address)`}},
		{"listen_raw tls without files", func(c *Config) { c.ListenRaw.Addr, c.ListenRaw.TLS = "127.0.0.1:7011", true },
			[]string{"listen_raw.certfile: required when listen_raw.tls is true", "listen_raw.keyfile: required when listen_raw.tls is true"}},
		{"listen_raw files without tls", func(c *Config) { c.ListenRaw.Addr, c.ListenRaw.CertFile = "127.0.0.1:7011", "c.pem" },
			[]string{"listen_raw.certfile: set but listen_raw.tls is false"}},
		{"listen_raw tls", func(c *Config) {
			c.ListenRaw.Addr, c.ListenRaw.TLS, c.ListenRaw.CertFile, c.ListenRaw.KeyFile = "127.0.0.1:7011", true, "c.pem", "k.pem"
		}, nil},

		{"read_time_limit_ms 0", func(c *Config) { c.ReadTimeLimitMS = 0 },
			[]string{"read_time_limit_ms: " + msgReadTimeLimitZero}},
		{"read_time_limit_ms negative", func(c *Config) { c.ReadTimeLimitMS = -1 },
			[]string{"read_time_limit_ms: " + msgReadTimeLimitZero}},
		{"read_time_limit_ms 24h", func(c *Config) { c.ReadTimeLimitMS = 86400000 }, nil},
		{"read_time_limit_ms over 24h", func(c *Config) { c.ReadTimeLimitMS = 86400001 },
			[]string{"read_time_limit_ms: must be at most 86400000 (24h)"}},
		{"read_time_limit_ms 1", func(c *Config) { c.ReadTimeLimitMS = 1 }, nil},
		{"max_clients negative", func(c *Config) { c.MaxClients = -1 },
			[]string{"max_clients: must be 0 (unlimited) or more"}},
		{"max_clients 0", func(c *Config) { c.MaxClients = 0 }, nil},
		{"client_idle_timeout_ms negative", func(c *Config) { c.ClientIdleTimeoutMS = -5 },
			[]string{"client_idle_timeout_ms: must be 0 (never) or more"}},
		{"client_idle_timeout_ms max", func(c *Config) { c.ClientIdleTimeoutMS = MaxClientIdleTimeoutMS }, nil},
		{"client_idle_timeout_ms overflows a duration", func(c *Config) { c.ClientIdleTimeoutMS = MaxClientIdleTimeoutMS + 1 },
			[]string{"client_idle_timeout_ms: must be at most 9223372036854"}},

		{"listen and admin same", func(c *Config) { c.Admin.Addr = c.Listen.Addr },
			[]string{"admin.addr: same address as listen.addr (127.0.0.1:7010); each listener needs its own"}},
		{"listen and listen_raw same", func(c *Config) { c.ListenRaw.Addr = "127.0.0.1:7010" },
			[]string{"listen_raw.addr: same address as listen.addr (127.0.0.1:7010); each listener needs its own"}},
		{"listen_raw and admin same, other spelling", func(c *Config) { c.ListenRaw.Addr, c.Admin.Addr = "[::1]:7011", "[0:0:0:0:0:0:0:1]:07011" },
			[]string{"admin.addr: same address as listen_raw.addr ([::1]:7011); each listener needs its own"}},
		{"wildcard overlaps", func(c *Config) { c.Listen.Addr, c.Admin.Addr = ":7010", "127.0.0.1:7010" },
			[]string{"admin.addr: 127.0.0.1:7010 overlaps listen.addr (:7010) on port 7010; each listener needs its own address"}},
		{"wildcard 0.0.0.0 overlaps", func(c *Config) { c.Admin.Addr = "0.0.0.0:7010" },
			[]string{"admin.addr: 0.0.0.0:7010 overlaps listen.addr (127.0.0.1:7010) on port 7010; each listener needs its own address"}},
		{"same port, different hosts", func(c *Config) { c.Listen.Addr, c.Admin.Addr = "127.0.0.1:7010", "127.0.0.2:7010" }, nil},
		{"all three the same", func(c *Config) { c.ListenRaw.Addr, c.Admin.Addr = c.Listen.Addr, c.Listen.Addr },
			[]string{
				"listen_raw.addr: same address as listen.addr (127.0.0.1:7010); each listener needs its own",
				"admin.addr: same address as listen.addr (127.0.0.1:7010); each listener needs its own",
				"admin.addr: same address as listen_raw.addr (127.0.0.1:7010); each listener needs its own",
			}},
		{"uplink is the proxy", func(c *Config) { c.Uplink.Addr = "127.0.0.1:7010" },
			[]string{"uplink.addr: same address as listen.addr (127.0.0.1:7010): the proxy would connect to itself"}},
		{"uplink is the raw relay", func(c *Config) { c.ListenRaw.Addr, c.Uplink.Addr = "LocalHost:7011", "localhost:7011" },
			[]string{"uplink.addr: same address as listen_raw.addr (LocalHost:7011): the proxy would connect to itself"}},

		{"everything at once", func(c *Config) {
			*c = Config{Uplink: Uplink{User: "u", TLS: true}, ReadTimeLimitMS: 0, MaxClients: -1, ClientIdleTimeoutMS: -1}
		}, []string{
			"uplink.addr: required",
			"uplink.pass: required when uplink.user is set",
			"uplink.cacertfile: required when uplink.tls is true, unless uplink.skipverify is true",
			"listen.addr: required",
			"admin.addr: required",
			"read_time_limit_ms: " + msgReadTimeLimitZero,
			"max_clients: must be 0 (unlimited) or more",
			"client_idle_timeout_ms: must be 0 (never) or more",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(c)
			before := *c
			assertLines(t, "Validate", lines(c.Validate()), tt.want)
			if *c != before {
				t.Errorf("Validate modified the config")
			}
			// Parse reports the same, prefixed with the name.
			var want []string
			for _, w := range tt.want {
				want = append(want, "config.json: "+w)
			}
			_, err := Parse(strings.NewReader(marshal(t, c)), "config.json")
			assertLines(t, "Parse", lines(err), want)
		})
	}
}

func TestValidateKeyErrors(t *testing.T) {
	c := validConfig()
	c.Listen.TLS = true
	var keys []string
	for _, ke := range keyErrors(t, c.Validate()) {
		keys = append(keys, ke.Key)
	}
	assertLines(t, "keys", keys, []string{"listen.certfile", "listen.keyfile"})
}

func TestDurations(t *testing.T) {
	c := validConfig()
	c.ReadTimeLimitMS, c.ClientIdleTimeoutMS = 1500, 90000
	if have, want := c.ReadTimeLimit().String(), "1.5s"; have != want {
		t.Errorf("ReadTimeLimit: have %s, want %s", have, want)
	}
	if have, want := c.ClientIdleTimeout().String(), "1m30s"; have != want {
		t.Errorf("ClientIdleTimeout: have %s, want %s", have, want)
	}
	c.ClientIdleTimeoutMS = MaxClientIdleTimeoutMS
	if c.ClientIdleTimeout() <= 0 {
		t.Errorf("ClientIdleTimeout at the maximum overflows: %v", c.ClientIdleTimeout())
	}
}
