package proc

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WaitFor calls check every `every` until it reports done or an error,
// until timeout has passed, or until ctx ends. The timeout's error carries
// check's last description of the state. Poll only what gives no signal to
// wait on: another process's state (INFO replication, a browser's page).
func WaitFor(ctx context.Context, timeout, every time.Duration, check func() (done bool, state string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done, state, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("not done within %v (%s)", timeout, state)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}
