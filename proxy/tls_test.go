package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strconv"
	"testing"

	"redis-proxy/internal/redistest"
	"redis-proxy/internal/testcerts"
)

func writeCerts(t *testing.T) testcerts.Files { return testcerts.MustWrite(t) }

// clientTLS is a client configuration trusting the test CA, with the
// client certificate when withCert.
func clientTLS(t *testing.T, f testcerts.Files, withCert bool) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

func freePort() (int, error) {
	addr, err := redistest.FreeAddr()
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return strconv.Atoi(port)
}
