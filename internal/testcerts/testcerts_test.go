package testcerts

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
)

func TestWriteVerifies(t *testing.T) {
	f := MustWrite(t)
	roots := pool(t, f.CA)
	other := pool(t, f.OtherCA)

	server := leaf(t, f.ServerCert, f.ServerKey)
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		opts := x509.VerifyOptions{DNSName: name, Roots: roots}
		if _, err := server.Verify(opts); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
		opts.Roots = other
		if _, err := server.Verify(opts); err == nil {
			t.Errorf("server certificate for %s verifies against OtherCA", name)
		}
	}

	client := leaf(t, f.ClientCert, f.ClientKey)
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := client.Verify(opts); err != nil {
		t.Errorf("client certificate: %v", err)
	}
}

func TestKeyFileMode(t *testing.T) {
	f := MustWrite(t)
	for _, path := range []string{f.CAKey, f.ServerKey, f.ClientKey} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if have, want := fi.Mode().Perm(), os.FileMode(0o600); have != want {
			t.Errorf("%s: mode have %v, want %v", path, have, want)
		}
	}
}

// TestMutualTLS runs a handshake with client certificates both ways.
func TestMutualTLS(t *testing.T) {
	f := MustWrite(t)
	serverCert, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv := tls.Server(sc, &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool(t, f.CA),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cli := tls.Client(cc, &tls.Config{
		Certificates: []tls.Certificate{clientCert},
		RootCAs:      pool(t, f.CA),
		ServerName:   "127.0.0.1",
	})
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
}

func TestWriteMissingDir(t *testing.T) {
	if _, err := Write(t.TempDir() + "/missing"); err == nil {
		t.Fatal("Write into a missing directory: no error")
	}
}

func pool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		t.Fatalf("%s: no certificates", path)
	}
	return p
}

func leaf(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}
