package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
	"unsafe"
)

// peerClosed reports whether the peer of c has closed its side of the TCP
// connection (a FIN or a reset has arrived: the kernel's state is
// CLOSE-WAIT or CLOSE), whatever data is still unread before that.
func peerClosed(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tcp, ok := c.(syscall.Conn) // *net.TCPConn or the poller's *pconn
	if !ok {
		return false
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return true
	}
	var info syscall.TCPInfo
	var serr syscall.Errno
	err = raw.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(info))
		_, _, serr = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err != nil {
		return true // the connection is closed here already
	}
	if serr != 0 {
		return false
	}
	const tcpCloseWait, tcpClose = 8, 7
	return info.State == tcpCloseWait || info.State == tcpClose
}
