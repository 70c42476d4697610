//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// The proxy's own readiness (poll_linux.go, pconn_linux.go) against the
// races that make it hard: data arriving between a read and the wait, a
// read that fills its buffer, a close or a deadline while parked, and
// slots reused while events for their last owner are still queued.

// pollPair returns both ends of a loopback TCP connection, each served by
// the poller.
func pollPair(t testing.TB) (a, b *pconn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	dc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ac := <-ch
	if ac == nil {
		t.Fatal("accept failed")
	}
	pa, ok1 := adopt(dc).(*pconn)
	pb, ok2 := adopt(ac).(*pconn)
	if !ok1 || !ok2 {
		t.Fatalf("not adopted by the poller (%v)", pollErr)
	}
	t.Cleanup(func() { pa.Close(); pb.Close() })
	return pa, pb
}

// Ping-pong with messages cut in random pieces at random moments: every
// byte that arrives after a read is announced by an event, or the
// exchange stalls (and the deadline says so).
func TestPollNoLostWakeup(t *testing.T) {
	a, b := pollPair(t)
	const rounds = 20000
	dl := time.Now().Add(30 * time.Second)
	a.SetReadDeadline(dl)
	b.SetReadDeadline(dl)
	errc := make(chan error, 1)
	go func() { // b echoes what it reads, in the pieces it reads
		buf := make([]byte, 64)
		for {
			n, err := b.Read(buf)
			if err != nil {
				errc <- err
				return
			}
			if _, err := b.Write(buf[:n]); err != nil {
				errc <- err
				return
			}
		}
	}()
	r := rand.New(rand.NewPCG(1, 2))
	msg := make([]byte, 200)
	got := make([]byte, 200)
	for i := range rounds {
		n := 1 + r.IntN(len(msg))
		for j := range n {
			msg[j] = byte(i + j)
		}
		for off := 0; off < n; {
			k := min(n-off, 1+r.IntN(n))
			if _, err := a.Write(msg[off : off+k]); err != nil {
				t.Fatal(err)
			}
			off += k
			if r.IntN(4) == 0 {
				runtime.Gosched()
			}
		}
		if _, err := io.ReadFull(a, got[:n]); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if !bytes.Equal(got[:n], msg[:n]) {
			t.Fatalf("round %d: echoed bytes differ", i)
		}
	}
	a.Close()
	if err := <-errc; err == nil {
		t.Fatal("echo ended without an error")
	}
}

// A read that fills its buffer reads again without waiting for an event:
// the rest of a large write is not announced again.
func TestPollFullBufferReadsOn(t *testing.T) {
	a, b := pollPair(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go b.Write(want)
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	buf := make([]byte, 100)
	for off := 0; off < len(got); {
		n, err := a.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", off, err)
		}
		off += copy(got[off:], buf[:n])
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
}

func TestPollCloseWhileParked(t *testing.T) {
	a, _ := pollPair(t) // nothing is written to a
	_, b := pollPair(t) // b's peer does not read
	readErr := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		readErr <- err
	}()
	// b writes until its send buffer is full, then parks.
	writeErr := make(chan error, 1)
	go func() {
		chunk := make([]byte, 1<<20)
		for {
			if _, err := b.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	waitParked(t, &a.rd)
	waitParked(t, &b.wr)
	a.Close()
	b.Close()
	for what, ch := range map[string]chan error{"read": readErr, "write": writeErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("parked %s after Close: %v, want net.ErrClosed", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("parked %s not woken by Close", what)
		}
	}
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// waitParked waits until w's waiter has cleared its readiness and found
// nothing: it is parked, or about to be.
func waitParked(t *testing.T, w *pwait) {
	t.Helper()
	waitFor(t, "a parked waiter", func() bool { return !w.ready.Load() })
}

func TestPollDeadlineWhileParked(t *testing.T) {
	a, b := pollPair(t)
	buf := make([]byte, 10)

	start := time.Now()
	a.SetReadDeadline(start.Add(80 * time.Millisecond))
	_, err := a.Read(buf)
	if !isTimeout(err) {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("timed out after %v, before its deadline", d)
	}

	// A deadline moved later while parked: the first one does not fire.
	start = time.Now()
	a.SetReadDeadline(start.Add(50 * time.Millisecond))
	done := make(chan error, 1)
	go func() { _, err := a.Read(buf); done <- err }()
	a.SetReadDeadline(start.Add(300 * time.Millisecond))
	if err := <-done; !isTimeout(err) {
		t.Fatalf("moved deadline: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("timed out after %v: the old deadline fired", d)
	}

	// A deadline in the past, set from another goroutine, wakes a parked
	// read at once (how the proxy wakes an idle session).
	a.SetReadDeadline(time.Time{})
	go func() { _, err := a.Read(buf); done <- err }()
	waitParked(t, &a.rd)
	start = time.Now()
	a.SetReadDeadline(time.Now())
	if err := <-done; !isTimeout(err) {
		t.Fatalf("deadline set in the past: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("woken after %v", d)
	}

	// Cleared, the connection reads again; a past deadline fails a read
	// even with data there, as Go's connections do.
	b.Write([]byte("hello"))
	a.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := a.Read(buf); !isTimeout(err) {
		t.Errorf("read with a past deadline and data waiting: %v", err)
	}
	a.SetReadDeadline(time.Time{})
	if n, err := a.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Errorf("after clearing the deadline: %q %v", buf[:n], err)
	}

	// A write deadline while parked on a full send buffer.
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := a.Write(make([]byte, 64<<20))
	if !isTimeout(err) || n >= 64<<20 {
		t.Errorf("write to a peer that does not read: %d bytes, %v", n, err)
	}
}

// The end of the input, arriving with the last data (one event for
// both), is still read: it needs a read of its own after the data.
func TestPollEOF(t *testing.T) {
	for i := range 200 {
		a, b := pollPair(t)
		b.Write([]byte("bye"))
		b.Close()
		a.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(a)
		if err != nil || string(got) != "bye" {
			t.Fatalf("pair %d: ReadAll: %q %v", i, got, err)
		}
		for range 2 { // the end is read again, not waited for
			if _, err := a.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("pair %d: read after the end: %v", i, err)
			}
		}
		a.Close()
	}
}

// Connections opened and closed by the thousand, in parallel: a slot
// reused while events for its last owner are still queued never hands
// them to the new one, and no exchange stalls.
func TestPollSlotReuse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				pc := adopt(c)
				defer pc.Close()
				pc.SetDeadline(time.Now().Add(20 * time.Second))
				io.Copy(pc, pc)
			}()
		}
	}()
	const workers, each = 8, 250
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					errs <- err
					return
				}
				pc := adopt(c)
				pc.SetDeadline(time.Now().Add(20 * time.Second))
				msg := fmt.Sprintf("worker %d conn %d", w, i)
				pc.Write([]byte(msg))
				got := make([]byte, len(msg))
				_, err = io.ReadFull(pc, got)
				pc.Close()
				if err != nil || string(got) != msg {
					errs <- fmt.Errorf("%s: got %q, %v", msg, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Sessions' plain TCP connections, both sides, are the poller's.
func TestSessionsUseThePoller(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "PONG", "PING")
	var s *session
	p.forEachSession(func(x *session) { s = x })
	if _, ok := s.conn.Conn.(*pconn); !ok {
		t.Errorf("client connection is %T, want the poller's", s.conn.Conn)
	}
	if u := s.cur.Load(); u == nil {
		t.Error("no uplink connection")
	} else if _, ok := u.conn.(*pconn); !ok {
		t.Errorf("uplink connection is %T, want the poller's", u.conn)
	}
}
