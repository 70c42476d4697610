package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// What a reload may change (CONTRACT.md §2): everything but the listener
// addresses, which need a restart. Listener TLS files may change: a reload
// loads them again and new handshakes use them, connections already open keep
// theirs. Uplink keys (UplinkChanged) need a switch of every client to a new
// uplink connection; every other key applies in place.

// fixedKeys are the keys a reload refuses to change.
var fixedKeys = []string{"listen.addr", "listen_raw.addr", "admin.addr"}

// secretKeys are the passwords, never shown.
var secretKeys = map[string]bool{"uplink.pass": true, "listen.pass": true, "admin.pass": true}

// ReloadRefusal returns why new cannot replace old on a reload, or nil when
// it can: one *KeyError a changed listener address, joined ("listen.addr:
// cannot change on reload (127.0.0.1:7010 -> 127.0.0.1:7011); restart the
// proxy instead").
func ReloadRefusal(old, new *Config) error {
	oldVals, newVals := leaves(old), leaves(new)
	var errs []error
	for _, key := range fixedKeys {
		if o, n := oldVals[key], newVals[key]; o != n {
			errs = append(errs, &KeyError{
				Key: key,
				Msg: fmt.Sprintf("cannot change on reload (%s -> %s); restart the proxy instead", show(key, o), show(key, n)),
			})
		}
	}
	return errors.Join(errs...)
}

// Diff lists the keys that differ between old and new as "key: old -> new",
// in the order of the file's keys, for the reload log line. Passwords show as
// "***" ("uplink.pass: \"\" -> ***").
func Diff(old, new *Config) []string {
	oldVals, newVals := leaves(old), leaves(new)
	var diff []string
	for _, key := range keys() {
		if o, n := oldVals[key], newVals[key]; o != n {
			diff = append(diff, fmt.Sprintf("%s: %s -> %s", key, show(key, o), show(key, n)))
		}
	}
	return diff
}

// UplinkChanged reports whether any uplink.* key differs: such a reload
// moves every client to a new uplink connection. Other keys apply in place.
func UplinkChanged(old, new *Config) bool {
	return cfgOrZero(old).Uplink != cfgOrZero(new).Uplink
}

// keys returns every key path of the configuration, in the file's order
// ("uplink.addr", ..., "client_idle_timeout_ms").
func keys() []string {
	var keys []string
	walkLeaves(reflect.ValueOf(Config{}), "", func(key string, _ reflect.Value) {
		keys = append(keys, key)
	})
	return keys
}

// leaves maps every key path of c to its value.
func leaves(c *Config) map[string]any {
	vals := make(map[string]any)
	walkLeaves(reflect.ValueOf(*cfgOrZero(c)), "", func(key string, v reflect.Value) {
		vals[key] = v.Interface()
	})
	return vals
}

// walkLeaves calls fn for every non-struct field under v, depth first, in
// field order, with its key path.
func walkLeaves(v reflect.Value, prefix string, fn func(key string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		key := joinKey(prefix, name)
		if f := v.Field(i); f.Kind() == reflect.Struct {
			walkLeaves(f, key, fn)
		} else {
			fn(key, f)
		}
	}
}

// show formats a value for a log line: passwords redacted, strings quoted
// only when empty or when they would not read as one word.
func show(key string, v any) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprint(v)
	}
	if secretKeys[key] {
		s = redact(s)
	}
	if q := strconv.Quote(s); s == "" || q[1:len(q)-1] != s || strings.ContainsAny(s, " \t") {
		return q
	}
	return s
}

func cfgOrZero(c *Config) *Config {
	if c == nil {
		return &Config{}
	}
	return c
}
