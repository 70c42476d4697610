package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build compiles the main package at the root of the module the working
// directory belongs to (redis-proxy itself) into the file out, with the
// go build flags given ("-race", "-ldflags", "-X main.version=v1"). The
// error carries go build's output.
func Build(ctx context.Context, out string, flags ...string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return errors.New("not inside the redis-proxy module: run from the repository")
	}
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", out, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Dir(mod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), cmd.Dir, err, b)
	}
	return nil
}

// TestBinary is redis-proxy built for a test binary's run: on first use,
// once, with -race when the tests run with it, into a temporary directory
// that Remove deletes (from TestMain, after m.Run).
type TestBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildDeadline bounds a TestBinary's go build (a cold cache on a busy
// machine is slow).
const buildDeadline = 5 * time.Minute

// Path builds the binary on its first call and returns its path; a build
// that failed fails tb.
func (b *TestBinary) Path(tb testing.TB) string {
	tb.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "redis-proxy-test-"); b.err != nil {
			return
		}
		var flags []string
		if Race {
			flags = []string{"-race"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), buildDeadline)
		defer cancel()
		b.path = filepath.Join(b.dir, "redis-proxy")
		b.err = Build(ctx, b.path, flags...)
	})
	if b.err != nil {
		tb.Fatalf("building redis-proxy: %v", b.err)
	}
	return b.path
}

// Remove deletes what Path built.
func (b *TestBinary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
