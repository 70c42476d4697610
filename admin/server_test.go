package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	f := newFake()
	s := NewServer(f, nil)
	if s.Addr() != nil {
		t.Errorf("Addr before Start: %v", s.Addr())
	}
	if err := s.Start("127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0", nil); err == nil {
		t.Errorf("second Start: no error")
	}
	base := "http://" + s.Addr().String()
	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("have %d %q", res.StatusCode, body)
	}
	res, err = http.Post(base+"/cmd/", "application/x-www-form-urlencoded", strings.NewReader("cmd=pause"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || f.Status().State != "paused" {
		t.Errorf("pause over HTTP: have %d, state %s", res.StatusCode, f.Status().State)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Errorf("still serving after Shutdown")
	}
}

func TestServerShutdownUnstarted(t *testing.T) {
	if err := NewServer(newFake(), nil).Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestServerListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := NewServer(newFake(), nil).Start(ln.Addr().String(), nil); err == nil {
		t.Errorf("Start on a busy address: no error")
	}
}

// TestServerTLS serves HTTPS with a client certificate required.
func TestServerTLS(t *testing.T) {
	serverCert, pool := selfSigned(t, "127.0.0.1")
	clientCert, clientPool := selfSigned(t, "client")
	s := NewServer(newFake(), nil)
	err := s.Start("127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    clientPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	url := "https://" + s.Addr().String() + "/info.json"

	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs},
		}}
	}
	res, err := client(clientCert).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("HTTPS: have %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if _, err := client().Get(url); err == nil {
		t.Errorf("no client certificate: no error")
	}
	if res, err := http.Get("http://" + s.Addr().String() + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the HTTPS port: have %d, want 400", res.StatusCode)
		}
	}
}

// selfSigned makes a certificate for name (an IP or a DNS name) and a pool
// that trusts it.
func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}
