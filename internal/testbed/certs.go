package testbed

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mailark/mailark/internal/testcert"
)

// writeCertificates creates a throw-away CA and a server certificate signed
// by it, valid for 127.0.0.1, ::1 and localhost, and writes ca.pem,
// cert.pem and key.pem into dir. Each server has its own CA, so a client
// that trusts one server's CA does not trust another server: tests of
// certificate errors can use a second server's CAFile.
func writeCertificates(dir string) (*x509.CertPool, error) {
	ca, err := testcert.New("127.0.0.1", "::1", "localhost")
	if err != nil {
		return nil, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", ca.CAPEM, 0o644},
		{"cert.pem", ca.CertPEM(), 0o644},
		{"key.pem", keyPEM, 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return ca.Pool(), nil
}
