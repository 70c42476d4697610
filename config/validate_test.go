package config

import (
	"strings"
	"testing"
)

const msgReadTimeLimitZero = "must be greater than 0: it bounds every command, and a pause waits for the commands in flight, so it must finish in bounded time"

// validateTest is a change to validConfig and the problems it makes.
type validateTest struct {
	name   string
	modify func(*Config)
	want   []string
}

func TestValidate(t *testing.T) {
	tests := []validateTest{
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
	tests = append(tests, followTests...)
	tests = append(tests, listenTests...)
	tests = append(tests, switchTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(c)
			before := c.Clone()
			assertLines(t, "Validate", lines(c.Validate()), tt.want)
			if !c.Equal(before) {
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

const (
	msgCandidatesNoCheck = "uplink.candidates: set but uplink.check_interval_ms is 0 (off): the health check is what finds that the primary failed"
	msgSentinelOff       = "set but uplink.sentinel is off (no addrs, no master)"
	msgListenROOff       = "set but listen_ro.addr is empty (listen_ro is off)"
	msgPeerWant          = "want an admin base URL such as http://10.0.0.2:7012"
)

// sentinel turns Sentinel mode on with two sentinels.
func sentinel(c *Config) {
	c.Uplink.Sentinel.Addrs, c.Uplink.Sentinel.Master = []string{"10.0.0.8:26379", "10.0.0.9:26379"}, "mymaster"
}

// followTests: the health check, uplink.candidates and uplink.sentinel.
var followTests = []validateTest{
	{"check interval off", func(c *Config) { c.Uplink.CheckIntervalMS = 0 }, nil},
	{"check interval 1ms", func(c *Config) { c.Uplink.CheckIntervalMS = 1 }, nil},
	{"check interval negative", func(c *Config) { c.Uplink.CheckIntervalMS = -1 },
		[]string{"uplink.check_interval_ms: must be 0 (off) or more"}},
	{"check interval overflows a duration", func(c *Config) { c.Uplink.CheckIntervalMS = MaxClientIdleTimeoutMS + 1 },
		[]string{"uplink.check_interval_ms: must be at most 9223372036854"}},

	{"candidates", func(c *Config) {
		c.Uplink.Candidates = []string{"10.0.0.2:6379", "redis-b.internal:6379", "[::1]:6380"}
	}, nil},
	{"candidates list uplink.addr too", func(c *Config) { c.Uplink.Candidates = []string{"10.0.0.2:6379", "127.0.0.1:6379"} }, nil},
	{"candidate not host:port", func(c *Config) { c.Uplink.Candidates = []string{"10.0.0.2"} },
		[]string{`uplink.candidates[0]: "10.0.0.2" is not host:port (missing port in address)`}},
	{"candidate empty", func(c *Config) { c.Uplink.Candidates = []string{"10.0.0.2:6379", ""} },
		[]string{"uplink.candidates[1]: empty, want host:port"}},
	{"candidate port 0", func(c *Config) { c.Uplink.Candidates = []string{"10.0.0.2:0"} },
		[]string{`uplink.candidates[0]: port "0" must be a number from 1 to 65535`}},
	{"candidate twice", func(c *Config) { c.Uplink.Candidates = []string{"10.0.0.2:6379", "10.0.0.3:6379", "10.0.0.2:06379"} },
		[]string{"uplink.candidates[2]: same address as uplink.candidates[0] (10.0.0.2:6379); list each server once"}},
	{"candidate twice, other spelling", func(c *Config) { c.Uplink.Candidates = []string{"[::1]:6380", "[0:0::1]:6380", "Redis:1", "redis:1"} },
		[]string{
			"uplink.candidates[1]: same address as uplink.candidates[0] ([::1]:6380); list each server once",
			"uplink.candidates[3]: same address as uplink.candidates[2] (Redis:1); list each server once",
		}},
	{"candidates without health check", func(c *Config) { c.Uplink.CheckIntervalMS, c.Uplink.Candidates = 0, []string{"10.0.0.2:6379"} },
		[]string{msgCandidatesNoCheck}},
	{"candidate is the proxy", func(c *Config) { c.Uplink.Candidates = []string{"127.0.0.1:7010"} },
		[]string{"uplink.candidates[0]: same address as listen.addr (127.0.0.1:7010): the proxy would connect to itself"}},
	{"candidate without host, tls", func(c *Config) {
		c.Uplink.TLS, c.Uplink.CACertFile, c.Uplink.Candidates = true, "ca.pem", []string{"10.0.0.2:6379", ":6380"}
	}, []string{"uplink.servername: required when uplink.tls is true and uplink.candidates[1] has no host to verify"}},
	{"candidate without host, tls, servername", func(c *Config) {
		c.Uplink.TLS, c.Uplink.CACertFile, c.Uplink.ServerName, c.Uplink.Candidates = true, "ca.pem", "redis", []string{":6380"}
	}, nil},

	{"sentinel without uplink.addr", func(c *Config) { sentinel(c); c.Uplink.Addr = "" }, nil},
	{"sentinel with uplink.addr", sentinel, nil},
	{"sentinel, uplink.addr still checked", func(c *Config) { sentinel(c); c.Uplink.Addr = "redis" },
		[]string{`uplink.addr: "redis" is not host:port (missing port in address)`}},
	{"sentinel auth", func(c *Config) { sentinel(c); c.Uplink.Sentinel.User, c.Uplink.Sentinel.Pass = "s", "p" }, nil},
	{"sentinel pass alone", func(c *Config) { sentinel(c); c.Uplink.Sentinel.Pass = "p" }, nil},
	{"sentinel user without pass", func(c *Config) { sentinel(c); c.Uplink.Sentinel.User = "s" },
		[]string{"uplink.sentinel.pass: required when uplink.sentinel.user is set"}},
	{"sentinel master without addrs", func(c *Config) { c.Uplink.Addr, c.Uplink.Sentinel.Master = "", "mymaster" },
		[]string{"uplink.sentinel.addrs: required when uplink.sentinel.master is set"}},
	{"sentinel addrs without master", func(c *Config) { c.Uplink.Addr, c.Uplink.Sentinel.Addrs = "", []string{"10.0.0.8:26379"} },
		[]string{"uplink.sentinel.master: required when uplink.sentinel.addrs is set"}},
	{"sentinel addr bad, twice, empty", func(c *Config) {
		sentinel(c)
		c.Uplink.Sentinel.Addrs = []string{"10.0.0.8", "10.0.0.9:26379", "", "10.0.0.9:26379"}
	}, []string{
		`uplink.sentinel.addrs[0]: "10.0.0.8" is not host:port (missing port in address)`,
		"uplink.sentinel.addrs[2]: empty, want host:port",
		"uplink.sentinel.addrs[3]: same address as uplink.sentinel.addrs[1] (10.0.0.9:26379); list each server once",
	}},
	{"sentinel is the proxy", func(c *Config) { sentinel(c); c.Uplink.Sentinel.Addrs[1] = "127.0.0.1:7010" },
		[]string{"uplink.sentinel.addrs[1]: same address as listen.addr (127.0.0.1:7010): the proxy would connect to itself"}},
	{"empty sentinel is off", func(c *Config) { c.Uplink.Sentinel = Sentinel{Addrs: []string{}} }, nil},
	{"empty sentinel is off: uplink.addr required", func(c *Config) { c.Uplink.Addr = "" },
		[]string{"uplink.addr: required"}},
	{"sentinel auth while off", func(c *Config) { c.Uplink.Sentinel.User, c.Uplink.Sentinel.Pass = "s", "p" },
		[]string{"uplink.sentinel.user: " + msgSentinelOff, "uplink.sentinel.pass: " + msgSentinelOff}},
	{"sentinel and candidates", func(c *Config) { sentinel(c); c.Uplink.Candidates = []string{"10.0.0.2:6379"} },
		[]string{"uplink.candidates: excludes uplink.sentinel: Sentinel names the primary; set one or the other"}},
	{"sentinel without health check", func(c *Config) { sentinel(c); c.Uplink.CheckIntervalMS = 0 }, nil},
}

// listenTests: listen.forward_auth, listen_ro and replicas.
var listenTests = []validateTest{
	{"forward_auth", func(c *Config) { c.Listen.ForwardAuth = true }, nil},
	{"forward_auth and listen.pass", func(c *Config) { c.Listen.ForwardAuth, c.Listen.Pass = true, "x" },
		[]string{"listen.forward_auth: excludes listen.pass: with forward_auth Redis checks the clients' AUTH; set one or the other"}},

	{"listen_ro", func(c *Config) { c.ListenRO.Addr = "127.0.0.1:7020" }, nil},
	{"listen_ro with pass and tls", func(c *Config) {
		c.ListenRO = ListenRO{Addr: ":7020", TLS: true, CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem", Pass: "p"}
		c.Listen.Addr, c.Admin.Addr = "127.0.0.1:7010", "127.0.0.1:7012"
	}, nil},
	{"listen_ro settings while off", func(c *Config) {
		c.ListenRO = ListenRO{TLS: true, CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem", Pass: "p"}
	}, []string{
		"listen_ro.tls: " + msgListenROOff,
		"listen_ro.certfile: " + msgListenROOff,
		"listen_ro.keyfile: " + msgListenROOff,
		"listen_ro.clientcafile: " + msgListenROOff,
		"listen_ro.pass: " + msgListenROOff,
	}},
	{"listen_ro bad addr", func(c *Config) { c.ListenRO.Addr = "127.0.0.1:x" },
		[]string{`listen_ro.addr: port "x" must be a number from 1 to 65535`}},
	{"listen_ro tls without files", func(c *Config) { c.ListenRO.Addr, c.ListenRO.TLS = "127.0.0.1:7020", true },
		[]string{"listen_ro.certfile: required when listen_ro.tls is true", "listen_ro.keyfile: required when listen_ro.tls is true"}},
	{"listen_ro files without tls", func(c *Config) {
		c.ListenRO = ListenRO{Addr: "127.0.0.1:7020", CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"}
	}, []string{
		"listen_ro.certfile: set but listen_ro.tls is false",
		"listen_ro.keyfile: set but listen_ro.tls is false",
		"listen_ro.clientcafile: set but listen_ro.tls is false",
	}},
	{"listen_ro same as listen", func(c *Config) { c.ListenRO.Addr = "127.0.0.1:7010" },
		[]string{"listen_ro.addr: same address as listen.addr (127.0.0.1:7010); each listener needs its own"}},
	{"listen_ro same as listen_raw", func(c *Config) { c.ListenRO.Addr, c.ListenRaw.Addr = "127.0.0.1:7020", "127.0.0.1:7020" },
		[]string{"listen_raw.addr: same address as listen_ro.addr (127.0.0.1:7020); each listener needs its own"}},
	{"listen_ro same as admin", func(c *Config) { c.ListenRO.Addr = "127.0.0.1:7012" },
		[]string{"admin.addr: same address as listen_ro.addr (127.0.0.1:7012); each listener needs its own"}},
	{"listen_ro wildcard overlaps listen", func(c *Config) { c.ListenRO.Addr = "[::]:7010" },
		[]string{"listen_ro.addr: [::]:7010 overlaps listen.addr (127.0.0.1:7010) on port 7010; each listener needs its own address"}},
	{"uplink is listen_ro", func(c *Config) { c.ListenRO.Addr, c.Uplink.Addr = "127.0.0.1:7020", "127.0.0.1:7020" },
		[]string{"uplink.addr: same address as listen_ro.addr (127.0.0.1:7020): the proxy would connect to itself"}},
	{"listen_ro without health check", func(c *Config) { c.ListenRO.Addr, c.Uplink.CheckIntervalMS = "127.0.0.1:7020", 0 },
		[]string{"listen_ro.addr: set but uplink.check_interval_ms is 0 (off): a replica serves reads only while its health check passes"}},
	{"listen_ro with no replica to read from", func(c *Config) { c.ListenRO.Addr, c.Replicas.Discover = "127.0.0.1:7020", false },
		[]string{"replicas.addrs: required when listen_ro.addr is set and replicas.discover is false: listen_ro would have no replica to read from"}},
	{"listen_ro with fixed replicas only", func(c *Config) {
		c.ListenRO.Addr, c.Replicas.Discover, c.Replicas.Addrs = "127.0.0.1:7020", false, []string{"10.0.0.3:6379"}
	}, nil},

	{"replicas", func(c *Config) {
		c.Replicas = Replicas{Addrs: []string{"10.0.0.3:6379", "10.0.0.4:6379"}, MaxLagBytes: 0}
	}, nil},
	{"replicas list uplink.addr", func(c *Config) { c.Replicas.Addrs = []string{"127.0.0.1:6379"} }, nil},
	{"replicas bad, empty, twice", func(c *Config) { c.Replicas.Addrs = []string{"10.0.0.3", "", "h:1", "H:1"} }, []string{
		`replicas.addrs[0]: "10.0.0.3" is not host:port (missing port in address)`,
		"replicas.addrs[1]: empty, want host:port",
		"replicas.addrs[3]: same address as replicas.addrs[2] (h:1); list each server once",
	}},
	{"replica is the proxy", func(c *Config) { c.ListenRO.Addr, c.Replicas.Addrs = "127.0.0.1:7020", []string{"127.0.0.1:7020"} },
		[]string{"replicas.addrs[0]: same address as listen_ro.addr (127.0.0.1:7020): the proxy would connect to itself"}},
	{"replica without host, tls", func(c *Config) {
		c.Uplink.TLS, c.Uplink.SkipVerify, c.Replicas.Addrs = true, false, []string{":6381"}
		c.Uplink.CACertFile = "ca.pem"
	}, []string{"uplink.servername: required when uplink.tls is true and replicas.addrs[0] has no host to verify"}},
	{"max_lag_bytes negative", func(c *Config) { c.Replicas.MaxLagBytes = -1 },
		[]string{"replicas.max_lag_bytes: must be 0 or more"}},
	{"replicas while listen_ro is off", func(c *Config) {
		c.Replicas = Replicas{Addrs: []string{"10.0.0.3:6379"}, MaxLagBytes: 7}
	}, nil},
}

// switchTests: the switch section.
var switchTests = []validateTest{
	{"switch timeouts 1ms", func(c *Config) { c.Switch.CatchupTimeoutMS, c.Switch.GateTimeoutMS = 1, 1 }, nil},
	{"switch timeouts 24h", func(c *Config) { c.Switch.CatchupTimeoutMS, c.Switch.GateTimeoutMS = 86400000, 86400000 }, nil},
	{"switch timeouts 0: check once", func(c *Config) { c.Switch.CatchupTimeoutMS, c.Switch.GateTimeoutMS = 0, 0 }, nil},
	{"switch timeouts negative", func(c *Config) { c.Switch.CatchupTimeoutMS, c.Switch.GateTimeoutMS = -1, -5 },
		[]string{
			"switch.catchup_timeout_ms: must be 0 (check once, without waiting) or more",
			"switch.gate_timeout_ms: must be 0 (check once, without waiting) or more",
		}},
	{"switch timeouts over 24h", func(c *Config) { c.Switch.CatchupTimeoutMS, c.Switch.GateTimeoutMS = 86400001, 86400001 },
		[]string{"switch.catchup_timeout_ms: must be at most 86400000 (24h)", "switch.gate_timeout_ms: must be at most 86400000 (24h)"}},
	{"fence off", func(c *Config) { c.Switch.Fence = false }, nil},

	{"peers", func(c *Config) {
		c.Switch.Peers = []string{"http://10.0.0.5:7012", "https://proxy-b.internal:7012/", "http://[::1]:7013",
			"https://ops:pw@10.0.0.6:7012", "HTTP://10.0.0.7", "https://10.0.0.7", "http://127.0.0.1:7099"}
	}, nil},
	{"peer empty", func(c *Config) { c.Switch.Peers = []string{""} },
		[]string{"switch.peers[0]: empty, " + msgPeerWant}},
	{"peer without scheme", func(c *Config) { c.Switch.Peers = []string{"10.0.0.5:7012"} },
		[]string{`switch.peers[0]: "10.0.0.5:7012": must start with http:// or https://; ` + msgPeerWant}},
	{"peer other scheme", func(c *Config) { c.Switch.Peers = []string{"redis://10.0.0.5:7012", "http:10.0.0.5"} },
		[]string{
			`switch.peers[0]: "redis://10.0.0.5:7012": must start with http:// or https://; ` + msgPeerWant,
			`switch.peers[1]: "http:10.0.0.5": must start with http:// or https://; ` + msgPeerWant,
		}},
	{"peer without host", func(c *Config) { c.Switch.Peers = []string{"http://:7012", "https:///"} },
		[]string{
			`switch.peers[0]: "http://:7012" has no host; ` + msgPeerWant,
			`switch.peers[1]: "https:///" has no host; ` + msgPeerWant,
		}},
	{"peer with a path", func(c *Config) { c.Switch.Peers = []string{"http://10.0.0.5:7012/cmd/"} },
		[]string{`switch.peers[0]: "http://10.0.0.5:7012/cmd/" has a path; ` + msgPeerWant + " (the proxy adds /cmd/)"}},
	{"peer with a query", func(c *Config) { c.Switch.Peers = []string{"http://10.0.0.5:7012/?cmd=pause", "http://10.0.0.6:7012?"} },
		[]string{
			`switch.peers[0]: "http://10.0.0.5:7012/?cmd=pause" has a query; ` + msgPeerWant,
			`switch.peers[1]: "http://10.0.0.6:7012?" has a query; ` + msgPeerWant,
		}},
	{"peer with a fragment", func(c *Config) { c.Switch.Peers = []string{"http://10.0.0.5:7012/#x"} },
		[]string{`switch.peers[0]: "http://10.0.0.5:7012/#x" has a fragment; ` + msgPeerWant}},
	{"peer port out of range", func(c *Config) { c.Switch.Peers = []string{"http://10.0.0.5:70000", "http://10.0.0.5:0"} },
		[]string{
			`switch.peers[0]: "http://10.0.0.5:70000": port "70000" must be a number from 1 to 65535`,
			`switch.peers[1]: "http://10.0.0.5:0": port "0" must be a number from 1 to 65535`,
		}},
	{"peer not a URL", func(c *Config) { c.Switch.Peers = []string{"http://10.0.0.5:x"} },
		[]string{`switch.peers[0]: "http://10.0.0.5:x" is not a URL (invalid port ":x" after host); ` + msgPeerWant}},
	{"peer twice", func(c *Config) {
		c.Switch.Peers = []string{"http://10.0.0.5:7012", "https://10.0.0.5:7012/", "http://proxy-b", "http://PROXY-B:80"}
	}, []string{
		"switch.peers[1]: same proxy as switch.peers[0] (10.0.0.5:7012)",
		"switch.peers[3]: same proxy as switch.peers[2] (proxy-b:80)",
	}},
	{"peer is this proxy", func(c *Config) { c.Switch.Peers = []string{"https://127.0.0.1:7012/"} },
		[]string{"switch.peers[0]: 127.0.0.1:7012 is this proxy's own admin.addr; peers are the other proxies"}},
	{"peer may be this host on a wildcard admin", func(c *Config) { c.Admin.Addr, c.Switch.Peers = ":7012", []string{"http://127.0.0.1:7012"} }, nil},
	{"peer errors hide the password", func(c *Config) {
		c.Switch.Peers = []string{"http://ops:s3cret@10.0.0.5:7012/cmd/", "http://ops:s3cret@10.0.0.5:x", "ftp://ops:s3cret@h"}
	}, []string{
		`switch.peers[0]: "http://ops:***@10.0.0.5:7012/cmd/" has a path; ` + msgPeerWant + " (the proxy adds /cmd/)",
		`switch.peers[1]: "***" is not a URL; ` + msgPeerWant,
		`switch.peers[2]: "ftp://ops:***@h": must start with http:// or https://; ` + msgPeerWant,
	}},
}

func TestDurationsNew(t *testing.T) {
	c := validConfig()
	c.Uplink.CheckIntervalMS, c.Switch.CatchupTimeoutMS, c.Switch.GateTimeoutMS = 250, 90000, 1500
	for _, d := range []struct{ name, have, want string }{
		{"CheckInterval", c.Uplink.CheckInterval().String(), "250ms"},
		{"CatchupTimeout", c.Switch.CatchupTimeout().String(), "1m30s"},
		{"GateTimeout", c.Switch.GateTimeout().String(), "1.5s"},
	} {
		if d.have != d.want {
			t.Errorf("%s: have %s, want %s", d.name, d.have, d.want)
		}
	}
	c.Uplink.CheckIntervalMS = 0
	if c.Uplink.CheckInterval() != 0 {
		t.Errorf("CheckInterval off: have %v, want 0", c.Uplink.CheckInterval())
	}
}

func TestSentinelEnabled(t *testing.T) {
	tests := []struct {
		s    Sentinel
		want bool
	}{
		{Sentinel{}, false},
		{Sentinel{Addrs: []string{}}, false},
		{Sentinel{User: "u", Pass: "p"}, false},
		{Sentinel{Master: "m"}, true},
		{Sentinel{Addrs: []string{"h:1"}}, true},
		{Sentinel{Addrs: []string{"h:1"}, Master: "m"}, true},
	}
	for _, tt := range tests {
		if have := tt.s.Enabled(); have != tt.want {
			t.Errorf("%+v: have %v, want %v", tt.s, have, tt.want)
		}
	}
}
