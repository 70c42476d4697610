package proxy

import (
	"testing"

	"redis-proxy/internal/redistest"
)

func TestSmoke(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, testConfig(srv.Addr))
	c := dial(t, p)
	expect(t, c, "PONG", "PING")
	expect(t, c, "OK", "SET", "a", "1")
	expect(t, c, `"1"`, "GET", "a")
	expect(t, c, "OK", "SELECT", "3")
	expect(t, c, "(nil)", "GET", "a")
	expect(t, c, "OK", "CLIENT", "SETNAME", "smoke")
	expect(t, c, `"smoke"`, "CLIENT", "GETNAME")
}
