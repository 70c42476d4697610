package config

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// minimalJSON is the smallest valid configuration, as in config_example.json.
const minimalJSON = `{
  "uplink": {"addr": "127.0.0.1:6379"},
  "listen": {"addr": "127.0.0.1:7010"},
  "admin": {"addr": "127.0.0.1:7012"}
}`

// minimal returns minimalJSON as a generic JSON object, to modify.
func minimal(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(minimalJSON), &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// with returns m as JSON with the dotted key set to v, creating objects on
// the way; m is not modified.
func with(tb testing.TB, m map[string]any, key string, v any) string {
	tb.Helper()
	cp := deepCopy(m)
	obj := cp
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := obj[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[p] = next
		}
		obj = next
	}
	obj[parts[len(parts)-1]] = v
	return marshal(tb, cp)
}

func deepCopy(m map[string]any) map[string]any {
	cp := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = deepCopy(sub)
		}
		cp[k] = v
	}
	return cp
}

func marshal(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// validConfig is minimalJSON as a Config, defaults applied.
func validConfig() *Config {
	c := Default()
	c.Uplink.Addr = "127.0.0.1:6379"
	c.Listen.Addr = "127.0.0.1:7010"
	c.Admin.Addr = "127.0.0.1:7012"
	return c
}

func mustParse(tb testing.TB, in string) *Config {
	tb.Helper()
	c, err := Parse(strings.NewReader(in), "config.json")
	if err != nil {
		tb.Fatalf("Parse(%s): %v", in, err)
	}
	return c
}

// parseErrors parses in, which must fail, and returns the error lines.
func parseErrors(tb testing.TB, in string) []string {
	tb.Helper()
	c, err := Parse(strings.NewReader(in), "config.json")
	if err == nil {
		tb.Fatalf("Parse(%s) = %+v, want an error", in, c)
	}
	if c != nil {
		tb.Errorf("Parse(%s) returned a config with an error", in)
	}
	return lines(err)
}

// lines splits a (joined) error into its lines; nil has none.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func assertLines(tb testing.TB, what string, have, want []string) {
	tb.Helper()
	if !slices.Equal(have, want) {
		tb.Errorf("%s:\nhave %s\nwant %s", what, strings.Join(have, "\n     "), strings.Join(want, "\n     "))
	}
}

// keyErrors returns the *KeyErrors joined in err.
func keyErrors(tb testing.TB, err error) []*KeyError {
	tb.Helper()
	var all []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	} else if err != nil {
		all = []error{err}
	}
	var kes []*KeyError
	for _, e := range all {
		var ke *KeyError
		if !errors.As(e, &ke) {
			tb.Fatalf("%v: not a *KeyError", e)
		}
		kes = append(kes, ke)
	}
	return kes
}
