package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// DefaultTimeout bounds every Client call unless SetTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Client is a minimal RESP client for tests: commands are sent as arrays of
// bulk strings, replies are parsed by ReadValue. Every call sets a deadline
// on the connection (DefaultTimeout, or SetTimeout's). A Client is not safe
// for concurrent use.
//
// A transport or protocol error is returned as the error; a Redis error
// reply is not an error of the call but a Value whose Err is non-nil.
type Client struct {
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	timeout time.Duration
}

// Dial connects to addr over TCP within timeout.
func Dial(addr string, timeout time.Duration) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	return NewClient(conn), nil
}

// DialTLS connects to addr over TLS with cfg; the handshake is done within
// timeout.
func DialTLS(addr string, cfg *tls.Config, timeout time.Duration) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	return NewClient(conn), nil
}

// NewClient wraps an established connection (for net.Pipe and the like).
func NewClient(conn net.Conn) *Client {
	return &Client{
		conn:    conn,
		br:      bufio.NewReaderSize(conn, 64<<10),
		bw:      bufio.NewWriterSize(conn, 64<<10),
		timeout: DefaultTimeout,
	}
}

// MustDial dials addr (TCP, DefaultTimeout) or fails the test; the client
// is closed at the test's cleanup.
func MustDial(tb testing.TB, addr string) *Client {
	tb.Helper()
	c, err := Dial(addr, DefaultTimeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
		return nil
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// SetTimeout sets the deadline of every later call (d > 0).
func (c *Client) SetTimeout(d time.Duration) { c.timeout = d }

// Conn is the underlying connection. Bytes already buffered by the client
// are not visible there: after Do or Receive, read with ReadLine, ReadRaw
// or ReadEOF instead.
func (c *Client) Conn() net.Conn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) deadline() time.Time { return time.Now().Add(c.timeout) }

// Do sends one command and returns its reply. Arguments may be string,
// []byte, int, int64 or float64.
func (c *Client) Do(args ...any) (Value, error) {
	if err := c.Send(args...); err != nil {
		return Value{}, err
	}
	if err := c.Flush(); err != nil {
		return Value{}, err
	}
	return c.Receive()
}

// Send buffers one command without flushing it (for pipelining).
func (c *Client) Send(args ...any) error {
	if len(args) == 0 {
		return errors.New("redistest: empty command")
	}
	b, err := AppendCommand(nil, args...)
	if err != nil {
		return err
	}
	if err := c.conn.SetWriteDeadline(c.deadline()); err != nil {
		return err
	}
	_, err = c.bw.Write(b)
	return err
}

// Flush writes the buffered commands.
func (c *Client) Flush() error {
	if err := c.conn.SetWriteDeadline(c.deadline()); err != nil {
		return err
	}
	return c.bw.Flush()
}

// Receive reads the next reply, push messages ('>') included.
func (c *Client) Receive() (Value, error) {
	if err := c.conn.SetReadDeadline(c.deadline()); err != nil {
		return Value{}, err
	}
	return ReadValue(c.br)
}

// Pipeline sends cmds while it reads their replies, so that neither side
// can block the other however many there are, and returns the replies in
// order. The whole pipeline has one deadline.
func (c *Client) Pipeline(cmds ...[]any) ([]Value, error) {
	var payload []byte
	for i, cmd := range cmds {
		if len(cmd) == 0 {
			return nil, fmt.Errorf("redistest: command %d is empty", i)
		}
		var err error
		if payload, err = AppendCommand(payload, cmd...); err != nil {
			return nil, err
		}
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	if err := c.conn.SetDeadline(c.deadline()); err != nil {
		return nil, err
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.conn.Write(payload)
		werr <- err
	}()
	replies := make([]Value, 0, len(cmds))
	var rerr error
	for range cmds {
		v, err := ReadValue(c.br)
		if err != nil {
			rerr = err
			// unblock the writer if it is stuck
			_ = c.conn.SetWriteDeadline(time.Now())
			break
		}
		replies = append(replies, v)
	}
	if err := <-werr; rerr == nil {
		rerr = err
	}
	return replies, rerr
}

// WriteRaw writes b as it is, after any buffered commands.
func (c *Client) WriteRaw(b []byte) error {
	if err := c.Flush(); err != nil {
		return err
	}
	_, err := c.conn.Write(b)
	return err
}

// ReadLine reads one line and returns it without its \r\n (or \n).
func (c *Client) ReadLine() (string, error) {
	if err := c.conn.SetReadDeadline(c.deadline()); err != nil {
		return "", err
	}
	line, err := c.br.ReadString('\n')
	if err != nil {
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// ReadRaw reads exactly n bytes.
func (c *Client) ReadRaw(n int) ([]byte, error) {
	if err := c.conn.SetReadDeadline(c.deadline()); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c.br, b)
	return b, err
}

// ReadEOF waits until the peer closes the connection. It returns nil on
// EOF (or a reset), and an error if bytes arrive first or the deadline
// passes.
func (c *Client) ReadEOF() error {
	if err := c.conn.SetReadDeadline(c.deadline()); err != nil {
		return err
	}
	var buf [512]byte
	n, err := c.br.Read(buf[:])
	switch {
	case n > 0:
		return fmt.Errorf("redistest: want the connection closed, have %q", buf[:n])
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return nil
	case err == nil:
		return errors.New("redistest: want the connection closed, have an empty read")
	}
	return err
}

// AppendCommand appends args to b as a RESP array of bulk strings.
// Arguments may be string, []byte, int, int64 or float64.
func AppendCommand(b []byte, args ...any) ([]byte, error) {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for i, a := range args {
		var s []byte
		switch a := a.(type) {
		case string:
			s = []byte(a)
		case []byte:
			s = a
		case int:
			s = strconv.AppendInt(nil, int64(a), 10)
		case int64:
			s = strconv.AppendInt(nil, a, 10)
		case float64:
			s = strconv.AppendFloat(nil, a, 'g', -1, 64)
		default:
			return nil, fmt.Errorf("redistest: argument %d: unsupported type %T", i, a)
		}
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, '\r', '\n')
		b = append(b, s...)
		b = append(b, '\r', '\n')
	}
	return b, nil
}
