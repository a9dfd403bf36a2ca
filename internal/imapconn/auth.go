package imapconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
)

// login authenticates with the account's method and records the
// capabilities the server announces afterwards.
func (c *Conn) login(ctx context.Context, secret string) error {
	a := c.acct
	caps, err := c.capabilities("reading the capabilities")
	if err != nil {
		return err
	}
	var mech string
	switch a.Auth {
	case account.AuthXOAUTH2:
		mech = "XOAUTH2"
		if !caps.Has(imap.AuthCap(mech)) {
			return noMechanism(a, mech, caps)
		}
		x := &xoauth2{user: a.User, token: secret}
		err = c.Client.Authenticate(x)
		if err != nil && len(x.serverError) > 0 {
			err = &saslFailure{err: err, detail: string(x.serverError)}
		}
	case account.AuthOAUTHBEARER:
		mech = sasl.OAuthBearer
		if !caps.Has(imap.AuthCap(mech)) {
			return noMechanism(a, mech, caps)
		}
		o := newOAuthBearer(a.User, secret, a.Host, a.Port)
		err = c.Client.Authenticate(o)
		if err != nil && o.serverError != nil {
			err = &saslFailure{err: err, detail: o.serverError.Status}
		}
	default:
		if caps.Has(imap.AuthCap(sasl.Plain)) {
			mech = "AUTHENTICATE PLAIN"
			err = c.Client.Authenticate(sasl.NewPlainClient("", a.User, secret))
		} else {
			if caps.Has(imap.CapLoginDisabled) {
				return mailerr.E(mailerr.ErrTLS, nil, "%s refuses to log in over this connection (LOGINDISABLED); use imaps:// or imap:// with STARTTLS", a.Addr())
			}
			mech = "LOGIN"
			err = c.Client.Login(a.User, secret).Wait()
		}
	}
	if err != nil {
		return c.authError(err, mech)
	}
	c.trace.note("logged in as %s with %s", a.User, mech)
	// The server's capabilities change after login (imapclient asks again).
	if c.Caps, err = c.capabilities("reading the capabilities after login"); err != nil {
		return err
	}
	return nil
}

func (c *Conn) authError(err error, mech string) error {
	a := c.acct
	if c.wire.cause() != nil {
		return c.Err(err, "logging in")
	}
	var ie *imap.Error
	var sf *saslFailure
	text := err.Error()
	if errors.As(err, &ie) {
		text = serverText(ie)
	} else if !errors.As(err, &sf) {
		// A client-side SASL failure or a dead connection.
		return c.Err(err, "logging in with "+mech)
	}
	if errors.As(err, &sf) {
		text += " (" + sf.detail + ")"
	}
	hint := "check the password (MAILARK_PASSWORD / --password-file / --password-command)"
	if a.Auth != account.AuthPassword {
		hint = "check the token command: the token may be expired or lack the IMAP scope"
	}
	return mailerr.E(mailerr.ErrAuth, nil, "login as %s at %s refused: %s; %s", a.User, a.Host, text, hint)
}

func noMechanism(a *account.Account, mech string, caps imap.CapSet) error {
	offered := caps.AuthMechanisms()
	list := strings.Join(offered, ", ")
	if list == "" {
		list = "none"
	}
	return mailerr.E(mailerr.ErrAuth, nil, "%s does not offer %s login (it offers: %s); use auth=password or another method", a.Host, mech, list)
}

// capabilities returns the server's capabilities, turning imapclient's
// silent nil (it gives up after 30 s, or the connection died) into an
// error.
func (c *Conn) capabilities(what string) (imap.CapSet, error) {
	caps := c.Client.Caps()
	if caps == nil {
		return nil, c.Err(errors.New("no capability list received"), what)
	}
	return caps, nil
}

type saslFailure struct {
	err    error
	detail string
}

func (e *saslFailure) Error() string { return e.err.Error() + " (" + e.detail + ")" }
func (e *saslFailure) Unwrap() error { return e.err }

// xoauth2 is the XOAUTH2 SASL mechanism (Google, Microsoft), which go-sasl
// does not provide. On failure the server sends a base64 JSON error as a
// challenge; the client must answer with an empty line, and the server then
// ends with a tagged NO.
type xoauth2 struct {
	user, token string
	serverError []byte
}

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	x.serverError = append([]byte(nil), challenge...)
	return []byte{}, nil
}

// oauthBearer wraps go-sasl's OAUTHBEARER client: that client returns an
// error from Next on the server's JSON error challenge, after which
// imapclient stops while the server still waits for the client's reply,
// and the connection is dead. RFC 7628 says to answer with a single 0x01;
// this wrapper does, and keeps the server's error for the message.
type oauthBearer struct {
	sasl.Client
	serverError *sasl.OAuthBearerError
}

func newOAuthBearer(user, token, host string, port int) *oauthBearer {
	return &oauthBearer{Client: sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
		Username: user, Token: token, Host: host, Port: port})}
}

func (o *oauthBearer) Next(challenge []byte) ([]byte, error) {
	if _, err := o.Client.Next(challenge); err != nil {
		var oe *sasl.OAuthBearerError
		if errors.As(err, &oe) {
			o.serverError = oe
		} else {
			o.serverError = &sasl.OAuthBearerError{Status: "unreadable error from server"}
		}
	}
	return []byte{0x01}, nil
}

// classifyTLS turns a failed TLS handshake into a one-line error.
func classifyTLS(a *account.Account, err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return mailerr.E(mailerr.ErrTLS, nil, "certificate of %s not trusted: signed by an unknown authority; pass --ca-file if it is a private CA", a.Host)
	case errors.As(err, &host):
		return mailerr.E(mailerr.ErrTLS, nil, "certificate of %s not trusted: it is for %s; connect by a name the certificate lists", a.Host, certNames(host.Certificate))
	case errors.As(err, &invalid):
		return mailerr.E(mailerr.ErrTLS, nil, "certificate of %s not trusted: %s", a.Host, invalid.Error())
	case errors.As(err, &verify):
		return mailerr.E(mailerr.ErrTLS, nil, "certificate of %s not trusted: %s; pass --ca-file if it is a private CA", a.Host, verify.Err)
	case errors.As(err, &rec):
		return mailerr.E(mailerr.ErrTLS, nil, "%s does not speak TLS on this port; imaps:// expects port 993, imap:// (STARTTLS) port 143", a.Addr())
	case isTimeout(err):
		return mailerr.E(mailerr.ErrNetwork, err, "TLS handshake with %s timed out", a.Addr())
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return mailerr.E(mailerr.ErrNetwork, err, "connection to %s lost during the TLS handshake", a.Addr())
	}
	return mailerr.E(mailerr.ErrTLS, err, "TLS handshake with %s failed", a.Addr())
}

func certNames(cert *x509.Certificate) string {
	if cert == nil {
		return "another name"
	}
	names := cert.DNSNames
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && cert.Subject.CommonName != "" {
		names = []string{cert.Subject.CommonName}
	}
	if len(names) == 0 {
		return "no host name"
	}
	if len(names) > 4 {
		names = append(names[:4], "...")
	}
	return strings.Join(names, ", ")
}
