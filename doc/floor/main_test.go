//go:build linux

package main

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestRelays checks that both relays carry bytes each way, for several
// connections at once and for a write larger than one read: the figures
// doc/floor.sh prints are those of relays that relay.
func TestRelays(t *testing.T) {
	echo := listen(t)
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	for _, mode := range []string{"pair", "loop"} {
		t.Run(mode, func(t *testing.T) {
			ln := listen(t)
			go serve(mode, ln, echo.Addr().String()) // runs until the test binary exits
			for i := range 3 {
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				for _, size := range []int{5, 40000} {
					msg := bytes.Repeat([]byte{byte('a' + i)}, size)
					if _, err := c.Write(msg); err != nil {
						t.Fatal(err)
					}
					got := make([]byte, size)
					if _, err := io.ReadFull(c, got); err != nil {
						t.Fatalf("%s, connection %d, %d bytes: %v", mode, i, size, err)
					}
					if !bytes.Equal(got, msg) {
						t.Fatalf("%s, connection %d: %d bytes came back changed", mode, i, size)
					}
				}
			}
		})
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
