// Package testcert makes throw-away certificate authorities and server
// certificates for the TLS servers of tests and the demo: the IMAP and
// POP3 test servers, the private Dovecot.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Authority is a throw-away CA and one server certificate it signed.
type Authority struct {
	// CA is the authority's certificate; CAPEM the same in PEM, for a
	// client's --ca-file.
	CA    *x509.Certificate
	CAPEM []byte
	// Cert is the server certificate with its private key.
	Cert tls.Certificate
}

// validity is long enough for any test run, short enough that a leaked
// certificate is soon worthless.
const validity = 30 * 24 * time.Hour

// New makes a CA and a server certificate for hosts (names or IP
// addresses; the first is the certificate's subject). Each CA has a name
// of its own, so a client that trusts one server's CA is refused by
// another server: tests of certificate errors rely on that.
//
// ECDSA P-256 keys take well under a millisecond to generate, unlike RSA.
func New(hosts ...string) (*Authority, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("testcert: no host names")
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caSerial := serial()
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "mailark test CA " + caSerial.Text(16)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return &Authority{
		CA:    ca,
		CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}, nil
}

// ServerConfig is a server's TLS config presenting the certificate.
func (a *Authority) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{a.Cert}, MinVersion: tls.VersionTLS12}
}

// Pool holds the CA alone, for a Go client's RootCAs.
func (a *Authority) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(a.CA)
	return pool
}

// CertPEM and KeyPEM are the server certificate and its private key in
// PEM, for servers that read them from files.
func (a *Authority) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Cert.Certificate[0]})
}

// KeyPEM: see CertPEM.
func (a *Authority) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(a.Cert.PrivateKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return n
}
