package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
)

// UplinkTLS returns the client tls.Config for the uplink, or nil, nil when
// uplink.tls is false. It verifies the server against uplink.cacertfile
// (unless uplink.skipverify), presents uplink.certfile/keyfile when set, and
// verifies uplink.servername, or else the host of uplink.addr.
//
// Errors name the key, the file and the cause
// ("uplink.cacertfile: /x/ca.pem: no certificates found"), all of them.
func (c *Config) UplinkTLS() (*tls.Config, error) {
	return c.UplinkTLSFor(c.Uplink.Addr)
}

// UplinkTLSFor is UplinkTLS for another server dialled with the uplink's
// settings (a candidate, a switch target, a replica, the master Sentinel
// names): unless uplink.servername is set, it verifies the host of addr.
func (c *Config) UplinkTLSFor(addr string) (*tls.Config, error) {
	u := c.Uplink
	if !u.TLS {
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: u.SkipVerify,
		ServerName:         u.ServerName,
	}
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		}
	}
	var errs []error
	if u.CACertFile != "" {
		pool, err := loadCertPool("uplink.cacertfile", u.CACertFile)
		errs = append(errs, err)
		tc.RootCAs = pool
	}
	if u.CertFile != "" || u.KeyFile != "" {
		cert, err := loadKeyPair("uplink", u.CertFile, u.KeyFile)
		errs = append(errs, err)
		tc.Certificates = cert
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tc, nil
}

// ListenTLS returns the server tls.Config for listen, or nil, nil when
// listen.tls is false. With listen.clientcafile, clients must present a
// certificate signed by one of its CAs.
func (c *Config) ListenTLS() (*tls.Config, error) {
	l := c.Listen
	return serverTLS("listen", l.TLS, l.CertFile, l.KeyFile, l.ClientCAFile)
}

// ListenROTLS returns the server tls.Config for listen_ro, or nil, nil when
// listen_ro.tls is false. With listen_ro.clientcafile, clients must present
// a certificate signed by one of its CAs.
func (c *Config) ListenROTLS() (*tls.Config, error) {
	r := c.ListenRO
	return serverTLS("listen_ro", r.TLS, r.CertFile, r.KeyFile, r.ClientCAFile)
}

// ListenRawTLS returns the server tls.Config for listen_raw, or nil, nil when
// listen_raw.tls is false.
func (c *Config) ListenRawTLS() (*tls.Config, error) {
	r := c.ListenRaw
	return serverTLS("listen_raw", r.TLS, r.CertFile, r.KeyFile, "")
}

// AdminTLS returns the server tls.Config for admin, or nil, nil when
// admin.tls is false. With admin.clientcafile, clients must present a
// certificate signed by one of its CAs.
func (c *Config) AdminTLS() (*tls.Config, error) {
	a := c.Admin
	return serverTLS("admin", a.TLS, a.CertFile, a.KeyFile, a.ClientCAFile)
}

// LoadTLS loads every TLS configuration and reports every error, joined: the
// file check of `redis-proxy -t` and of a reload, before anything changes.
func (c *Config) LoadTLS() error {
	var errs []error
	for _, load := range []func() (*tls.Config, error){c.UplinkTLS, c.ListenTLS, c.ListenROTLS, c.ListenRawTLS, c.AdminTLS} {
		_, err := load()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func serverTLS(section string, useTLS bool, certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if !useTLS {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	cert, err := loadKeyPair(section, certFile, keyFile)
	errs := []error{err}
	tc.Certificates = cert
	if clientCAFile != "" {
		pool, err := loadCertPool(section+".clientcafile", clientCAFile)
		errs = append(errs, err)
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tc, nil
}

// loadCertPool reads every certificate of a PEM file into a pool.
func loadCertPool(key, path string) (*x509.CertPool, error) {
	_, certs, err := readCertificates(key, path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	return pool, nil
}

// readCertificates reads a PEM file and parses its CERTIFICATE blocks; there
// must be at least one, and each must parse.
func readCertificates(key, path string) ([]byte, []*x509.Certificate, error) {
	data, err := readFile(key, path)
	if err != nil {
		return nil, nil, err
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fileError(key, path, fmt.Errorf("certificate %d: %w", len(certs)+1, err))
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, nil, fileError(key, path, errors.New("no certificates found"))
	}
	return data, certs, nil
}

// readPrivateKey reads a PEM file that must hold a private key.
func readPrivateKey(key, path string) ([]byte, error) {
	data, err := readFile(key, path)
	if err != nil {
		return nil, err
	}
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return data, nil
		}
	}
	return nil, fileError(key, path, errors.New("no private key found"))
}

// loadKeyPair loads section.certfile and section.keyfile, reporting each
// problem against the key it belongs to.
func loadKeyPair(section, certFile, keyFile string) ([]tls.Certificate, error) {
	certKey, keyKey := section+".certfile", section+".keyfile"
	var certPEM, keyPEM []byte
	var certErr, keyErr error
	if certFile == "" {
		certErr = &KeyError{Key: certKey, Msg: "required " + keyPairReason(section, keyKey, keyFile)}
	} else {
		certPEM, _, certErr = readCertificates(certKey, certFile)
	}
	if keyFile == "" {
		keyErr = &KeyError{Key: keyKey, Msg: "required " + keyPairReason(section, certKey, certFile)}
	} else {
		keyPEM, keyErr = readPrivateKey(keyKey, keyFile)
	}
	if err := errors.Join(certErr, keyErr); err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		cause := strings.TrimPrefix(err.Error(), "tls: ")
		return nil, fileError(keyKey, keyFile, fmt.Errorf("%s (certificate %s)", cause, certFile))
	}
	return []tls.Certificate{cert}, nil
}

// keyPairReason says why the missing half of a key pair is needed, in
// Validate's words.
func keyPairReason(section, otherKey, other string) string {
	if section == "uplink" && other != "" {
		return "when " + otherKey + " is set"
	}
	return "when " + section + ".tls is true"
}

func readFile(key, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileError(key, path, err)
	}
	return data, nil
}

// fileError is "key: path: cause", without the path twice when the cause is
// an *fs.PathError.
func fileError(key, path string, err error) error {
	var perr *fs.PathError
	if errors.As(err, &perr) {
		err = perr.Err
	}
	return &KeyError{Key: key, Msg: path + ": " + err.Error(), Err: err}
}
