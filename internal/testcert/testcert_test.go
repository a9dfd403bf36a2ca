package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
)

// handshake dials a TLS server presenting a's certificate, trusting pool.
func handshake(t *testing.T, a *Authority, pool *x509.CertPool, serverName string) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", a.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: serverName})
	if err != nil {
		return err
	}
	return c.Close()
}

func TestTrustedOnlyThroughItsOwnCA(t *testing.T) {
	a, err := New("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if err := handshake(t, a, a.Pool(), name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var hostErr x509.HostnameError
	if err := handshake(t, a, a.Pool(), "mail.example.org"); !errors.As(err, &hostErr) {
		t.Fatalf("other host name: err = %v, want a host name error", err)
	}
	other, err := New("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var authErr x509.UnknownAuthorityError
	if err := handshake(t, a, other.Pool(), "127.0.0.1"); !errors.As(err, &authErr) {
		t.Fatalf("another CA: err = %v, want an unknown authority error", err)
	}
}

func TestPEMRoundTrip(t *testing.T) {
	a, err := New("localhost")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := a.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(a.CertPEM(), keyPEM)
	if err != nil {
		t.Fatalf("certificate and key do not load as a pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Fatalf("certificate does not verify against CAPEM: %v", err)
	}
	if len(leaf.IPAddresses) != 0 || len(leaf.DNSNames) != 1 {
		t.Fatalf("names %v, addresses %v; want localhost alone", leaf.DNSNames, leaf.IPAddresses)
	}
}
