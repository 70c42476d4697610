package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oddJSON is a valid configuration in an unusual layout: listen, with its
// own "addr", before uplink; tabs, no spaces, spaces before colons, CRLF
// line ends; an "addr" inside a string value; keys the writer must leave
// in their order.
const oddJSON = "{\r\n" +
	"\t\"listen\" :{ \"addr\":\"127.0.0.1:7010\",\"pass\": \"{\\\"uplink\\\": {\\\"addr\\\": \\\"x\\\"}}\" },\r\n" +
	"  \"max_clients\":   5 ,\r\n" +
	"\"uplink\"\t:\t{\"pass\":\"p\",  \"addr\"  :  \"127.0.0.1:6379\" , \"user\":\"u\",\r\n" +
	"   \"candidates\": [\"10.0.0.2:6379\", \"127.0.0.1:6379\"], \"sentinel\": {}},\r\n" +
	"\"admin\":{\"addr\":\"127.0.0.1:7012\"}}\r\n"

func writeConfig(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not masked by the umask
		t.Fatal(err)
	}
	return path
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertOnlyFile: the write left nothing else (no temporary file) behind.
func assertOnlyFile(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(path) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only %s", names, filepath.Base(path))
	}
}

func TestWriteUplinkAddr(t *testing.T) {
	tests := []struct {
		name, in, addr, want string
	}{
		{"example layout", minimalJSON, "10.0.0.2:6379",
			strings.Replace(minimalJSON, `"addr": "127.0.0.1:6379"`, `"addr": "10.0.0.2:6379"`, 1)},
		{"odd layout, listen.addr first, addr in a string", oddJSON, "10.0.0.2:6379",
			strings.Replace(oddJSON, `"addr"  :  "127.0.0.1:6379"`, `"addr"  :  "10.0.0.2:6379"`, 1)},
		{"escaped key and value", `{"uplink": {"\u0061ddr": "127.0.0.1\u003a6379"}, "listen": {"addr": "127.0.0.1:7010"}, "admin": {"addr": "127.0.0.1:7012"}}`,
			"[::1]:6380",
			`{"uplink": {"\u0061ddr": "[::1]:6380"}, "listen": {"addr": "127.0.0.1:7010"}, "admin": {"addr": "127.0.0.1:7012"}}`},
		{"value that needs escaping", minimalJSON, `we"ird<&>:6379`,
			strings.Replace(minimalJSON, `"addr": "127.0.0.1:6379"`, `"addr": "we\"ird<&>:6379"`, 1)},
		{"longer and shorter", strings.Replace(minimalJSON, "127.0.0.1:6379", "redis-primary.internal.example.com:6379", 1), "h:1",
			strings.Replace(minimalJSON, "127.0.0.1:6379", "h:1", 1)},
		{"uplink last, no trailing newline", `{"listen":{"addr":"127.0.0.1:7010"},"admin":{"addr":"127.0.0.1:7012"},"uplink":{"user":"u","pass":"p","addr":"127.0.0.1:6379"}}`,
			"10.0.0.3:6379",
			`{"listen":{"addr":"127.0.0.1:7010"},"admin":{"addr":"127.0.0.1:7012"},"uplink":{"user":"u","pass":"p","addr":"10.0.0.3:6379"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.in, 0o640)
			if err := WriteUplinkAddr(path, tt.addr); err != nil {
				t.Fatal(err)
			}
			if have := readString(t, path); have != tt.want {
				t.Errorf("have %q\nwant %q", have, tt.want)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.Uplink.Addr != tt.addr {
				t.Errorf("uplink.addr: have %q, want %q", c.Uplink.Addr, tt.addr)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if have := info.Mode().Perm(); have != 0o640 {
				t.Errorf("mode: have %v, want -rw-r-----", have)
			}
			assertOnlyFile(t, path)
		})
	}
}

// TestWriteUplinkAddrKeepsEverythingElse: nothing but uplink.addr differs
// in the result as a configuration either.
func TestWriteUplinkAddrKeepsEverythingElse(t *testing.T) {
	path := writeConfig(t, oddJSON, 0o600)
	before, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteUplinkAddr(path, "10.0.0.2:6379"); err != nil {
		t.Fatal(err)
	}
	after, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	assertLines(t, "Diff", Diff(before, after), []string{"uplink.addr: 127.0.0.1:6379 -> 10.0.0.2:6379"})
	if after.Listen.Addr != "127.0.0.1:7010" || after.Listen.Pass != `{"uplink": {"addr": "x"}}` {
		t.Errorf("listen changed: %+v", after.Listen)
	}
}

func TestWriteUplinkAddrRefused(t *testing.T) {
	sentinelJSON := `{"uplink": {"sentinel": {"addrs": ["10.0.0.8:26379"], "master": "m"}},
	  "listen": {"addr": "127.0.0.1:7010"}, "admin": {"addr": "127.0.0.1:7012"}}`
	tests := []struct {
		name, in, addr string
		is             error  // errors.Is, when not nil
		contains       string // in the message
	}{
		{"no uplink.addr (Sentinel mode)", sentinelJSON, "10.0.0.2:6379", ErrNoUplinkAddr, "no uplink.addr key to rewrite"},
		{"no uplink object", `{"listen": {"addr": "127.0.0.1:7010"}}`, "10.0.0.2:6379", ErrNoUplinkAddr, "no uplink object"},
		{"addr only nested deeper", `{"uplink": {"sentinel": {"addr": "10.0.0.1:6379"}}}`, "10.0.0.2:6379", ErrNoUplinkAddr, ""},
		{"invalid address", minimalJSON, "10.0.0.2", nil,
			"the result would not be a valid configuration:\nconfig.json: uplink.addr: \"10.0.0.2\" is not host:port"},
		{"address of the proxy", minimalJSON, "127.0.0.1:7010", nil, "uplink.addr: same address as listen.addr"},
		{"file invalid otherwise", strings.Replace(minimalJSON, `"admin"`, `"admn"`, 1), "10.0.0.2:6379", nil, "config.json: admn: unknown key"},
		{"duplicate uplink", `{"uplink": {"addr": "127.0.0.1:6379"}, "uplink": {"addr": "127.0.0.1:6380"}, "listen": {"addr": "127.0.0.1:7010"}, "admin": {"addr": "127.0.0.1:7012"}}`,
			"10.0.0.2:6379", nil, "uplink: duplicate key"},
		{"uplink.addr not a string", `{"uplink": {"addr": 6379}}`, "10.0.0.2:6379", nil, "uplink.addr: not a string"},
		{"syntax error", `{"uplink": {"addr": "127.0.0.1:6379"}`, "10.0.0.2:6379", nil, "config.json:1:38: unexpected end of JSON input"},
		{"not an object", `["uplink"]`, "10.0.0.2:6379", nil, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.in, 0o644)
			err := WriteUplinkAddr(path, tt.addr)
			if err == nil {
				t.Fatalf("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v: not %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "config: writing uplink.addr "+tt.addr+" to "+path+": ") || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("have %q, want it to name the address, the file and %q", err, tt.contains)
			}
			if have := readString(t, path); have != tt.in {
				t.Errorf("the file changed: %q", have)
			}
			assertOnlyFile(t, path)
		})
	}
}

func TestWriteUplinkAddrMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	err := WriteUplinkAddr(path, "10.0.0.2:6379")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("have %v, want a not-exist error", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was created: %v", err)
	}
}

// TestWriteUplinkAddrSame: the address already in the file writes nothing.
func TestWriteUplinkAddrSame(t *testing.T) {
	path := writeConfig(t, minimalJSON, 0o600)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteUplinkAddr(path, "127.0.0.1:6379"); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the file was replaced")
	}
}

// TestWriteUplinkAddrReplaces: the new file is a new inode renamed over the
// old (a reader holding the old file keeps reading the old content).
func TestWriteUplinkAddrReplaces(t *testing.T) {
	path := writeConfig(t, minimalJSON, 0o600)
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := WriteUplinkAddr(path, "10.0.0.2:6379"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(minimalJSON)+10)
	n, _ := old.Read(b)
	if string(b[:n]) != minimalJSON {
		t.Errorf("the old file was written in place: %q", b[:n])
	}
}

func TestWriteUplinkAddrSymlink(t *testing.T) {
	target := writeConfig(t, minimalJSON, 0o600)
	link := filepath.Join(t.TempDir(), "link.json")
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
	if err := WriteUplinkAddr(link, "10.0.0.2:6379"); err != nil {
		t.Fatal(err)
	}
	info, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced by a file")
	}
	if c, err := Load(target); err != nil || c.Uplink.Addr != "10.0.0.2:6379" {
		t.Errorf("target: have %+v, %v, want uplink.addr 10.0.0.2:6379", c, err)
	}
	assertOnlyFile(t, target)
}
