package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and a config that parses survives a round
// trip through JSON unchanged.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		minimalJSON,
		`{}`,
		``,
		`null`,
		`[1, {"a": [2]}]`,
		`{"uplink": {"addr": "127.0.0.1:6379", "user": "u", "pass": "p", "tls": true, "skipverify": true},
		  "listen": {"addr": ":7010", "pass": "<&>", "tls": true, "certfile": "c", "keyfile": "k", "clientcafile": "ca"},
		  "listen_raw": {"addr": "[::1]:7011"},
		  "admin": {"addr": "0.0.0.0:7012", "user": "ops", "pass": "\u00e9\n"},
		  "log_messages": true, "read_time_limit_ms": 86400000, "max_clients": 0, "client_idle_timeout_ms": 9223372036854}`,
		`{"uplink": {"addr": 1, "adr": {}}, "listen": [], "admin": null, "max_clients": 1.5, "x": "y"}`,
		`{"uplink": {"addr": "10.0.0.1:6379", "check_interval_ms": 0, "candidates": ["10.0.0.2:6379", "10.0.0.1:6379"]},
		  "listen": {"addr": ":7010", "forward_auth": true}, "listen_ro": {"addr": "127.0.0.1:7020", "pass": "r"},
		  "replicas": {"addrs": ["[::1]:6380"], "discover": false, "max_lag_bytes": 0, "fallback_primary": false},
		  "admin": {"addr": "127.0.0.1:7012"},
		  "switch": {"catchup_timeout_ms": 1, "gate_timeout_ms": 86400000, "fence": false, "peers": ["https://u:p@h:1/"]}}`,
		`{"uplink": {"sentinel": {"addrs": ["s:26379"], "master": "m", "user": "u", "pass": "p"}},
		  "listen": {"addr": "127.0.0.1:7010"}, "admin": {"addr": "127.0.0.1:7012"}}`,
		`{"uplink": {"candidates": [1, "x", null], "sentinel": {"addrs": "x"}}, "switch": {"peers": [[]]}}`,
		`{"uplink": {"addr": "a:1"}, "uplink": {"addr": "b:2"}}`,
		`{"read_time_limit_ms": -9223372036854775808, "max_clients": 99999999999999999999}`,
		`{"a": tru}`,
		`{"listen": {"addr": "127.0.0.1:7010"}} {}`,
		"{\"\xff\": \"\xfe\"}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in), "fuzz.json")
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and an error: %v", err)
			}
			for _, line := range lines(err) {
				if !strings.HasPrefix(line, "fuzz.json") {
					t.Fatalf("error line without the file name: %q", line)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		// WriteUplinkAddr finds exactly the value Parse read as uplink.addr.
		start, end, addr, err := uplinkAddrSpan([]byte(in), "fuzz.json")
		switch {
		case c.Uplink.Addr == "" && !errors.Is(err, ErrNoUplinkAddr) && (err != nil || addr != ""):
			t.Fatalf("no uplink.addr, but uplinkAddrSpan: %q, %v", addr, err)
		case c.Uplink.Addr != "" && (err != nil || addr != c.Uplink.Addr):
			t.Fatalf("uplinkAddrSpan: have %q, %v, want %q", addr, err, c.Uplink.Addr)
		case err == nil:
			var v string
			if json.Unmarshal([]byte(in[start:end]), &v) != nil || v != addr {
				t.Fatalf("span %q does not hold %q", in[start:end], addr)
			}
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(strings.NewReader(string(out)), "fuzz.json")
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !again.Equal(c) {
			t.Fatalf("round trip:\nhave %+v\nwant %+v", *again, *c)
		}
		if ReloadRefusal(c, again) != nil || len(Diff(c, again)) != 0 || UplinkChanged(c, again) || FollowChanged(c, again) {
			t.Fatalf("equal configs differ on reload")
		}
	})
}
