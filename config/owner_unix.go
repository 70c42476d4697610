//go:build unix

package config

import (
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of the file info describes, when
// they differ and the process may set them (as root, or a group it is in);
// otherwise f keeps the process's own.
func keepOwner(f *os.File, info os.FileInfo) {
	want, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	have, err := f.Stat()
	if err != nil {
		return
	}
	if st, ok := have.Sys().(*syscall.Stat_t); ok && st.Uid == want.Uid && st.Gid == want.Gid {
		return
	}
	_ = f.Chown(int(want.Uid), int(want.Gid)) // best effort: not permitted is not an error
}
