package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// What a reload may change: everything but the listener addresses, which
// need a restart. Listener TLS files may change: a reload loads them again
// and new handshakes use them, connections already open keep theirs. The
// uplink connection keys (UplinkChanged) need a switch of every client to a
// new uplink connection; every other key, the health check, candidates and
// Sentinel settings included, applies in place.

// fixedKeys are the keys a reload refuses to change.
var fixedKeys = []string{"listen.addr", "listen_ro.addr", "listen_raw.addr", "admin.addr"}

// secretKeys are the passwords, never shown.
var secretKeys = map[string]bool{
	"uplink.pass": true, "uplink.sentinel.pass": true, "listen.pass": true,
	"listen_ro.pass": true, "admin.pass": true,
}

// urlKeys are lists of URLs that may hold a password.
var urlKeys = map[string]bool{"switch.peers": true}

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
		if o, n := oldVals[key], newVals[key]; !sameValue(o, n) {
			diff = append(diff, fmt.Sprintf("%s: %s -> %s", key, show(key, o), show(key, n)))
		}
	}
	return diff
}

// UplinkChanged reports whether a key of the uplink connection differs
// (uplink.addr, user, pass, tls, cacertfile, skipverify, certfile, keyfile,
// servername): such a reload moves every client to a new uplink connection.
// uplink.check_interval_ms, uplink.candidates and uplink.sentinel are not
// among them (see FollowChanged); other keys apply in place.
func UplinkChanged(old, new *Config) bool {
	o, n := cfgOrZero(old).Uplink, cfgOrZero(new).Uplink
	return o.connection() != n.connection()
}

// uplinkConn is what a connection to the uplink is made with.
type uplinkConn struct {
	addr, user, pass, caCertFile, certFile, keyFile, serverName string
	tls, skipVerify                                             bool
}

func (u Uplink) connection() uplinkConn {
	return uplinkConn{addr: u.Addr, user: u.User, pass: u.Pass, caCertFile: u.CACertFile,
		certFile: u.CertFile, keyFile: u.KeyFile, serverName: u.ServerName, tls: u.TLS, skipVerify: u.SkipVerify}
}

// FollowChanged reports whether how the proxy finds and watches its primary
// differs: uplink.check_interval_ms, uplink.candidates or any
// uplink.sentinel key. Such a change applies in place.
func FollowChanged(old, new *Config) bool {
	oldVals, newVals := leaves(old), leaves(new)
	for _, key := range keys() {
		follow := key == "uplink.check_interval_ms" || key == "uplink.candidates" || strings.HasPrefix(key, "uplink.sentinel.")
		if follow && !sameValue(oldVals[key], newVals[key]) {
			return true
		}
	}
	return false
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

// leaves maps every key path of c to its value: a string, bool, int or
// []string.
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

// sameValue compares two values of leaves; a nil list equals an empty one.
func sameValue(a, b any) bool {
	if la, ok := a.([]string); ok {
		lb, ok := b.([]string)
		return ok && slices.Equal(la, lb)
	}
	return a == b
}

// show formats a value for a log line: passwords redacted, strings quoted
// only when empty or when they would not read as one word, lists in
// brackets ("[10.0.0.2:6379, 10.0.0.3:6379]", "[]").
func show(key string, v any) string {
	if list, ok := v.([]string); ok {
		shown := make([]string, len(list))
		for i, s := range list {
			if urlKeys[key] {
				s = redactURL(s)
			}
			shown[i] = showString(s)
		}
		return "[" + strings.Join(shown, ", ") + "]"
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Sprint(v)
	}
	if secretKeys[key] {
		s = redact(s)
	}
	return showString(s)
}

func showString(s string) string {
	if q := strconv.Quote(s); s == "" || q[1:len(q)-1] != s || strings.ContainsAny(s, " \t,[]") {
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
