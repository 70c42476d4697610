//go:build linux

package config

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the user the unwritable-directory test runs as when the tests
// run as root, for whom no directory is unwritable.
const nobody = 65534

// TestWriteUplinkAddrUnwritableDir: without write permission on the
// directory, the write fails and the original stays as it was.
func TestWriteUplinkAddrUnwritableDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "conf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(minimalJSON), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil { // the file itself is writable
		t.Fatal(err)
	}

	var msg string
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		err := WriteUplinkAddr(path, "10.0.0.2:6379")
		if err == nil {
			t.Fatal("no error")
		}
		msg = err.Error()
	} else {
		msg = writeAsNobody(t, base, path, "10.0.0.2:6379")
	}
	t.Log(msg)
	if !strings.Contains(msg, "permission denied") || !strings.Contains(msg, path) {
		t.Errorf("have %q, want a permission error naming the file", msg)
	}
	if have := readString(t, path); have != minimalJSON {
		t.Errorf("the file changed: %q", have)
	}
	assertOnlyFile(t, path)
}

// writeAsNobody runs WriteUplinkAddr in a copy of the test binary as user
// nobody (TestWriteUplinkAddrHelper) and returns what it printed.
func writeAsNobody(t *testing.T, base, path, addr string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(base, "config.test")
	copyFile(t, self, bin)
	// t.TempDir makes two levels of private directories: let nobody in.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestWriteUplinkAddrHelper$")
	cmd.Env = append(os.Environ(), "WRITE_UPLINK_PATH="+path, "WRITE_UPLINK_ADDR="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("cannot run the helper as nobody: %v\n%s", err, out)
	}
	return string(out)
}

// TestWriteUplinkAddrHelper is the process writeAsNobody starts; it does
// nothing in a normal run.
func TestWriteUplinkAddrHelper(t *testing.T) {
	path := os.Getenv("WRITE_UPLINK_PATH")
	if path == "" {
		t.Skip("helper process only")
	}
	err := WriteUplinkAddr(path, os.Getenv("WRITE_UPLINK_ADDR"))
	if err == nil {
		os.Stdout.WriteString("written\n")
		return
	}
	os.Stdout.WriteString(err.Error() + "\n")
}

// TestWriteUplinkAddrOwner: as root, the new file keeps the old one's owner
// and group.
func TestWriteUplinkAddrOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root may give a file away")
	}
	path := writeConfig(t, minimalJSON, 0o640)
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := WriteUplinkAddr(path, "10.0.0.2:6379"); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if st.Uid != nobody || st.Gid != nobody || info.Mode().Perm() != 0o640 {
		t.Errorf("have uid %d gid %d mode %v, want %d %d -rw-r-----", st.Uid, st.Gid, info.Mode().Perm(), nobody, nobody)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
