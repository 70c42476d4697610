// Package testcerts writes throwaway certificates for tests: a CA, a server
// certificate for 127.0.0.1, ::1 and localhost and a client certificate, both
// signed by that CA, and a second, unrelated CA for negative tests.
//
// Keys are ECDSA P-256; certificates are valid from an hour ago for a day.
// Everything is generated at test time; nothing is committed.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files are the paths of the PEM files Write creates.
type Files struct {
	CA         string // the CA certificate that signed ServerCert and ClientCert
	CAKey      string
	ServerCert string // for 127.0.0.1, ::1 and localhost; server auth
	ServerKey  string
	ClientCert string // client auth
	ClientKey  string
	OtherCA    string // a CA that signed nothing here: verifying against it fails
}

// MustWrite writes the files into tb.TempDir() and fails tb on error.
func MustWrite(tb testing.TB) Files {
	tb.Helper()
	files, err := Write(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// Write generates the certificates and keys and writes them into dir, which
// must exist. Keys are PKCS #8 "PRIVATE KEY" blocks, mode 0600.
func Write(dir string) (Files, error) {
	f := Files{
		CA:         filepath.Join(dir, "ca.pem"),
		CAKey:      filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
		OtherCA:    filepath.Join(dir, "other-ca.pem"),
	}
	ca, err := newCA("redis-proxy test CA")
	if err != nil {
		return Files{}, err
	}
	other, err := newCA("redis-proxy unrelated test CA")
	if err != nil {
		return Files{}, err
	}
	server, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return Files{}, err
	}
	client, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "redis-proxy test client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Files{}, err
	}
	for _, w := range []struct {
		path string
		pair *keyPair
		key  bool
	}{
		{f.CA, ca, false}, {f.CAKey, ca, true},
		{f.ServerCert, server, false}, {f.ServerKey, server, true},
		{f.ClientCert, client, false}, {f.ClientKey, client, true},
		{f.OtherCA, other, false},
	} {
		if err := w.pair.write(w.path, w.key); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// keyPair is a certificate and its private key.
type keyPair struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func newCA(name string) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return sign(tmpl, nil)
}

// issue signs a leaf certificate with ca.
func (ca *keyPair) issue(tmpl *x509.Certificate) (*keyPair, error) {
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	return sign(tmpl, ca)
}

// sign completes tmpl (serial, validity), generates its key and signs it with
// parent, or self-signs when parent is nil.
func sign(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcerts: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("testcerts: %w", err)
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(24 * time.Hour)
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("testcerts: %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcerts: %s: %w", tmpl.Subject.CommonName, err)
	}
	return &keyPair{cert: cert, der: der, key: key}, nil
}

// write stores the certificate, or with key the private key, as PEM.
func (p *keyPair) write(path string, key bool) error {
	block, mode := &pem.Block{Type: "CERTIFICATE", Bytes: p.der}, os.FileMode(0o644)
	if key {
		der, err := x509.MarshalPKCS8PrivateKey(p.key)
		if err != nil {
			return fmt.Errorf("testcerts: %w", err)
		}
		block, mode = &pem.Block{Type: "PRIVATE KEY", Bytes: der}, 0o600
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), mode); err != nil {
		return fmt.Errorf("testcerts: %w", err)
	}
	return nil
}
