package main

import "runtime/debug"

// version is set at build time:
//
//	go build -ldflags "-X main.version=1.2.3"
//
// Left at "dev", versionString falls back to what the Go toolchain
// recorded in the binary.
var version = "dev"

// versionString is version, or else the main module's version, or else
// the VCS revision the binary was built from ("3f2a9c1e0b7d-dirty"), or
// else "dev".
func versionString() string {
	if version != "dev" && version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
