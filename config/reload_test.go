package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestReloadRefusal(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string
	}{
		{"unchanged", func(*Config) {}, nil},
		{"everything but addresses", func(c *Config) {
			f := "/etc/x.pem"
			c.Uplink = Uplink{Addr: "10.0.0.1:6380", User: "u", Pass: "p", TLS: true, CACertFile: f, CertFile: f, KeyFile: f, ServerName: "r"}
			c.Listen.Pass, c.Listen.TLS, c.Listen.CertFile, c.Listen.KeyFile, c.Listen.ClientCAFile = "p", true, f, f, f
			c.ListenRaw.TLS, c.ListenRaw.CertFile, c.ListenRaw.KeyFile = true, f, f
			c.Admin.TLS, c.Admin.CertFile, c.Admin.KeyFile, c.Admin.ClientCAFile, c.Admin.User, c.Admin.Pass = true, f, f, f, "u", "p"
			c.LogMessages, c.ReadTimeLimitMS, c.MaxClients, c.ClientIdleTimeoutMS = true, 1, 2, 3
			c.Uplink.CheckIntervalMS, c.Uplink.Candidates = 0, []string{"10.0.0.2:6380"}
			c.Uplink.Sentinel = Sentinel{Addrs: []string{"10.0.0.9:26379"}, Master: "m", User: "u", Pass: "p"}
			c.Listen.ForwardAuth = true
			c.ListenRO.TLS, c.ListenRO.CertFile, c.ListenRO.KeyFile, c.ListenRO.ClientCAFile, c.ListenRO.Pass = true, f, f, f, "p"
			c.Replicas = Replicas{Addrs: []string{"10.0.0.3:6379"}, MaxLagBytes: 5}
			c.Switch = Switch{CatchupTimeoutMS: 1, GateTimeoutMS: 2, Peers: []string{"http://10.0.0.5:7012"}}
		}, nil},
		{"listen_ro.addr", func(c *Config) { c.ListenRO.Addr = "127.0.0.1:7020" },
			[]string{`listen_ro.addr: cannot change on reload ("" -> 127.0.0.1:7020); restart the proxy instead`}},
		{"listen.addr", func(c *Config) { c.Listen.Addr = "127.0.0.1:7011" },
			[]string{"listen.addr: cannot change on reload (127.0.0.1:7010 -> 127.0.0.1:7011); restart the proxy instead"}},
		{"listen_raw.addr added", func(c *Config) { c.ListenRaw.Addr = "127.0.0.1:7013" },
			[]string{`listen_raw.addr: cannot change on reload ("" -> 127.0.0.1:7013); restart the proxy instead`}},
		{"all three", func(c *Config) {
			c.Listen.Addr, c.ListenRaw.Addr, c.Admin.Addr = ":7010", "127.0.0.1:7013", "0.0.0.0:7012"
		}, []string{
			"listen.addr: cannot change on reload (127.0.0.1:7010 -> :7010); restart the proxy instead",
			`listen_raw.addr: cannot change on reload ("" -> 127.0.0.1:7013); restart the proxy instead`,
			"admin.addr: cannot change on reload (127.0.0.1:7012 -> 0.0.0.0:7012); restart the proxy instead",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := validConfig(), validConfig()
			tt.modify(new)
			err := ReloadRefusal(old, new)
			assertLines(t, "ReloadRefusal", lines(err), tt.want)
			keyErrors(t, err)
		})
	}
}

func TestDiff(t *testing.T) {
	old := validConfig()
	old.Admin.User, old.Admin.Pass = "ops", "old-admin-secret"
	old.Listen.Pass = "old-listen-secret"

	new := old.Clone()
	if have := Diff(old, new); len(have) != 0 {
		t.Errorf("Diff of equal configs: have %q, want none", have)
	}

	new.Uplink.Addr = "10.0.0.2:6379"
	new.Uplink.Pass = "new-uplink-secret"
	new.Uplink.ServerName = "redis two"
	new.Listen.Pass = ""
	new.Admin.Pass = "new-admin-secret"
	new.LogMessages = true
	new.MaxClients = 0
	new.Listen.Addr = "127.0.0.1:7099"
	new.Uplink.CheckIntervalMS = 0
	new.Uplink.Candidates = []string{"10.0.0.3:6379", "10.0.0.4:6379"}
	new.Uplink.Sentinel.Pass = "new-sentinel-secret"
	new.ListenRO.Pass = "new-ro-secret"
	new.Replicas.Discover = false
	new.Switch.Peers = []string{"https://ops:new-peer-secret@10.0.0.6:7012"}
	new.Switch.GateTimeoutMS = 2500
	have := Diff(old, new)
	assertLines(t, "Diff", have, []string{
		"uplink.addr: 127.0.0.1:6379 -> 10.0.0.2:6379",
		`uplink.pass: "" -> ***`,
		`uplink.servername: "" -> "redis two"`,
		"uplink.check_interval_ms: 1000 -> 0",
		"uplink.candidates: [] -> [10.0.0.3:6379, 10.0.0.4:6379]",
		`uplink.sentinel.pass: "" -> ***`,
		"listen.addr: 127.0.0.1:7010 -> 127.0.0.1:7099",
		`listen.pass: *** -> ""`,
		`listen_ro.pass: "" -> ***`,
		"replicas.discover: true -> false",
		"admin.pass: *** -> ***",
		"switch.gate_timeout_ms: 1000 -> 2500",
		"switch.peers: [] -> [https://ops:***@10.0.0.6:7012]",
		"log_messages: false -> true",
		"max_clients: 10000 -> 0",
	})
	for _, line := range have {
		if strings.Contains(line, "secret") {
			t.Errorf("Diff shows a password: %s", line)
		}
	}
}

func TestUplinkChanged(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   bool
	}{
		{"unchanged", func(*Config) {}, false},
		{"listen.pass", func(c *Config) { c.Listen.Pass = "x" }, false},
		{"read_time_limit_ms", func(c *Config) { c.ReadTimeLimitMS = 1 }, false},
		{"admin", func(c *Config) { c.Admin.User, c.Admin.Pass = "u", "p" }, false},
		{"uplink.addr", func(c *Config) { c.Uplink.Addr = "127.0.0.1:6380" }, true},
		{"uplink.pass", func(c *Config) { c.Uplink.Pass = "x" }, true},
		{"uplink.user", func(c *Config) { c.Uplink.User = "x" }, true},
		{"uplink.tls", func(c *Config) { c.Uplink.TLS = true }, true},
		{"uplink.cacertfile", func(c *Config) { c.Uplink.CACertFile = "x" }, true},
		{"uplink.skipverify", func(c *Config) { c.Uplink.SkipVerify = true }, true},
		{"uplink.certfile", func(c *Config) { c.Uplink.CertFile = "x" }, true},
		{"uplink.keyfile", func(c *Config) { c.Uplink.KeyFile = "x" }, true},
		{"uplink.servername", func(c *Config) { c.Uplink.ServerName = "x" }, true},
		{"uplink.check_interval_ms", func(c *Config) { c.Uplink.CheckIntervalMS = 5 }, false},
		{"uplink.candidates", func(c *Config) { c.Uplink.Candidates = []string{"10.0.0.2:6379"} }, false},
		{"uplink.sentinel", func(c *Config) { c.Uplink.Sentinel = Sentinel{Addrs: []string{"10.0.0.2:26379"}, Master: "m"} }, false},
		{"listen_ro and replicas", func(c *Config) { c.ListenRO.Pass, c.Replicas.MaxLagBytes = "p", 0 }, false},
	}
	for _, tt := range tests {
		old, new := validConfig(), validConfig()
		tt.modify(new)
		if have := UplinkChanged(old, new); have != tt.want {
			t.Errorf("%s: have %v, want %v", tt.name, have, tt.want)
		}
	}
}

func TestFollowChanged(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   bool
	}{
		{"unchanged", func(*Config) {}, false},
		{"nil and empty lists", func(c *Config) { c.Uplink.Candidates, c.Uplink.Sentinel.Addrs = nil, nil }, false},
		{"uplink.addr", func(c *Config) { c.Uplink.Addr = "127.0.0.1:6380" }, false},
		{"replicas.addrs", func(c *Config) { c.Replicas.Addrs = []string{"10.0.0.2:6379"} }, false},
		{"uplink.check_interval_ms", func(c *Config) { c.Uplink.CheckIntervalMS = 5 }, true},
		{"uplink.candidates", func(c *Config) { c.Uplink.Candidates = []string{"10.0.0.2:6379"} }, true},
		{"uplink.sentinel.addrs", func(c *Config) { c.Uplink.Sentinel.Addrs = []string{"10.0.0.2:26379"} }, true},
		{"uplink.sentinel.master", func(c *Config) { c.Uplink.Sentinel.Master = "m" }, true},
		{"uplink.sentinel.user", func(c *Config) { c.Uplink.Sentinel.User = "u" }, true},
		{"uplink.sentinel.pass", func(c *Config) { c.Uplink.Sentinel.Pass = "p" }, true},
	}
	for _, tt := range tests {
		old, new := validConfig(), validConfig()
		tt.modify(new)
		if have := FollowChanged(old, new); have != tt.want {
			t.Errorf("%s: have %v, want %v", tt.name, have, tt.want)
		}
	}
}

func TestEqualClone(t *testing.T) {
	a := validConfig()
	b := a.Clone()
	if b == a || !a.Equal(b) || !b.Equal(a) {
		t.Fatalf("Clone: have %p %+v, want an equal copy of %p", b, b, a)
	}
	b.Uplink.Pass = "x"
	if a.Equal(b) || a.Uplink.Pass != "" {
		t.Errorf("Clone shares state with the original")
	}
	b = a.Clone()
	b.Switch.Peers = append(b.Switch.Peers, "http://10.0.0.5:7012")
	if a.Equal(b) || len(a.Switch.Peers) != 0 {
		t.Errorf("Clone shares a list with the original, or Equal misses a list")
	}
	b = a.Clone()
	b.Uplink.Candidates, b.Replicas.Addrs = nil, nil
	if !a.Equal(b) || !b.Equal(a) {
		t.Errorf("a nil list differs from an empty one")
	}
	if c := b.Clone(); c.Uplink.Candidates == nil || c.Replicas.Addrs == nil {
		t.Errorf("Clone keeps a nil list: it would marshal to null")
	}
	for _, modify := range []func(*Config){
		func(c *Config) { c.Replicas.Discover = false },
		func(c *Config) { c.Switch.Fence = false },
		func(c *Config) { c.Uplink.Sentinel.Master = "m" },
		func(c *Config) { c.Uplink.Candidates = []string{"10.0.0.2:6379"} },
		func(c *Config) { c.ListenRO.Addr = "127.0.0.1:7020" },
	} {
		b = a.Clone()
		modify(b)
		if a.Equal(b) {
			t.Errorf("Equal misses a change: %+v", *b)
		}
	}
	var nilCfg *Config
	if !nilCfg.Equal(nil) || nilCfg.Equal(a) || a.Equal(nil) || nilCfg.Clone() != nil || nilCfg.Sanitized() != nil {
		t.Errorf("nil handling")
	}
}

func TestSanitized(t *testing.T) {
	c := validConfig()
	c.Uplink.User, c.Uplink.Pass = "proxy", "uplink-secret"
	c.Listen.Pass = "listen-secret"
	c.Admin.User, c.Admin.Pass = "ops", "admin-secret"
	c.Uplink.Sentinel = Sentinel{Addrs: []string{"10.0.0.9:26379"}, Master: "m", User: "sentinel", Pass: "sentinel-secret"}
	c.ListenRO.Pass = "ro-secret"
	c.Switch.Peers = []string{"http://10.0.0.5:7012", "https://ops:peer-secret@10.0.0.6:7012/", "http://ops@10.0.0.7:7012"}
	orig := c.Clone()

	s := c.Sanitized()
	if !c.Equal(orig) || c.Switch.Peers[1] != "https://ops:peer-secret@10.0.0.6:7012/" {
		t.Errorf("Sanitized modified the original")
	}
	if s.Uplink.Pass != "***" || s.Listen.Pass != "***" || s.Admin.Pass != "***" ||
		s.Uplink.Sentinel.Pass != "***" || s.ListenRO.Pass != "***" {
		t.Errorf("have %+v, want every password ***", *s)
	}
	assertLines(t, "switch.peers", s.Switch.Peers,
		[]string{"http://10.0.0.5:7012", "https://ops:***@10.0.0.6:7012/", "http://ops@10.0.0.7:7012"})
	if s.Uplink.User != "proxy" || s.Admin.User != "ops" || s.Uplink.Sentinel.User != "sentinel" {
		t.Errorf("Sanitized hid a user name: %+v", *s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret") {
		t.Errorf("sanitized JSON shows a password: %s", b)
	}
	s.Uplink.Addr, s.Uplink.Sentinel.Addrs[0] = "changed", "changed"
	if c.Uplink.Addr == "changed" || c.Uplink.Sentinel.Addrs[0] == "changed" {
		t.Errorf("Sanitized shares state with the original")
	}
}

func TestSanitizedEmptyPasswords(t *testing.T) {
	s := validConfig().Sanitized()
	if s.Uplink.Pass != "" || s.Listen.Pass != "" || s.Admin.Pass != "" || s.Uplink.Sentinel.Pass != "" || s.ListenRO.Pass != "" {
		t.Errorf("an empty password must stay empty (nothing to hide, and it shows none is set): %+v", *s)
	}
	if !s.Equal(validConfig()) {
		t.Errorf("have %+v, want the config unchanged", *s)
	}
}

// TestSecretKeys: every key named pass is redacted, so a new password key
// cannot be forgotten.
func TestSecretKeys(t *testing.T) {
	for _, key := range keys() {
		if strings.HasSuffix(key, ".pass") != secretKeys[key] {
			t.Errorf("%s: secret %v", key, secretKeys[key])
		}
	}
}
