// Package account describes one mail account mailark talks to: where it is
// (parsed from a URL such as imaps://user@host:993), how to secure the
// connection, and how to obtain the secret to log in with.
//
// Secrets never travel on the command line: they come from an environment
// variable, a file or a command, and are looked up only when a connection
// is about to authenticate.
package account

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
)

// Protocol is the mail protocol of an account.
type Protocol string

const (
	IMAP Protocol = "imap"
	POP3 Protocol = "pop3"
)

// Security is how the connection is protected.
type Security int

const (
	ImplicitTLS Security = iota // imaps://, pop3s://: TLS from the first byte
	StartTLS                    // imap://, pop3://: upgrade with STARTTLS/STLS
	Plain                       // no TLS: loopback, or when asked for by name
)

func (s Security) String() string {
	switch s {
	case ImplicitTLS:
		return "implicit TLS"
	case StartTLS:
		return "STARTTLS"
	default:
		return "plaintext"
	}
}

// AuthMethod selects how to log in.
type AuthMethod string

const (
	AuthPassword    AuthMethod = "password"    // LOGIN/PLAIN (IMAP), USER/PASS or APOP (POP3)
	AuthXOAUTH2     AuthMethod = "xoauth2"     // token from a command
	AuthOAUTHBEARER AuthMethod = "oauthbearer" // token from a command
	// AuthAPOP is POP3's APOP challenge-response (pop3://...?auth=apop):
	// the password never crosses the wire, which matters only without TLS.
	// Used only when asked for, and then never downgraded to USER/PASS.
	AuthAPOP AuthMethod = "apop"
)

// Account is everything needed to connect and log in.
type Account struct {
	Protocol Protocol
	User     string
	Host     string
	Port     int
	Security Security
	Auth     AuthMethod

	// CAFile, when set, replaces the system roots for this account.
	CAFile string
	// Secret yields the password or OAuth token. It is called once per
	// login; commands may be slow (a password manager), so cache it with
	// Cached when several connections log in.
	Secret SecretSource
	// Timeout bounds every network wait (dial, handshake, each read and
	// write). Zero means DefaultTimeout.
	Timeout time.Duration
	// Trace, when non-nil, receives the protocol exchange with secrets
	// redacted (--verbose).
	Trace TraceWriter
}

// TraceWriter is where --verbose protocol traces go. Implementations must
// accept concurrent writes from several connections.
type TraceWriter interface {
	Write(p []byte) (int, error)
}

// DefaultTimeout is the inactivity timeout on every network wait.
const DefaultTimeout = 60 * time.Second

// Addr is host:port for net.Dial.
func (a *Account) Addr() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// String is the account without any secret, for messages and logs.
func (a *Account) String() string {
	scheme := string(a.Protocol)
	if a.Security == ImplicitTLS {
		scheme += "s"
	}
	return fmt.Sprintf("%s://%s@%s", scheme, a.User, a.Addr())
}

// EffectiveTimeout is Timeout or DefaultTimeout.
func (a *Account) EffectiveTimeout() time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return DefaultTimeout
}

// ParseOptions tune ParseURL.
type ParseOptions struct {
	// AllowPlaintext permits an unencrypted connection to a host that is
	// not a loopback address (--plaintext / allow_plaintext = true).
	AllowPlaintext bool
}

// ParseURL parses imap://, imaps://, pop3://, pop3s:// user@host[:port].
//
// imap:// and pop3:// mean STARTTLS/STLS, except to a loopback address,
// where a plaintext connection is used (a local test server or an SSH
// tunnel); elsewhere plaintext needs AllowPlaintext or ?tls=none in the
// URL together with AllowPlaintext. A password in the URL is refused: it
// would end up in argv and shell history.
func ParseURL(raw string, opt ParseOptions) (*Account, error) {
	bad := func(format string, args ...any) error {
		return mailerr.E(mailerr.ErrUsage, nil, "bad server URL %q: %s", redactURL(raw), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, bad("expected imaps://USER@HOST[:PORT] (or imap, pop3s, pop3)")
	}
	a := &Account{Auth: AuthPassword}
	defPort := 0
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		a.Protocol, a.Security, defPort = IMAP, ImplicitTLS, 993
	case "imap":
		a.Protocol, a.Security, defPort = IMAP, StartTLS, 143
	case "pop3s", "pops":
		a.Protocol, a.Security, defPort = POP3, ImplicitTLS, 995
	case "pop3", "pop":
		a.Protocol, a.Security, defPort = POP3, StartTLS, 110
	default:
		return nil, bad("unknown scheme %q; use imaps, imap, pop3s or pop3", u.Scheme)
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, bad("no user name; write it as USER@HOST")
	}
	if _, has := u.User.Password(); has {
		return nil, bad("a password in the URL is not accepted; use MAILARK_PASSWORD, --password-file or --password-command")
	}
	a.User = u.User.Username()
	if strings.ContainsAny(a.User, "\r\n\x00") {
		return nil, bad("user name contains a control character")
	}
	a.Host = u.Hostname()
	if a.Host == "" {
		return nil, bad("no host")
	}
	a.Port = defPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("port %q is not a number from 1 to 65535", p)
		}
		a.Port = n
	}
	if u.Path != "" && u.Path != "/" {
		return nil, bad("unexpected path %q; folders are chosen with --include/--exclude", u.Path)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "tls", "auth":
		default:
			return nil, bad("unknown parameter %q (known: tls, auth)", k)
		}
	}
	switch q.Get("tls") {
	case "":
	case "none", "plain":
		a.Security = Plain
	case "starttls":
		a.Security = StartTLS
	case "implicit":
		a.Security = ImplicitTLS
	default:
		return nil, bad("tls=%q: use implicit, starttls or none", q.Get("tls"))
	}
	switch AuthMethod(strings.ToLower(q.Get("auth"))) {
	case "", AuthPassword:
	case AuthXOAUTH2:
		a.Auth = AuthXOAUTH2
	case AuthOAUTHBEARER:
		a.Auth = AuthOAUTHBEARER
	case AuthAPOP:
		if a.Protocol != POP3 {
			return nil, bad("auth=apop is a POP3 method; use password, xoauth2 or oauthbearer")
		}
		a.Auth = AuthAPOP
	default:
		return nil, bad("auth=%q: use password, xoauth2 or oauthbearer (POP3 also apop)", q.Get("auth"))
	}
	if a.Security == StartTLS && q.Get("tls") == "" && IsLoopback(a.Host) {
		// Local servers (test beds, SSH tunnels, bridges) rarely have a
		// certificate; nothing leaves the machine.
		a.Security = Plain
	}
	if a.Security == Plain && !IsLoopback(a.Host) && !opt.AllowPlaintext {
		return nil, bad("plaintext to %s would expose the password; use TLS, or pass --plaintext to accept the risk", a.Host)
	}
	return a, nil
}

// IsLoopback reports whether host is a loopback address or "localhost".
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
		return u.String()
	}
	return raw
}

// TLSConfig is the verified TLS configuration for the account.
func (a *Account) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: a.Host, MinVersion: tls.VersionTLS12}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, mailerr.E(mailerr.ErrUsage, err, "cannot read --ca-file")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, mailerr.E(mailerr.ErrUsage, nil, "--ca-file %s holds no PEM certificate", a.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// SecretSource yields a password or token.
type SecretSource interface {
	Secret(ctx context.Context) (string, error)
	// Describe says where the secret comes from, for error messages
	// ("environment variable MAILARK_PASSWORD"); never the secret itself.
	Describe() string
}

// EnvSecret reads the secret from an environment variable.
type EnvSecret string

func (e EnvSecret) Describe() string { return "environment variable " + string(e) }

func (e EnvSecret) Secret(context.Context) (string, error) {
	v, ok := os.LookupEnv(string(e))
	if !ok || v == "" {
		return "", mailerr.E(mailerr.ErrUsage, nil, "no password: %s is not set; set it, or use --password-file or --password-command", string(e))
	}
	return clean(v, e.Describe())
}

// FileSecret reads the secret from the first line of a file.
type FileSecret string

func (f FileSecret) Describe() string { return "password file " + string(f) }

func (f FileSecret) Secret(context.Context) (string, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return "", mailerr.E(mailerr.ErrUsage, err, "cannot read the password file")
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return clean(string(line), f.Describe())
}

// CommandSecret runs a shell command and takes the first line of its
// output (like mbsync's PassCmd): `pass show mail/work`, an OAuth token
// helper, a keyring lookup.
type CommandSecret string

func (c CommandSecret) Describe() string { return "password command" }

func (c CommandSecret) Secret(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", string(c))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// The command's own stderr explains best; it is the user's
		// program, not the secret.
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return "", mailerr.E(mailerr.ErrUsage, err, "password command failed (%s)", msg)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	return clean(string(line), c.Describe())
}

// clean trims the line end and rejects characters that would let a secret
// inject protocol commands (CR, LF, NUL).
func clean(s, from string) (string, error) {
	s = strings.TrimRight(s, "\r\n")
	if s == "" {
		return "", mailerr.E(mailerr.ErrUsage, nil, "the %s gave an empty password", from)
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", mailerr.E(mailerr.ErrUsage, nil, "the %s gave a password containing a control character", from)
	}
	return s, nil
}

// Cached wraps a source so it is asked at most once (several connections
// log in with the same password; a password manager should prompt once).
func Cached(s SecretSource) SecretSource { return &cached{src: s, mu: make(chanMutex, 1)} }

type cached struct {
	src SecretSource
	mu  chanMutex
	val string
	err error
	ok  bool
}

// chanMutex is a mutex that can be given up when ctx ends, so a stuck
// password command does not block every other connection forever.
type chanMutex chan struct{}

func (c *cached) Describe() string { return c.src.Describe() }

func (c *cached) Secret(ctx context.Context) (string, error) {
	select {
	case c.mu <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.mu }()
	if !c.ok {
		c.val, c.err = c.src.Secret(ctx)
		c.ok = c.err == nil
	}
	return c.val, c.err
}
