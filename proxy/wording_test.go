package proxy

import (
	"testing"

	"redis-proxy/internal/redistest"
)

// TestOwnRepliesAsRedisWordsThem: every reply the proxy gives itself
// (authentication, HELLO's checks, RESET, QUIT) is byte for byte what
// Redis gives in the same situation. The proxy with listen.pass is
// compared with a Redis whose requirepass is the same password, and the
// proxy without one with a Redis without one.
func TestOwnRepliesAsRedisWordsThem(t *testing.T) {
	const pass = "s3cret"
	locked := redistest.Start(t, "--requirepass", pass)
	open := redistest.Start(t)
	behind := redistest.Start(t)
	cfg := testConfig(behind.Addr)
	cfg.Listen.Pass = pass
	withPass := startProxy(t, cfg)
	withoutPass := startProxy(t, testConfig(behind.Addr))

	withPassCases := []string{
		"PING\r\n",
		"HELLO 3\r\n",
		"HELLO 4\r\n",
		"HELLO x\r\n",
		"HELLO 3 AUTH default wrong\r\n",
		"HELLO 3 AUTH someone " + pass + "\r\n",
		"HELLO 3 FOO\r\n",
		"HELLO 3 AUTH default\r\n",
		"AUTH wrong\r\n",
		"AUTH someone " + pass + "\r\n",
		"AUTH a b c\r\n",
		"AUTH\r\n",
		"AUTH " + pass + "\r\nPING\r\nHELLO 4\r\nHELLO 1\r\nHELLO 3 FOO\r\n",
		"AUTH default " + pass + "\r\nPING\r\n",
		"AUTH " + pass + "\r\nRESET\r\nPING\r\n",
		"HELLO 2 AUTH default " + pass + "\r\nPING\r\n",
	}
	withoutPassCases := []string{
		"AUTH x\r\n",
		"AUTH default x\r\n",
		"AUTH someone x\r\n",
		"HELLO 3 AUTH someone x\r\n",
		"HELLO 2 AUTH default x\r\nPING\r\n",
		"RESET\r\nPING\r\n",
		"HELLO 4\r\n",
	}
	compare := func(direct, proxied string, cases []string) {
		for _, in := range cases {
			want := stripIDs(exchange(t, direct, in))
			have := stripIDs(exchange(t, proxied, in))
			if have != want {
				t.Errorf("%q:\nhave %q\nwant %q", in, have, want)
			}
		}
	}
	compare(locked.Addr, withPass.Addr().String(), withPassCases)
	compare(open.Addr, withoutPass.Addr().String(), withoutPassCases)
}
