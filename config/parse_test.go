package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestParseMinimal(t *testing.T) {
	have := mustParse(t, minimalJSON)
	if want := validConfig(); !reflect.DeepEqual(have, want) {
		t.Errorf("have %+v\nwant %+v", *have, *want)
	}
}

func TestParseFull(t *testing.T) {
	in := `{
	  "uplink": {"addr": "redis.internal:6380", "user": "proxy", "pass": "up-secret",
	             "tls": true, "cacertfile": "/etc/ca.pem", "skipverify": false,
	             "certfile": "/etc/c.pem", "keyfile": "/etc/c.key", "servername": "redis"},
	  "listen": {"addr": "0.0.0.0:7010", "pass": "client-secret", "tls": true,
	             "certfile": "/etc/s.pem", "keyfile": "/etc/s.key", "clientcafile": "/etc/cca.pem"},
	  "listen_raw": {"addr": "0.0.0.0:7011", "tls": true, "certfile": "/etc/r.pem", "keyfile": "/etc/r.key"},
	  "admin": {"addr": "127.0.0.1:7012", "tls": true, "certfile": "/etc/a.pem", "keyfile": "/etc/a.key",
	            "clientcafile": "/etc/aca.pem", "user": "ops", "pass": "admin-secret"},
	  "log_messages": true,
	  "read_time_limit_ms": 1500,
	  "max_clients": 7,
	  "client_idle_timeout_ms": 60000
	}`
	want := Config{
		Uplink: Uplink{Addr: "redis.internal:6380", User: "proxy", Pass: "up-secret", TLS: true,
			CACertFile: "/etc/ca.pem", CertFile: "/etc/c.pem", KeyFile: "/etc/c.key", ServerName: "redis",
			CheckIntervalMS: 1000, Candidates: []string{}, Sentinel: Sentinel{Addrs: []string{}}},
		Listen: Listen{Addr: "0.0.0.0:7010", Pass: "client-secret", TLS: true,
			CertFile: "/etc/s.pem", KeyFile: "/etc/s.key", ClientCAFile: "/etc/cca.pem"},
		Replicas:  Default().Replicas,
		ListenRaw: ListenRaw{Addr: "0.0.0.0:7011", TLS: true, CertFile: "/etc/r.pem", KeyFile: "/etc/r.key"},
		Admin: Admin{Addr: "127.0.0.1:7012", TLS: true, CertFile: "/etc/a.pem", KeyFile: "/etc/a.key",
			ClientCAFile: "/etc/aca.pem", User: "ops", Pass: "admin-secret"},
		Switch:              Default().Switch,
		LogMessages:         true,
		ReadTimeLimitMS:     1500,
		MaxClients:          7,
		ClientIdleTimeoutMS: 60000,
	}
	if have := mustParse(t, in); !reflect.DeepEqual(*have, want) {
		t.Errorf("have %+v\nwant %+v", *have, want)
	}
}

// TestParseFollowAndReplicas parses every key the older sections lacked,
// each away from its default.
func TestParseFollowAndReplicas(t *testing.T) {
	in := `{
	  "uplink": {"addr": "10.0.0.1:6379", "check_interval_ms": 250, "candidates": ["10.0.0.2:6379", "10.0.0.3:6379"],
	             "sentinel": {"addrs": [], "master": "", "user": "", "pass": ""}},
	  "listen": {"addr": "0.0.0.0:7010", "forward_auth": true},
	  "listen_ro": {"addr": "0.0.0.0:7020", "tls": true, "certfile": "/etc/s.pem", "keyfile": "/etc/s.key",
	                "clientcafile": "/etc/cca.pem", "pass": "ro-secret"},
	  "replicas": {"addrs": ["10.0.0.4:6379"], "discover": false, "max_lag_bytes": 0, "fallback_primary": false},
	  "admin": {"addr": "127.0.0.1:7012"},
	  "switch": {"catchup_timeout_ms": 30000, "gate_timeout_ms": 500, "fence": false,
	             "peers": ["http://10.0.0.8:7012", "https://ops:peer-secret@proxy9.internal:7012/"]}
	}`
	want := *Default()
	want.Uplink = Uplink{Addr: "10.0.0.1:6379", CheckIntervalMS: 250, Candidates: []string{"10.0.0.2:6379", "10.0.0.3:6379"},
		Sentinel: Sentinel{Addrs: []string{}}}
	want.Listen = Listen{Addr: "0.0.0.0:7010", ForwardAuth: true}
	want.ListenRO = ListenRO{Addr: "0.0.0.0:7020", TLS: true, CertFile: "/etc/s.pem", KeyFile: "/etc/s.key",
		ClientCAFile: "/etc/cca.pem", Pass: "ro-secret"}
	want.Replicas = Replicas{Addrs: []string{"10.0.0.4:6379"}, Discover: false, MaxLagBytes: 0, FallbackPrimary: false}
	want.Admin = Admin{Addr: "127.0.0.1:7012"}
	want.Switch = Switch{CatchupTimeoutMS: 30000, GateTimeoutMS: 500, Fence: false,
		Peers: []string{"http://10.0.0.8:7012", "https://ops:peer-secret@proxy9.internal:7012/"}}
	if have := mustParse(t, in); !reflect.DeepEqual(*have, want) {
		t.Errorf("have %+v\nwant %+v", *have, want)
	}

	sentinel := `{
	  "uplink": {"sentinel": {"addrs": ["10.0.0.5:26379", "10.0.0.6:26379"], "master": "mymaster", "user": "s", "pass": "s-secret"}},
	  "listen": {"addr": "127.0.0.1:7010"}, "admin": {"addr": "127.0.0.1:7012"}
	}`
	have := mustParse(t, sentinel)
	wantS := Sentinel{Addrs: []string{"10.0.0.5:26379", "10.0.0.6:26379"}, Master: "mymaster", User: "s", Pass: "s-secret"}
	if !reflect.DeepEqual(have.Uplink.Sentinel, wantS) || have.Uplink.Addr != "" || !have.Uplink.Sentinel.Enabled() {
		t.Errorf("have %+v, want %+v and no uplink.addr", have.Uplink, wantS)
	}
}

// TestParseExampleFile parses the project's config_example.json, which must
// run as it is, against a local Redis, with no TLS file.
func TestParseExampleFile(t *testing.T) {
	const path = "../config_example.json"
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		t.Skip("no config_example.json yet")
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadTLS(); err != nil {
		t.Errorf("config_example.json needs TLS files: %v", err)
	}
	// It shows every key, each with its default.
	want := Default()
	want.Uplink.Addr, want.Listen.Addr, want.Admin.Addr = "127.0.0.1:6379", "127.0.0.1:7010", "127.0.0.1:7012"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config_example.json:\nhave %+v\nwant %+v", *c, *want)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys() {
		if !exampleHas(t, raw, key) {
			t.Errorf("config_example.json does not show %s", key)
		}
	}
}

// exampleHas reports whether the JSON document raw has the dotted key.
func exampleHas(t *testing.T, raw []byte, key string) bool {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			return false
		}
		m = sub
	}
	_, ok := m[parts[len(parts)-1]]
	return ok
}

func TestParseDefaults(t *testing.T) {
	base := minimal(t)
	tests := []struct {
		name string
		in   string
		want func(*Config) int
		val  int
	}{
		{"read_time_limit_ms absent", minimalJSON, func(c *Config) int { return c.ReadTimeLimitMS }, 5000},
		{"max_clients absent", minimalJSON, func(c *Config) int { return c.MaxClients }, 10000},
		{"max_clients explicit 0", with(t, base, "max_clients", 0), func(c *Config) int { return c.MaxClients }, 0},
		{"max_clients explicit 5", with(t, base, "max_clients", 5), func(c *Config) int { return c.MaxClients }, 5},
		{"client_idle_timeout_ms absent", minimalJSON, func(c *Config) int { return c.ClientIdleTimeoutMS }, 0},
		{"client_idle_timeout_ms explicit", with(t, base, "client_idle_timeout_ms", 30000), func(c *Config) int { return c.ClientIdleTimeoutMS }, 30000},
		{"read_time_limit_ms explicit", with(t, base, "read_time_limit_ms", 100), func(c *Config) int { return c.ReadTimeLimitMS }, 100},
		{"uplink.check_interval_ms absent", minimalJSON, func(c *Config) int { return c.Uplink.CheckIntervalMS }, 1000},
		{"uplink.check_interval_ms explicit 0", with(t, base, "uplink.check_interval_ms", 0), func(c *Config) int { return c.Uplink.CheckIntervalMS }, 0},
		{"replicas.max_lag_bytes absent", minimalJSON, func(c *Config) int { return c.Replicas.MaxLagBytes }, 1048576},
		{"replicas.max_lag_bytes explicit 0", with(t, base, "replicas.max_lag_bytes", 0), func(c *Config) int { return c.Replicas.MaxLagBytes }, 0},
		{"switch.catchup_timeout_ms absent", minimalJSON, func(c *Config) int { return c.Switch.CatchupTimeoutMS }, 60000},
		{"switch.gate_timeout_ms absent", minimalJSON, func(c *Config) int { return c.Switch.GateTimeoutMS }, 1000},
		{"switch.gate_timeout_ms explicit", with(t, base, "switch.gate_timeout_ms", 20), func(c *Config) int { return c.Switch.GateTimeoutMS }, 20},
		{"empty replicas object keeps the defaults", with(t, base, "replicas", map[string]any{}), func(c *Config) int { return c.Replicas.MaxLagBytes }, 1048576},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if have := tt.want(mustParse(t, tt.in)); have != tt.val {
				t.Errorf("have %d, want %d", have, tt.val)
			}
		})
	}
	c := mustParse(t, minimalJSON)
	if c.LogMessages || c.Uplink.TLS || c.Uplink.SkipVerify || c.Listen.TLS || c.Listen.ForwardAuth ||
		c.ListenRO.TLS || c.ListenRaw.TLS || c.Admin.TLS {
		t.Errorf("a bool defaults to true: %+v", *c)
	}
	if c.Uplink.Sentinel.Enabled() || c.ListenRO.Addr != "" {
		t.Errorf("Sentinel or listen_ro on by default: %+v", *c)
	}

	// The booleans whose default is true: absent = true, false = false.
	bools := []struct {
		key string
		get func(*Config) bool
	}{
		{"replicas.discover", func(c *Config) bool { return c.Replicas.Discover }},
		{"replicas.fallback_primary", func(c *Config) bool { return c.Replicas.FallbackPrimary }},
		{"switch.fence", func(c *Config) bool { return c.Switch.Fence }},
	}
	for _, b := range bools {
		if !b.get(c) {
			t.Errorf("%s absent: have false, want true", b.key)
		}
		if b.get(mustParse(t, with(t, base, b.key, false))) {
			t.Errorf("%s false: have true", b.key)
		}
		if !b.get(mustParse(t, with(t, base, b.key, true))) {
			t.Errorf("%s true: have false", b.key)
		}
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"uplink.candidates", c.Uplink.Candidates}, {"uplink.sentinel.addrs", c.Uplink.Sentinel.Addrs},
		{"replicas.addrs", c.Replicas.Addrs}, {"switch.peers", c.Switch.Peers}} {
		if l.list == nil || len(l.list) != 0 {
			t.Errorf("%s absent: have %#v, want an empty list", l.key, l.list)
		}
	}
	if have := mustParse(t, with(t, base, "uplink.candidates", []any{})).Uplink.Candidates; have == nil || len(have) != 0 {
		t.Errorf("uplink.candidates []: have %#v, want an empty list", have)
	}
	if have, want := c.ReadTimeLimit(), 5*1e9; float64(have) != want {
		t.Errorf("ReadTimeLimit: have %v, want 5s", have)
	}
	if have := c.ClientIdleTimeout(); have != 0 {
		t.Errorf("ClientIdleTimeout: have %v, want 0 (never)", have)
	}
	for _, d := range []struct {
		name       string
		have, want time.Duration
	}{
		{"CheckInterval", c.Uplink.CheckInterval(), time.Second},
		{"CatchupTimeout", c.Switch.CatchupTimeout(), time.Minute},
		{"GateTimeout", c.Switch.GateTimeout(), time.Second},
	} {
		if d.have != d.want {
			t.Errorf("%s: have %v, want %v", d.name, d.have, d.want)
		}
	}
}

// TestParseWrongType gives every key every wrong JSON type.
func TestParseWrongType(t *testing.T) {
	base := minimal(t)
	wrong := map[string][]struct {
		v    any
		want string
	}{
		"string": {{1, "must be a string, not a number"}, {true, "must be a string, not a boolean"},
			{nil, "must be a string, not null"}, {map[string]any{}, "must be a string, not an object"},
			{[]any{"a"}, "must be a string, not an array"}},
		"bool": {{"true", "must be a boolean (true or false), not a string"}, {1, "must be a boolean (true or false), not a number"},
			{nil, "must be a boolean (true or false), not null"}, {[]any{}, "must be a boolean (true or false), not an array"}},
		"int": {{"5", "must be a number, not a string"}, {true, "must be a number, not a boolean"},
			{nil, "must be a number, not null"}, {map[string]any{"a": 1}, "must be a number, not an object"},
			{1.5, "must be an integer, not 1.5"}, {1e30, "must be an integer, not 1e+30"}},
		"object": {{"x", "must be an object, not a string"}, {[]any{}, "must be an object, not an array"},
			{7, "must be an object, not a number"}, {nil, "must be an object, not null"}},
		"list": {{"x", "must be an array of strings, not a string"}, {map[string]any{}, "must be an array of strings, not an object"},
			{nil, "must be an array of strings, not null"}, {false, "must be an array of strings, not a boolean"}},
	}
	kinds := map[string]string{"uplink": "object", "uplink.sentinel": "object", "listen": "object", "listen_ro": "object",
		"replicas": "object", "listen_raw": "object", "admin": "object", "switch": "object"}
	for key, v := range leaves(Default()) {
		kind := map[string]string{"string": "string", "bool": "bool", "int": "int", "[]string": "list"}[fmt.Sprintf("%T", v)]
		if kind == "" {
			t.Fatalf("%s: no wrong values for %T", key, v)
		}
		kinds[key] = kind
	}
	for key, kind := range kinds {
		for _, w := range wrong[kind] {
			t.Run(fmt.Sprintf("%s=%v", key, w.v), func(t *testing.T) {
				have := parseErrors(t, with(t, base, key, w.v))
				assertLines(t, "errors", have, []string{"config.json: " + key + ": " + w.want})
			})
		}
	}
}

// TestParseListElements: an element of the wrong type is named by its
// index, and the list then gets no validation noise (its indexes would be
// off).
func TestParseListElements(t *testing.T) {
	base := minimal(t)
	tests := []struct {
		key  string
		v    []any
		want []string
	}{
		{"uplink.candidates", []any{"10.0.0.2:6379", 5, "bad", nil},
			[]string{"uplink.candidates[1]: must be a string, not a number", "uplink.candidates[3]: must be a string, not null"}},
		{"uplink.sentinel.addrs", []any{[]any{"10.0.0.2:26379"}}, []string{"uplink.sentinel.addrs[0]: must be a string, not an array"}},
		{"replicas.addrs", []any{map[string]any{"addr": "x"}, true}, []string{
			"replicas.addrs[0]: must be a string, not an object", "replicas.addrs[1]: must be a string, not a boolean"}},
		{"switch.peers", []any{1.5}, []string{"switch.peers[0]: must be a string, not a number"}},
		{"uplink.candidates", []any{"bad"}, []string{`uplink.candidates[0]: "bad" is not host:port (missing port in address)`}},
	}
	for _, tt := range tests {
		var want []string
		for _, w := range tt.want {
			want = append(want, "config.json: "+w)
		}
		assertLines(t, tt.key, parseErrors(t, with(t, base, tt.key, tt.v)), want)
	}
}

// TestParseMarshalled: a Config built as a literal, nil lists and all,
// marshals to JSON that Parse reads back as the same configuration.
func TestParseMarshalled(t *testing.T) {
	c := &Config{
		Uplink:          Uplink{Addr: "127.0.0.1:6379"},
		Listen:          Listen{Addr: "127.0.0.1:7010"},
		Admin:           Admin{Addr: "127.0.0.1:7012"},
		ReadTimeLimitMS: 5000,
	}
	for _, indent := range []string{"", "  "} {
		b, err := json.MarshalIndent(c, "", indent)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "null") {
			t.Errorf("marshalled config holds null: %s", b)
		}
		if have := mustParse(t, string(b)); !have.Equal(c) {
			t.Errorf("have %+v\nwant %+v", *have, *c)
		}
	}
	// The sections alone too.
	for _, v := range []any{Uplink{}, Sentinel{}, Replicas{}, Switch{}, &Uplink{}} {
		if b := marshal(t, v); strings.Contains(b, "null") {
			t.Errorf("%T marshals to %s", v, b)
		}
	}
}

func TestParseIntRange(t *testing.T) {
	base := minimal(t)
	in := strings.Replace(with(t, base, "max_clients", 0), `"max_clients":0`, `"max_clients":99999999999999999999`, 1)
	assertLines(t, "errors", parseErrors(t, in), []string{"config.json: max_clients: 99999999999999999999 is out of range"})
}

func TestParseUnknownKeys(t *testing.T) {
	in := `{
	  "uplink": {"addr": "127.0.0.1:6379", "adr": "x", "password": "p", "sentinel": {"addr": "x"}},
	  "listen": {"addr": "127.0.0.1:7010", "user": "u"},
	  "listen_raw": {"clientcafile": "x"},
	  "admin": {"addr": "127.0.0.1:7012", "cacertfile": {"deep": [1, {"x": 2}]}},
	  "listen_ro": {"forward_auth": false, "user": "u"},
	  "replicas": {"max_lag": 1, "addrs": []},
	  "switch": {"peer": [], "timeout_ms": 5},
	  "Uplink": {"sentinel": {"master_name": "m"}},
	  "max_client": 3,
	  "tls\nname": true
	}`
	assertLines(t, "errors", parseErrors(t, in), []string{
		"config.json: uplink.adr: unknown key",
		"config.json: uplink.password: unknown key",
		"config.json: uplink.sentinel.addr: unknown key",
		"config.json: listen.user: unknown key",
		"config.json: listen_raw.clientcafile: unknown key",
		"config.json: admin.cacertfile: unknown key",
		"config.json: listen_ro.forward_auth: unknown key",
		"config.json: listen_ro.user: unknown key",
		"config.json: replicas.max_lag: unknown key",
		"config.json: switch.peer: unknown key",
		"config.json: switch.timeout_ms: unknown key",
		"config.json: Uplink: unknown key",
		"config.json: max_client: unknown key",
		`config.json: "tls\nname": unknown key`,
	})
}

func TestParseDuplicateKeys(t *testing.T) {
	in := `{"uplink": {"addr": "127.0.0.1:6379", "addr": "127.0.0.1:6380"},
	        "listen": {"addr": "127.0.0.1:7010"}, "admin": {"addr": "127.0.0.1:7012"},
	        "max_clients": 1, "max_clients": "x"}`
	assertLines(t, "errors", parseErrors(t, in), []string{
		"config.json: uplink.addr: duplicate key",
		"config.json: max_clients: duplicate key",
	})
}

func TestParseMissingRequired(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`{}`, []string{
			"config.json: uplink.addr: required",
			"config.json: listen.addr: required",
			"config.json: admin.addr: required",
		}},
		{`{"uplink": {}, "listen": {"addr": ""}, "admin": {"addr": "127.0.0.1:7012"}}`, []string{
			"config.json: uplink.addr: required",
			"config.json: listen.addr: required",
		}},
	}
	for _, tt := range tests {
		assertLines(t, tt.in, parseErrors(t, tt.in), tt.want)
	}
}

// TestParseAllErrors checks that schema and validation problems come
// together, and that a key with a schema problem gets no validation noise.
func TestParseAllErrors(t *testing.T) {
	in := `{
	  "uplink": {"addr": 6379, "user": "u"},
	  "listen": "127.0.0.1:7010",
	  "admin": {"addr": "127.0.0.1:7012", "tls": "yes", "certfile": 5},
	  "read_time_limit_ms": 0,
	  "extra": null
	}`
	assertLines(t, "errors", parseErrors(t, in), []string{
		"config.json: uplink.addr: must be a string, not a number",
		"config.json: listen: must be an object, not a string",
		"config.json: admin.tls: must be a boolean (true or false), not a string",
		"config.json: admin.certfile: must be a string, not a number",
		"config.json: extra: unknown key",
		"config.json: uplink.pass: required when uplink.user is set",
		"config.json: read_time_limit_ms: " + msgReadTimeLimitZero,
	})
}

func TestParseNotAnObject(t *testing.T) {
	for _, in := range []string{`[]`, `"x"`, `1`, `null`, `true`} {
		have := parseErrors(t, in)
		if len(have) != 1 || !strings.HasPrefix(have[0], "config.json: must be an object, not ") {
			t.Errorf("%s: have %q, want one 'must be an object' error", in, have)
		}
	}
}

func TestParseSyntax(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "config.json: empty, want a JSON object"},
		{" \n\t", "config.json: empty, want a JSON object"},
		{"{\n  \"uplink\": {\"addr\": }\n}", "config.json:2:22: invalid character '}' looking for beginning of value"},
		{`{"uplink": {"addr": "x"}`, "config.json:1:25: unexpected end of JSON input"},
		{minimalJSON + "\n{}", "config.json:6:1: invalid character '{' after top-level value"},
		{minimalJSON + "}", "config.json:5:2: invalid character '}' after top-level value"},
		{`{"é": 1 "b": 2}`, "config.json:1:9: invalid character '\"' after object key:value pair"},
		{`{"a": tru}`, "config.json:1:10: invalid character '}' in literal true (expecting 'e')"},
		{`{"a": 1,}`, "config.json:1:9: invalid character '}' looking for beginning of object key string"},
		// Syntax ends parsing: the unknown key before the error is not reported.
		{`{"x": 1, "y" 2}`, "config.json:1:14: invalid character '2' after object key"},
	}
	for _, tt := range tests {
		assertLines(t, fmt.Sprintf("%q", tt.in), parseErrors(t, tt.in), []string{tt.want})
	}
}

func TestParseTooLarge(t *testing.T) {
	in := minimalJSON + strings.Repeat(" ", MaxFileSize)
	have := parseErrors(t, in)
	assertLines(t, "errors", have, []string{fmt.Sprintf("config.json: larger than %d bytes, not a configuration file", MaxFileSize)})
}

func TestParseReadError(t *testing.T) {
	_, err := Parse(iotest.ErrReader(errors.New("disk on fire")), "config.json")
	if have, want := fmt.Sprint(err), "config.json: disk on fire"; have != want {
		t.Errorf("have %q, want %q", have, want)
	}
}

// TestParseErrorsHidePasswords: no error message shows a password value.
func TestParseErrorsHidePasswords(t *testing.T) {
	in := `{
	  "uplink": {"addr": "127.0.0.1:6379", "pass": "s3cret-up", "user": 1, "sentinel": {"pass": "s3cret-sentinel"}},
	  "listen": {"addr": "127.0.0.1:7010", "pass": "s3cret-listen", "tls": true},
	  "admin": {"addr": "127.0.0.1:7012", "pass": "s3cret-admin"},
	  "listen_ro": {"pass": "s3cret-ro", "tls": 1},
	  "switch": {"peers": ["ftp://u:s3cret-peer@h:1", "http://u:s3cret-peer@h:1/x?y", "http://u:s3cret/peer@h:70000",
	                      "http://u:s3cret-peer@h:99999", "http://u:s3cret%zz@h", "http://u:s3cret peer@h:1/"]},
	  "pass": "s3cret-top"
	}`
	have := parseErrors(t, in)
	for _, line := range have {
		if strings.Contains(line, "s3cret") {
			t.Errorf("error shows a password: %s", line)
		}
	}
	if len(have) < 10 {
		t.Errorf("have %d errors, want one for each bad key:\n%s", len(have), strings.Join(have, "\n"))
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(good, []byte(minimalJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"uplink": {"adr": "x"}}`), 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Equal(validConfig()) {
		t.Errorf("have %+v, want %+v", *c, *validConfig())
	}

	_, err = Load(bad)
	assertLines(t, "errors", lines(err), []string{
		bad + ": uplink.adr: unknown key",
		bad + ": uplink.addr: required",
		bad + ": listen.addr: required",
		bad + ": admin.addr: required",
	})

	_, err = Load(filepath.Join(dir, "missing.json"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("have %v, want a not-exist error naming the file", err)
	}
}

// TestParseKeyErrors: every line of a Parse error unwraps to a *KeyError
// naming the key.
func TestParseKeyErrors(t *testing.T) {
	_, err := Parse(strings.NewReader(`{"uplink": {"adr": 1}, "listen": {"addr": "x"}}`), "c.json")
	var keys []string
	for _, ke := range keyErrors(t, err) {
		keys = append(keys, ke.Key)
	}
	assertLines(t, "keys", keys, []string{"uplink.adr", "uplink.addr", "listen.addr", "admin.addr"})
}
