package pop3conn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/mailark/mailark/internal/mailerr"
)

// ErrNoUIDL is returned by UIDL when the server does not support it.
var ErrNoUIDL = errors.New("pop3: server does not support UIDL")

// ReplyError is a server's "-ERR" answer to one command.
type ReplyError struct {
	Command string // the command, without secrets ("RETR 12")
	Num     int    // the message number the command named (0: none)
	Text    string // the server's text after -ERR, response code included
}

func (e *ReplyError) Error() string {
	if e.Text == "" {
		return e.Command + ": -ERR"
	}
	return e.Command + ": -ERR " + e.Text
}

// Code is the RFC 2449/3206 response code ("IN-USE", "AUTH", "SYS/TEMP"),
// or "".
func (e *ReplyError) Code() string { return responseCode(e.Text) }

func responseCode(text string) string {
	if !strings.HasPrefix(text, "[") {
		return ""
	}
	code, _, ok := strings.Cut(text[1:], "]")
	if !ok {
		return ""
	}
	return strings.ToUpper(code)
}

// classify turns the error of a command into a mailerr-kinded error:
// cancelled context, timeout, lost connection, protocol violation, or the
// server's -ERR.
func (c *Conn) classify(ctx context.Context, err error, op string) error {
	addr := c.acct.Addr()
	if ctx.Err() != nil {
		return mailerr.E(mailerr.ErrInterrupted, ctx.Err(), "POP3 %s with %s interrupted", op, addr)
	}
	ioErr := c.w.err()
	if ioErr == nil {
		// go-pop3 turns "-ERR text" into errors.New(text).
		return c.serverRefused(op, err.Error())
	}
	return ioError(ioErr, op, addr, c.acct.EffectiveTimeout().String())
}

// ioError classifies a failed read or write.
func ioError(ioErr error, op, addr, timeout string) error {
	var ne net.Error
	switch {
	case errors.Is(ioErr, ErrTooBig):
		return mailerr.E(mailerr.ErrServer, ioErr, "%s sent a message larger than the limit during %s", addr, op)
	case errors.Is(ioErr, errLineTooLong), errors.Is(ioErr, errProtocol):
		return mailerr.E(mailerr.ErrServer, ioErr, "%s broke the POP3 protocol during %s", addr, op)
	case errors.As(ioErr, &ne) && ne.Timeout():
		return mailerr.E(mailerr.ErrNetwork, ioErr, "%s did not answer %s within %s; check the network or raise --timeout", addr, op, timeout)
	case errors.Is(ioErr, io.EOF), errors.Is(ioErr, io.ErrUnexpectedEOF), errors.Is(ioErr, net.ErrClosed):
		return mailerr.E(mailerr.ErrNetwork, ioErr, "%s closed the connection during %s; rerun to continue", addr, op)
	}
	return mailerr.E(mailerr.ErrNetwork, ioErr, "connection to %s failed during %s; rerun to continue", addr, op)
}

// serverRefused is the error for an -ERR reply to a non-login command.
func (c *Conn) serverRefused(op, text string) error {
	re := &ReplyError{Command: op, Text: text}
	switch re.Code() {
	case "IN-USE":
		return mailerr.E(mailerr.ErrServer, re, "the mailbox on %s is in use by another POP3 session; close other mail clients or try again later", c.acct.Addr())
	case "SYS/TEMP":
		return mailerr.E(mailerr.ErrServer, re, "%s has a temporary problem; try again later", c.acct.Addr())
	}
	return mailerr.E(mailerr.ErrServer, re, "%s refused %s", c.acct.Addr(), op)
}

// refusedMessage is the error for an -ERR to a command on one message
// (it may have been deleted by another client since the listing).
func (c *Conn) refusedMessage(re *ReplyError) error {
	return mailerr.E(mailerr.ErrServer, re, "%s refused %s", c.acct.Addr(), re.Command)
}

// authError classifies a failed USER, PASS, APOP or AUTH: a refusal is
// an authentication error unless a response code says otherwise (the
// mailbox is locked, the server is in trouble).
func (c *Conn) authError(ctx context.Context, err error, op string) error {
	if ctx.Err() != nil || c.w.err() != nil {
		return c.classify(ctx, err, op)
	}
	text := err.Error()
	switch responseCode(text) {
	case "IN-USE", "SYS/TEMP", "SYS/PERM":
		return c.serverRefused(op, text)
	}
	re := &ReplyError{Command: op, Text: text}
	return mailerr.E(mailerr.ErrAuth, re, "login to %s as %s refused; check the user name and the password from the %s",
		c.acct.Addr(), c.acct.User, c.acct.Secret.Describe())
}

// dialError classifies a failure to connect or to complete a TLS
// handshake.
func (c *Conn) dialError(ctx context.Context, err error) error {
	addr := c.acct.Addr()
	if ctx.Err() != nil {
		return mailerr.E(mailerr.ErrInterrupted, ctx.Err(), "connecting to %s interrupted", addr)
	}
	var (
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalid    x509.CertificateInvalidError
		verifyErr  *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		ne         net.Error
		opErr      *net.OpError
		dnsErr     *net.DNSError
		caFileHint = "pass --ca-file with the CA that signed it"
	)
	switch {
	case errors.As(err, &hostErr):
		return mailerr.E(mailerr.ErrTLS, err, "the certificate of %s is not valid for %q; use the host name the certificate names", addr, c.acct.Host)
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &verifyErr):
		return mailerr.E(mailerr.ErrTLS, err, "the certificate of %s is not trusted; %s", addr, caFileHint)
	case errors.As(err, &recordErr):
		return mailerr.E(mailerr.ErrTLS, err, "%s does not speak TLS on this port; use pop3:// (STLS, port 110) or the server's pop3s port", addr)
	case errors.As(err, &alertErr):
		return mailerr.E(mailerr.ErrTLS, err, "TLS handshake with %s failed", addr)
	case errors.As(err, &dnsErr):
		return mailerr.E(mailerr.ErrNetwork, err, "cannot resolve %s; check the host name", c.acct.Host)
	case errors.As(err, &ne) && ne.Timeout():
		return mailerr.E(mailerr.ErrNetwork, err, "%s did not answer within %s; check the host, port and firewall", addr, c.acct.EffectiveTimeout())
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return mailerr.E(mailerr.ErrNetwork, err, "cannot connect to %s; check the host and port", addr)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return mailerr.E(mailerr.ErrNetwork, err, "%s closed the connection during the handshake", addr)
	}
	if strings.Contains(err.Error(), "tls:") {
		return mailerr.E(mailerr.ErrTLS, err, "TLS handshake with %s failed", addr)
	}
	return mailerr.E(mailerr.ErrNetwork, err, "cannot connect to %s", addr)
}

// errProtocol marks replies that break RFC 1939 framing.
var errProtocol = errors.New("pop3: protocol violation")

func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}
