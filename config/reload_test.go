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
		}, nil},
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
	have := Diff(old, new)
	assertLines(t, "Diff", have, []string{
		"uplink.addr: 127.0.0.1:6379 -> 10.0.0.2:6379",
		`uplink.pass: "" -> ***`,
		`uplink.servername: "" -> "redis two"`,
		"listen.addr: 127.0.0.1:7010 -> 127.0.0.1:7099",
		`listen.pass: *** -> ""`,
		"admin.pass: *** -> ***",
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
	}
	for _, tt := range tests {
		old, new := validConfig(), validConfig()
		tt.modify(new)
		if have := UplinkChanged(old, new); have != tt.want {
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
	orig := *c

	s := c.Sanitized()
	if *c != orig {
		t.Errorf("Sanitized modified the original")
	}
	if s.Uplink.Pass != "***" || s.Listen.Pass != "***" || s.Admin.Pass != "***" {
		t.Errorf("have %+v, want every password ***", *s)
	}
	if s.Uplink.User != "proxy" || s.Admin.User != "ops" {
		t.Errorf("Sanitized hid a user name: %+v", *s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret") {
		t.Errorf("sanitized JSON shows a password: %s", b)
	}
	s.Uplink.Addr = "changed"
	if c.Uplink.Addr == "changed" {
		t.Errorf("Sanitized shares state with the original")
	}
}

func TestSanitizedEmptyPasswords(t *testing.T) {
	s := validConfig().Sanitized()
	if s.Uplink.Pass != "" || s.Listen.Pass != "" || s.Admin.Pass != "" {
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
