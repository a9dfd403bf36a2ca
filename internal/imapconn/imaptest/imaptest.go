// Package imaptest starts go-imap's in-memory IMAP server for unit tests
// (plain, implicit TLS or STARTTLS, with chosen SASL mechanisms), makes
// throwaway certificates, and runs small scripted fake servers for the
// failure modes a real server will not produce on demand.
package imaptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/mailark/mailark/internal/testcert"
)

// Password and Token are what the test users log in with.
const (
	User     = "alice"
	Password = "s3cret-Pa55word"
	Token    = "ya29.test-oauth-token"
)

// Mode is how the server secures connections.
type Mode int

const (
	Plain       Mode = iota // no TLS
	ImplicitTLS             // TLS from the first byte
	StartTLS                // STARTTLS offered (and required for login)
)

// Config describes a test server.
type Config struct {
	Mode Mode
	// Mechanisms are the SASL mechanisms offered; nil means PLAIN only.
	// An empty non-nil slice offers none (LOGIN only). Known: PLAIN,
	// XOAUTH2, OAUTHBEARER.
	Mechanisms []string
	// Caps are extra capabilities (IMAP4rev1 is always there).
	Caps []imap.Cap
	// Folders are created (besides INBOX).
	Folders []string
	// Debug receives the server side of the protocol.
	Debug io.Writer
	// CertHosts are the names in the server certificate; default
	// 127.0.0.1 and localhost.
	CertHosts []string
}

// Server is a running in-memory IMAP server.
type Server struct {
	Addr   string
	Host   string
	Port   int
	CAFile string // PEM of the CA that signed the server certificate
	User   *imapmemserver.User
	Mem    *imapmemserver.Server

	srv *imapserver.Server
}

// Start starts a server on a free loopback port; it stops when the test
// ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := &Server{Mem: imapmemserver.New(), User: imapmemserver.NewUser(User, Password)}
	for _, f := range append([]string{"INBOX"}, cfg.Folders...) {
		if err := s.User.Create(f, nil); err != nil {
			t.Fatalf("create %s: %v", f, err)
		}
	}
	s.Mem.AddUser(s.User)

	caps := imap.CapSet{imap.CapIMAP4rev1: {}}
	for _, c := range cfg.Caps {
		caps[c] = struct{}{}
	}
	var tlsConf *tls.Config
	if cfg.Mode != Plain {
		hosts := cfg.CertHosts
		if len(hosts) == 0 {
			hosts = []string{"127.0.0.1", "localhost"}
		}
		cert, caFile := NewCert(t, hosts...)
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.CAFile = caFile
	}
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{Session: s.Mem.NewSession(), mechs: cfg.Mechanisms}, nil, nil
		},
		Caps:         caps,
		InsecureAuth: cfg.Mode == Plain,
		Logger:       log.New(io.Discard, "", 0),
		DebugWriter:  cfg.Debug,
	}
	if cfg.Mode == StartTLS {
		opts.TLSConfig = tlsConf
	}
	s.srv = imapserver.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode == ImplicitTLS {
		ln = tls.NewListener(ln, tlsConf)
	}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	s.Addr = ln.Addr().String()
	s.Host = "127.0.0.1"
	s.Port = ln.Addr().(*net.TCPAddr).Port
	return s
}

// Msg is a message to seed.
type Msg struct {
	Folder string
	Raw    []byte
	Flags  []imap.Flag
	Date   time.Time
}

// Append stores messages on the server.
func (s *Server) Append(t testing.TB, msgs ...Msg) {
	t.Helper()
	for _, m := range msgs {
		if _, err := s.User.Append(m.Folder, bytes.NewReader(m.Raw), &imap.AppendOptions{Flags: m.Flags, Time: m.Date}); err != nil {
			t.Fatalf("append to %s: %v", m.Folder, err)
		}
	}
}

// session adds SASL mechanisms to the in-memory session.
type session struct {
	imapserver.Session
	mechs []string
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	if ns, ok := s.Session.(imapserver.SessionNamespace); ok {
		return ns.Namespace()
	}
	return nil, errors.New("no namespace")
}

func (s *session) AuthenticateMechanisms() []string {
	if s.mechs == nil {
		return []string{sasl.Plain}
	}
	return s.mechs
}

func (s *session) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			return s.Session.Login(user, pass)
		}), nil
	case sasl.OAuthBearer:
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if o.Token != Token || o.Username != User {
				return &sasl.OAuthBearerError{Status: "invalid_token", Scope: "https://mail.example/"}
			}
			if err := s.Session.Login(User, Password); err != nil {
				return &sasl.OAuthBearerError{Status: "server_error"}
			}
			return nil
		}), nil
	case "XOAUTH2":
		return &xoauth2Server{login: func(user, token string) error {
			if user != User || token != Token {
				return errors.New("bad token")
			}
			return s.Session.Login(User, Password)
		}}, nil
	}
	return nil, fmt.Errorf("mechanism %s not supported", mech)
}

// xoauth2Server is the server side of XOAUTH2: on failure it sends a
// JSON error as a challenge and fails after the client's empty reply.
type xoauth2Server struct {
	login  func(user, token string) error
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, imapserver.ErrAuthFailed
	}
	if resp == nil {
		return nil, false, nil
	}
	var user, token string
	for _, kv := range strings.Split(string(resp), "\x01") {
		if v, ok := strings.CutPrefix(kv, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(kv, "auth=Bearer "); ok {
			token = v
		}
	}
	if err := x.login(user, token); err != nil {
		x.failed = true
		return []byte(`{"status":"401","schemes":"Bearer","scope":"https://mail.example/"}`), false, nil
	}
	return nil, true, nil
}

// NewCert makes a CA and a server certificate for hosts, writes the CA
// to a file in the test's temp dir and returns the server certificate
// and that file's path.
func NewCert(t testing.TB, hosts ...string) (tls.Certificate, string) {
	t.Helper()
	ca, err := testcert.New(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return ca.Cert, caFile
}
