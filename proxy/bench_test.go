package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

// BenchmarkForward measures the session hot path over loopback: GETs of a
// value through the proxy, pipelined or not, with the same run against
// Redis directly for comparison. The client side allocates nothing, so
// allocs/op is the proxy's (in this process).
func BenchmarkForward(b *testing.B) {
	srv := redistest.Start(b)
	p := startProxy(b, testConfig(srv.Addr))
	cases := []struct {
		name  string
		depth int
		size  int
	}{
		{"P1-64B", 1, 64},
		{"P16-64B", 16, 64},
		{"P1-16KiB", 1, 16 << 10},
		{"P1-1MiB", 1, 1 << 20},
	}
	for _, target := range []struct{ name, addr string }{{"proxy", p.Addr().String()}, {"direct", srv.Addr}} {
		for _, bc := range cases {
			b.Run(target.name+"/"+bc.name, func(b *testing.B) {
				benchGets(b, target.addr, bc.depth, bc.size)
			})
		}
	}
}

func benchGets(b *testing.B, addr string, depth, size int) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	key := fmt.Sprintf("bench:%d", size)
	val := strings.Repeat("v", size)
	fmt.Fprintf(conn, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, size, val)
	ok := make([]byte, 5)
	if _, err := io.ReadFull(conn, ok); err != nil || string(ok) != "+OK\r\n" {
		b.Fatalf("SET: %q %v", ok, err)
	}
	one := fmt.Sprintf("*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
	req := []byte(strings.Repeat(one, depth))
	replyLen := len(fmt.Sprintf("$%d\r\n", size)) + size + 2
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(replyLen))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		for left := replyLen * depth; left > 0; {
			n, err := conn.Read(buf[:min(len(buf), left)])
			if err != nil {
				b.Fatal(err)
			}
			left -= n
		}
	}
	b.StopTimer()
	_ = bytes.MinRead
}

// BenchmarkPauseWithSubscribers: the time a pause takes with 1,000
// subscribed clients connected (none holds a pause unit).
func BenchmarkPauseWithSubscribers(b *testing.B) {
	srv := redistest.Start(b)
	p := startProxy(b, testConfig(srv.Addr))
	for range 1000 {
		c := redistest.MustDial(b, p.Addr().String())
		expect(b, c, "1) \"subscribe\"\n2) \"ch\"\n3) (integer) 1", "SUBSCRIBE", "ch")
		b.Cleanup(func() { c.Close() })
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := p.Pause(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.Unpause(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkPauseWithBlockedClients: the time a pause takes with 100
// clients blocked in BLPOP k 0 (each is released with its timeout reply
// and sends it again).
func BenchmarkPauseWithBlockedClients(b *testing.B) {
	srv := redistest.Start(b)
	p := startProxy(b, testConfig(srv.Addr))
	direct := srv.Client(b)
	const n = 100
	for range n {
		c := redistest.MustDial(b, p.Addr().String())
		c.SetTimeout(time.Minute)
		b.Cleanup(func() { c.Close() })
		go func() {
			for {
				if _, err := c.Do("BLPOP", "bk", "0"); err != nil {
					return
				}
			}
		}()
	}
	allBlocked := func() {
		deadline := time.Now().Add(20 * time.Second)
		for {
			v, err := direct.Do("INFO", "clients")
			if err != nil {
				b.Fatal(err)
			}
			if strings.Contains(v.Str, fmt.Sprintf("blocked_clients:%d\r", n)) {
				return
			}
			if time.Now().After(deadline) {
				b.Fatal("the clients did not block")
			}
			time.Sleep(time.Millisecond)
		}
	}
	allBlocked()
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := p.Pause(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.Unpause(); err != nil {
			b.Fatal(err)
		}
		allBlocked()
		b.StartTimer()
	}
}
