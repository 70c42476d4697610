package config

import (
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"redis-proxy/internal/testcerts"
)

// tlsConfig is a valid Config with TLS everywhere, mutual TLS included.
func tlsConfig(f testcerts.Files) *Config {
	c := validConfig()
	c.Uplink = Uplink{Addr: "127.0.0.1:6379", TLS: true, CACertFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey,
		CheckIntervalMS: DefaultCheckIntervalMS}
	c.Listen = Listen{Addr: "127.0.0.1:7010", TLS: true, CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CA}
	c.ListenRO = ListenRO{Addr: "127.0.0.1:7020", TLS: true, CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CA}
	c.ListenRaw = ListenRaw{Addr: "127.0.0.1:7011", TLS: true, CertFile: f.ServerCert, KeyFile: f.ServerKey}
	c.Admin = Admin{Addr: "127.0.0.1:7012", TLS: true, CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CA}
	return c
}

func TestTLSOff(t *testing.T) {
	c := validConfig()
	for name, load := range map[string]func() (*tls.Config, error){
		"UplinkTLS": c.UplinkTLS, "ListenTLS": c.ListenTLS, "ListenROTLS": c.ListenROTLS, "ListenRawTLS": c.ListenRawTLS, "AdminTLS": c.AdminTLS,
	} {
		if tc, err := load(); tc != nil || err != nil {
			t.Errorf("%s: have %v, %v, want nil, nil", name, tc, err)
		}
	}
	if err := c.LoadTLS(); err != nil {
		t.Errorf("LoadTLS: %v", err)
	}
}

func TestTLSConfigs(t *testing.T) {
	f := testcerts.MustWrite(t)
	c := tlsConfig(f)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadTLS(); err != nil {
		t.Fatal(err)
	}

	up, err := c.UplinkTLS()
	if err != nil {
		t.Fatal(err)
	}
	if up.MinVersion != tls.VersionTLS12 || up.RootCAs == nil || len(up.Certificates) != 1 ||
		up.ServerName != "127.0.0.1" || up.InsecureSkipVerify {
		t.Errorf("UplinkTLS: %+v", up)
	}
	for name, load := range map[string]func() (*tls.Config, error){"ListenTLS": c.ListenTLS, "ListenROTLS": c.ListenROTLS, "AdminTLS": c.AdminTLS} {
		tc, err := load()
		if err != nil {
			t.Fatal(err)
		}
		if tc.MinVersion != tls.VersionTLS12 || len(tc.Certificates) != 1 ||
			tc.ClientCAs == nil || tc.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("%s: %+v", name, tc)
		}
	}
	raw, err := c.ListenRawTLS()
	if err != nil {
		t.Fatal(err)
	}
	if raw.MinVersion != tls.VersionTLS12 || len(raw.Certificates) != 1 || raw.ClientAuth != tls.NoClientCert {
		t.Errorf("ListenRawTLS: %+v", raw)
	}
}

func TestUplinkServerName(t *testing.T) {
	f := testcerts.MustWrite(t)
	tests := []struct{ addr, servername, want string }{
		{"127.0.0.1:6379", "", "127.0.0.1"},
		{"[::1]:6379", "", "::1"},
		{"redis.internal:6380", "", "redis.internal"},
		{"10.0.0.5:6379", "redis.internal", "redis.internal"},
	}
	for _, tt := range tests {
		c := validConfig()
		c.Uplink = Uplink{Addr: tt.addr, TLS: true, CACertFile: f.CA, ServerName: tt.servername}
		tc, err := c.UplinkTLS()
		if err != nil {
			t.Fatal(err)
		}
		if tc.ServerName != tt.want {
			t.Errorf("%s %q: have %q, want %q", tt.addr, tt.servername, tc.ServerName, tt.want)
		}
		if len(tc.Certificates) != 0 {
			t.Errorf("%s: client certificate without certfile", tt.addr)
		}
	}
}

// TestUplinkTLSFor: another server dialled with the uplink's settings is
// verified against its own host, unless uplink.servername names one.
func TestUplinkTLSFor(t *testing.T) {
	f := testcerts.MustWrite(t)
	tests := []struct{ addr, servername, want string }{
		{"10.0.0.2:6379", "", "10.0.0.2"},
		{"redis-b.internal:6379", "", "redis-b.internal"},
		{"[::1]:6380", "", "::1"},
		{"10.0.0.2:6379", "redis.internal", "redis.internal"},
		{"not an address", "", ""},
	}
	for _, tt := range tests {
		c := validConfig()
		c.Uplink = Uplink{Addr: "127.0.0.1:6379", TLS: true, CACertFile: f.CA, ServerName: tt.servername}
		tc, err := c.UplinkTLSFor(tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if tc.ServerName != tt.want || tc.RootCAs == nil {
			t.Errorf("%s %q: have %q, want %q", tt.addr, tt.servername, tc.ServerName, tt.want)
		}
	}
	c := validConfig()
	if tc, err := c.UplinkTLSFor("10.0.0.2:6379"); tc != nil || err != nil {
		t.Errorf("without uplink.tls: have %v, %v, want nil, nil", tc, err)
	}
}

// TestListenROHandshake: listen_ro serves TLS with client certificates as
// listen does.
func TestListenROHandshake(t *testing.T) {
	f := testcerts.MustWrite(t)
	c := tlsConfig(f)
	client, err := c.UplinkTLS()
	if err != nil {
		t.Fatal(err)
	}
	server, err := c.ListenROTLS()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(client, server); err != nil {
		t.Errorf("handshake: %v", err)
	}
	c.ListenRO.ClientCAFile = f.OtherCA
	if server, err = c.ListenROTLS(); err != nil {
		t.Fatal(err)
	}
	if err := handshake(client, server); err == nil {
		t.Errorf("handshake with a client certificate of another CA: no error")
	}
}

func TestUplinkSkipVerify(t *testing.T) {
	c := validConfig()
	c.Uplink.TLS, c.Uplink.SkipVerify = true, true
	tc, err := c.UplinkTLS()
	if err != nil {
		t.Fatal(err)
	}
	if !tc.InsecureSkipVerify || tc.RootCAs != nil {
		t.Errorf("have %+v, want InsecureSkipVerify and no RootCAs", tc)
	}
}

// TestTLSHandshake proves the configs work together: the uplink config (as
// a client) against the listen config (as a server), mutual TLS.
func TestTLSHandshake(t *testing.T) {
	f := testcerts.MustWrite(t)
	tests := []struct {
		name    string
		modify  func(*Config)
		wantErr bool
	}{
		{"mutual TLS", func(*Config) {}, false},
		{"client without certificate", func(c *Config) { c.Uplink.CertFile, c.Uplink.KeyFile = "", "" }, true},
		{"client trusts another CA", func(c *Config) { c.Uplink.CACertFile = f.OtherCA }, true},
		{"server trusts another CA", func(c *Config) { c.Listen.ClientCAFile = f.OtherCA }, true},
		{"skipverify trusts anything", func(c *Config) { c.Uplink.CACertFile, c.Uplink.SkipVerify = "", true }, false},
		{"wrong server name", func(c *Config) { c.Uplink.ServerName = "redis.example.com" }, true},
		{"localhost", func(c *Config) { c.Uplink.Addr = "localhost:6379" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tlsConfig(f)
			tt.modify(c)
			client, err := c.UplinkTLS()
			if err != nil {
				t.Fatal(err)
			}
			server, err := c.ListenTLS()
			if err != nil {
				t.Fatal(err)
			}
			if err := handshake(client, server); (err != nil) != tt.wantErr {
				t.Errorf("handshake: have %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// handshake runs a TLS handshake over a pipe and returns the errors of
// both sides.
func handshake(client, server *tls.Config) error {
	cc, sc := net.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := tls.Server(sc, server).Handshake()
		sc.Close()
		errc <- err
	}()
	conn := tls.Client(cc, client)
	cerr := conn.Handshake()
	if cerr == nil {
		// In TLS 1.3 the server judges the client certificate after the
		// client's handshake has returned: read until the server is done,
		// with an alert or by closing.
		if _, cerr = conn.Read(make([]byte, 1)); errors.Is(cerr, io.EOF) {
			cerr = nil
		}
	}
	cc.Close()
	return errors.Join(cerr, <-errc)
}

func TestTLSErrors(t *testing.T) {
	f := testcerts.MustWrite(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	empty := writeFile(t, dir, "empty.pem", "")
	garbage := writeFile(t, dir, "garbage.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")

	tests := []struct {
		name   string
		modify func(*Config)
		want   []string
	}{
		{"uplink ca missing", func(c *Config) { c.Uplink.CACertFile = missing },
			[]string{"uplink.cacertfile: " + missing + ": no such file or directory"}},
		{"uplink ca empty", func(c *Config) { c.Uplink.CACertFile = empty },
			[]string{"uplink.cacertfile: " + empty + ": no certificates found"}},
		{"uplink ca is a key", func(c *Config) { c.Uplink.CACertFile = f.CAKey },
			[]string{"uplink.cacertfile: " + f.CAKey + ": no certificates found"}},
		{"uplink ca garbage", func(c *Config) { c.Uplink.CACertFile = garbage },
			[]string{"uplink.cacertfile: " + garbage + ": certificate 1: x509: malformed certificate"}},
		{"uplink key does not match", func(c *Config) { c.Uplink.KeyFile = f.ServerKey },
			[]string{"uplink.keyfile: " + f.ServerKey + ": private key does not match public key (certificate " + f.ClientCert + ")"}},
		{"uplink keyfile is a certificate", func(c *Config) { c.Uplink.KeyFile = f.ClientCert },
			[]string{"uplink.keyfile: " + f.ClientCert + ": no private key found"}},
		{"uplink certfile is a key", func(c *Config) { c.Uplink.CertFile = f.ClientKey },
			[]string{"uplink.certfile: " + f.ClientKey + ": no certificates found"}},
		{"uplink keyfile without certfile", func(c *Config) { c.Uplink.CertFile = "" },
			[]string{"uplink.certfile: required when uplink.keyfile is set"}},
		{"listen cert missing", func(c *Config) { c.Listen.CertFile = missing },
			[]string{"listen.certfile: " + missing + ": no such file or directory"}},
		{"listen both missing", func(c *Config) { c.Listen.CertFile, c.Listen.KeyFile = missing, missing },
			[]string{
				"listen.certfile: " + missing + ": no such file or directory",
				"listen.keyfile: " + missing + ": no such file or directory",
			}},
		{"listen without files", func(c *Config) { c.Listen.CertFile, c.Listen.KeyFile = "", "" },
			[]string{"listen.certfile: required when listen.tls is true", "listen.keyfile: required when listen.tls is true"}},
		{"listen clientca empty and key mismatch", func(c *Config) { c.Listen.ClientCAFile, c.Listen.KeyFile = empty, f.ClientKey },
			[]string{
				"listen.keyfile: " + f.ClientKey + ": private key does not match public key (certificate " + f.ServerCert + ")",
				"listen.clientcafile: " + empty + ": no certificates found",
			}},
		{"listen_raw key missing", func(c *Config) { c.ListenRaw.KeyFile = missing },
			[]string{"listen_raw.keyfile: " + missing + ": no such file or directory"}},
		{"admin clientca missing", func(c *Config) { c.Admin.ClientCAFile = missing },
			[]string{"admin.clientcafile: " + missing + ": no such file or directory"}},
		{"listen_ro cert missing", func(c *Config) { c.ListenRO.CertFile = missing },
			[]string{"listen_ro.certfile: " + missing + ": no such file or directory"}},
		{"listen_ro clientca empty", func(c *Config) { c.ListenRO.ClientCAFile = empty },
			[]string{"listen_ro.clientcafile: " + empty + ": no certificates found"}},
		{"listen_ro without files", func(c *Config) { c.ListenRO.CertFile, c.ListenRO.KeyFile = "", "" },
			[]string{"listen_ro.certfile: required when listen_ro.tls is true", "listen_ro.keyfile: required when listen_ro.tls is true"}},
		{"listen_ro off", func(c *Config) { c.ListenRO = ListenRO{} }, nil},
		{"every section at once", func(c *Config) {
			c.Uplink.CACertFile, c.Listen.CertFile, c.ListenRaw.CertFile, c.Admin.KeyFile = missing, empty, garbage, f.CA
			c.ListenRO.KeyFile = missing
		}, []string{
			"uplink.cacertfile: " + missing + ": no such file or directory",
			"listen.certfile: " + empty + ": no certificates found",
			"listen_ro.keyfile: " + missing + ": no such file or directory",
			"listen_raw.certfile: " + garbage + ": certificate 1: x509: malformed certificate",
			"admin.keyfile: " + f.CA + ": no private key found",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tlsConfig(f)
			tt.modify(c)
			err := c.LoadTLS()
			assertLines(t, "LoadTLS", lines(err), tt.want)
			keyErrors(t, err) // every line is a *KeyError
		})
	}
}

func TestTLSErrorUnwraps(t *testing.T) {
	c := validConfig()
	c.Uplink.TLS, c.Uplink.CACertFile = true, filepath.Join(t.TempDir(), "nope.pem")
	tc, err := c.UplinkTLS()
	if tc != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("have %v, %v, want nil and fs.ErrNotExist", tc, err)
	}
	if have := strings.Count(err.Error(), "nope.pem"); have != 1 {
		t.Errorf("%q names the file %d times, want once", err, have)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
