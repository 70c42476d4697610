package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoUplinkAddr is returned by WriteUplinkAddr for a file without an
// uplink.addr key to rewrite (in Sentinel mode, say: the sentinels name the
// primary, and the file does not keep it).
var ErrNoUplinkAddr = errors.New("no uplink.addr key to rewrite")

// WriteUplinkAddr persists a new primary: it rewrites the configuration file
// at path with the value of uplink.addr replaced by addr (JSON-encoded), and
// every other byte unchanged: key order, indentation, spacing, line endings,
// other values. A file whose uplink.addr is already addr is left alone.
//
// The result must parse and validate as a whole (Parse), or nothing is
// written. The new file replaces the old atomically: it is written to a
// temporary file in the same directory, synced, given the old file's
// permissions (and owner, when the process may set it), renamed over the old
// one, and the directory is synced. When path is a symbolic link, the file
// it points to is replaced and the link stays. On an error the original file
// is unchanged, except for the one that says the new file is in place but
// the directory could not be synced.
//
// A file without an uplink.addr key is an error wrapping ErrNoUplinkAddr;
// the key is not added. Writers are not locked against each other, nor
// against an operator editing the file at the same moment.
func WriteUplinkAddr(path, addr string) error {
	if err := writeUplinkAddr(path, addr); err != nil {
		return fmt.Errorf("config: writing uplink.addr %s to %s: %w", addr, path, err)
	}
	return nil
}

func writeUplinkAddr(path, addr string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	f, err := os.Open(real)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return err
	}
	if len(data) > MaxFileSize {
		return fmt.Errorf("larger than %d bytes, not a configuration file", MaxFileSize)
	}
	name := filepath.Base(path)
	start, end, old, err := uplinkAddrSpan(data, name)
	if err != nil {
		return err
	}
	if old == addr {
		return nil
	}
	var value bytes.Buffer
	enc := json.NewEncoder(&value)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(addr); err != nil {
		return err
	}
	out := make([]byte, 0, len(data)+len(addr))
	out = append(out, data[:start]...)
	out = append(out, bytes.TrimSuffix(value.Bytes(), []byte("\n"))...)
	out = append(out, data[end:]...)
	if _, err := Parse(bytes.NewReader(out), name); err != nil {
		return fmt.Errorf("the result would not be a valid configuration:\n%w", err)
	}
	return replaceFile(real, out, info)
}

// uplinkAddrSpan finds the value of the "addr" member of the top-level
// "uplink" object: its byte span in data and its string value. Keys are
// matched after unescaping, as the parser matches them, and only at those
// two levels: an "addr" elsewhere (listen.addr) or nested deeper is not it.
func uplinkAddrSpan(data []byte, name string) (start, end int, value string, err error) {
	if err := checkSyntax(data, name); err != nil {
		return 0, 0, "", err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, 0, "", errors.New("not a JSON object")
	}
	if !seekMember(dec, "uplink") {
		return 0, 0, "", fmt.Errorf("%w (the file has no uplink object)", ErrNoUplinkAddr)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, 0, "", errors.New("uplink: not a JSON object")
	}
	if !seekMember(dec, "addr") {
		return 0, 0, "", ErrNoUplinkAddr
	}
	// The decoder stands just after the key: the value starts after the
	// colon and the white space around it.
	start = int(dec.InputOffset())
	for start < len(data) && strings.IndexByte(" \t\r\n:", data[start]) >= 0 {
		start++
	}
	tok, err := dec.Token()
	if err != nil {
		return 0, 0, "", err
	}
	s, ok := tok.(string)
	if !ok {
		return 0, 0, "", errors.New("uplink.addr: not a string")
	}
	end = int(dec.InputOffset())
	if start >= end || data[start] != '"' || data[end-1] != '"' {
		return 0, 0, "", errors.New("uplink.addr: cannot locate its value")
	}
	return start, end, s, nil
}

// seekMember reads the members of the object the decoder is in until the
// one named name, and reports whether it found it; the decoder then stands
// before its value. Checked by checkSyntax, the input has no syntax errors.
func seekMember(dec *json.Decoder, name string) bool {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if tok == name {
			return true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}

// replaceFile replaces the file at path, described by info, with data,
// atomically.
func replaceFile(path string, data []byte, info os.FileInfo) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-")
	if err != nil {
		return err
	}
	if err := writeTemp(tmp, data, info); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("written, but not yet durable: syncing %s: %w", dir, err)
	}
	return nil
}

// writeTemp fills the new file, gives it the old one's permissions and
// owner, syncs and closes it.
func writeTemp(tmp *os.File, data []byte, info os.FileInfo) error {
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		return err
	}
	keepOwner(tmp, info)
	if err := tmp.Sync(); err != nil {
		return err
	}
	return tmp.Close()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}
