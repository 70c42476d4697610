//go:build !linux

package proxy

import (
	"net"
	"syscall"
)

// Readiness of our own is Linux's epoll: elsewhere every socket is Go's
// (poll_linux.go says what it changes).

func adopt(c net.Conn) net.Conn { return c }

type pconn struct{ net.Conn }

func (c *pconn) readable(bool) error           { return nil }
func (c *pconn) sysRead(b []byte) (int, error) { return 0, syscall.ENOTSUP }
func (c *pconn) parkRead(func()) bool          { return false }
func (c *pconn) askPark(int64) bool            { return false }

func parkCutoff() int64 { return 0 }
