// Package imapconn opens IMAP connections the way every part of mailark
// needs them: dialled with implicit TLS, STARTTLS or (to loopback, or when
// asked for) plaintext; certificates verified; logged in with
// PLAIN/LOGIN, XOAUTH2 or OAUTHBEARER; an inactivity timeout on every
// network wait; a protocol trace with secrets redacted; and every failure
// turned into a one-line error of a mailerr kind.
//
// It wraps go-imap v2's imapclient and works around its known traps (see
// wire.go for timeouts, auth.go for SASL).
package imapconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
)

// Conn is a logged-in IMAP connection.
type Conn struct {
	// Client is the go-imap client. Callers may use any command on it;
	// errors from it should go through Conn.Err to get their mailerr kind.
	Client *imapclient.Client
	// Caps are the capabilities after login.
	Caps imap.CapSet
	// Delim is the hierarchy delimiter (LIST "" ""), 0 for a flat server.
	Delim rune
	// Prefix is the personal namespace prefix ("INBOX." on Courier and
	// Cyrus), "" when the server has none or no NAMESPACE.
	Prefix string

	// folders is the folder list sent during Dial, not yet returned.
	folders *folderList
	acct    *account.Account
	wire    *wire
	stream  net.Conn // the plaintext protocol stream imapclient uses (RawCommand writes to it)
	stopCtx func() bool
	trace   *tracer
	closed  atomic.Bool
}

// connIDs numbers connections in traces.
var connIDs atomic.Int64

// Options tune Dial beyond the account.
type Options struct {
	// UnilateralDataHandler receives data the server sends outside a
	// command (see imapclient.UnilateralDataHandler).
	UnilateralDataHandler *imapclient.UnilateralDataHandler
	// ListStatus, when set, has the folder list (with these STATUS items,
	// as ListStatus asks) go out with the questions Dial asks after login:
	// one round trip less. The first ListStatus call returns it.
	ListStatus *imap.StatusOptions
}

// Dial connects, secures and logs in to the account's server. The
// returned connection has the account's inactivity timeout on every wait
// and is closed when ctx is cancelled.
func Dial(ctx context.Context, a *account.Account) (*Conn, error) {
	return DialOptions(ctx, a, Options{})
}

// DialOptions is Dial with options.
func DialOptions(ctx context.Context, a *account.Account, opt Options) (*Conn, error) {
	tlsConf, err := a.TLSConfig()
	if err != nil {
		return nil, err
	}
	// Ask for the secret before touching the network, so a failing
	// password command is reported as what it is.
	secret, err := a.Secret.Secret(ctx)
	if err != nil {
		return nil, err
	}

	timeout := a.EffectiveTimeout()
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	raw, err := dialer.DialContext(ctx, "tcp", a.Addr())
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(ctx)
		}
		return nil, &kindError{kind: mailerr.ErrNetwork, cause: err,
			msg: fmt.Sprintf("cannot reach %s: %s; check host and port", a.Addr(), shortCause(err))}
	}

	var trace *tracer
	if a.Trace != nil {
		trace = newTracer(a.Trace, int(connIDs.Add(1)))
	}
	w := newWire(raw, timeout, trace)
	c := &Conn{acct: a, wire: w, trace: trace}
	c.stopCtx = context.AfterFunc(ctx, func() { w.fail(ctx.Err()) })
	trace.note("connecting to %s (%s)", a.Addr(), a.Security)

	if err := c.open(ctx, tlsConf, opt); err != nil {
		c.abort()
		return nil, err
	}
	if err := c.login(ctx, secret); err != nil {
		c.abort()
		return nil, err
	}
	if err := c.learnHierarchy(ctx, opt.ListStatus); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

// open establishes the IMAP session up to the greeting.
func (c *Conn) open(ctx context.Context, tlsConf *tls.Config, opt Options) error {
	a, w := c.acct, c.wire
	rc := rawConn{Conn: w.raw, w: w}
	var stream net.Conn
	switch a.Security {
	case account.ImplicitTLS:
		tc, err := c.handshake(ctx, rc, tlsConf)
		if err != nil {
			return err
		}
		w.expect(greetingTag)
		stream = protoConn{Conn: tc, w: w}
	case account.StartTLS:
		if err := c.startTLS(ctx); err != nil {
			return err
		}
		tc, err := c.handshake(ctx, rc, tlsConf)
		if err != nil {
			return err
		}
		stream = newGreetingConn(protoConn{Conn: tc, w: w})
	default:
		w.expect(greetingTag)
		stream = protoConn{Conn: rc, w: w}
	}
	c.stream = stream
	c.Client = imapclient.New(stream, &imapclient.Options{
		UnilateralDataHandler: opt.UnilateralDataHandler,
	})
	if err := c.Client.WaitGreeting(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return mailerr.E(mailerr.ErrServer, nil, "%s refused the session: %s; try again later", a.Addr(), ie.Text)
		}
		if errors.Is(c.wire.cause(), errTimeout) && a.Security == account.Plain {
			return mailerr.E(mailerr.ErrNetwork, nil, "%s sent no greeting within %s; if it is a TLS port (993), use imaps://", a.Addr(), a.EffectiveTimeout())
		}
		return c.Err(err, "waiting for the server greeting")
	}
	return nil
}

// handshake runs the TLS client handshake over the raw connection.
func (c *Conn) handshake(ctx context.Context, rc rawConn, conf *tls.Config) (*tls.Conn, error) {
	conf = conf.Clone()
	if conf.NextProtos == nil && c.acct.Security == account.ImplicitTLS {
		conf.NextProtos = []string{"imap"}
	}
	tc := tls.Client(rc, conf)
	c.wire.expect(handshakeTag)
	err := tc.HandshakeContext(ctx)
	c.wire.answered(handshakeTag)
	if err != nil {
		return nil, c.tlsError(ctx, err)
	}
	c.trace.note("TLS %s established with %s", tls.VersionName(tc.ConnectionState().Version), c.acct.Host)
	return tc, nil
}

// startTLS reads the plaintext greeting and upgrades with STARTTLS. It is
// done here rather than by imapclient so that the inactivity timeout and
// the trace cover the upgrade too, and so that nothing the server sent
// before TLS (capabilities, injected responses) is trusted afterwards.
func (c *Conn) startTLS(ctx context.Context) error {
	a, w := c.acct, c.wire
	pc := protoConn{Conn: rawConn{Conn: w.raw, w: w}, w: w}
	br := bufio.NewReaderSize(pc, 4096)
	w.expect(greetingTag)
	greeting, err := readLine(br)
	if err != nil {
		return c.Err(err, "waiting for the server greeting")
	}
	switch {
	case hasPrefixFold(greeting, "* OK"):
	case hasPrefixFold(greeting, "* PREAUTH"):
		return mailerr.E(mailerr.ErrTLS, nil, "%s logged us in before STARTTLS (PREAUTH), so the session cannot be secured; use imaps://", a.Addr())
	default:
		return mailerr.E(mailerr.ErrServer, nil, "%s refused the session: %s", a.Addr(), greeting)
	}
	const tag = "M0"
	if _, err := pc.Write([]byte(tag + " STARTTLS\r\n")); err != nil {
		return c.Err(err, "sending STARTTLS")
	}
	for {
		reply, err := readLine(br)
		if err != nil {
			return c.Err(err, "waiting for the STARTTLS answer")
		}
		if !strings.HasPrefix(reply, tag+" ") {
			continue // untagged data (a CAPABILITY, say): ignored
		}
		if !hasPrefixFold(reply, tag+" OK") {
			return mailerr.E(mailerr.ErrTLS, nil, "%s does not offer STARTTLS (%s); use imaps:// (port 993), or tls=none on a trusted network", a.Addr(), strings.TrimPrefix(reply, tag+" "))
		}
		break
	}
	if br.Buffered() > 0 {
		// Bytes sent after the OK but before the handshake would be
		// read as if they came over TLS (STARTTLS command injection).
		return mailerr.E(mailerr.ErrTLS, nil, "%s sent data after its STARTTLS answer; refusing the session", a.Addr())
	}
	return nil
}

func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errors.New("server line too long")
	}
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// learnHierarchy asks for the delimiter and the personal namespace, and
// sends the folder list when status is set (see Options.ListStatus).
func (c *Conn) learnHierarchy(ctx context.Context, status *imap.StatusOptions) error {
	// The questions go out together: one round trip instead of several.
	listCmd := c.Client.List("", "", nil)
	var nsCmd *imapclient.NamespaceCommand
	if c.Caps.Has(imap.CapNamespace) {
		nsCmd = c.Client.Namespace()
	}
	if status != nil {
		c.folders = c.startList(status)
	}
	list, err := listCmd.Collect()
	if err != nil {
		if nsCmd != nil {
			nsCmd.Wait()
		}
		return c.Err(err, "asking for the hierarchy delimiter")
	}
	for _, d := range list {
		c.Delim = d.Delim
	}
	if nsCmd == nil {
		return nil
	}
	ns, err := nsCmd.Wait()
	if err != nil {
		// NAMESPACE is a nicety; a server that advertises and then
		// refuses it is treated as having no prefix.
		if c.wire.cause() != nil {
			return c.Err(err, "asking for the namespace")
		}
		return nil
	}
	if ns != nil && len(ns.Personal) > 0 {
		c.Prefix = ns.Personal[0].Prefix
		if c.Delim == 0 && ns.Personal[0].Delim != 0 {
			c.Delim = ns.Personal[0].Delim
		}
	}
	return nil
}

// Account is the account this connection is logged in to.
func (c *Conn) Account() *account.Account { return c.acct }

// Err turns an error from a command on this connection into a one-line
// error of the right mailerr kind. what says what was being done
// ("examining INBOX"). nil stays nil.
func (c *Conn) Err(err error, what string) error {
	if err == nil {
		return nil
	}
	if isKinded(err) {
		return err
	}
	a := c.acct
	var pe *ProtocolError
	switch cause := c.wire.cause(); {
	case errors.As(cause, &pe):
		return mailerr.E(mailerr.ErrServer, nil, "%s broke the protocol while %s: %s", a.Addr(), what, pe.Msg)
	case errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded):
		return mailerr.E(mailerr.ErrInterrupted, cause, "interrupted while %s", what)
	case errors.Is(cause, errTimeout):
		return mailerr.E(mailerr.ErrNetwork, nil, "%s sent nothing for %s while %s; the server or the network is stuck, try again later or raise the timeout", a.Addr(), a.EffectiveTimeout(), what)
	case cause != nil:
		return &kindError{kind: mailerr.ErrNetwork, cause: cause,
			msg: fmt.Sprintf("connection to %s broken while %s: %s", a.Addr(), what, shortCause(cause))}
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return &kindError{kind: mailerr.ErrServer, cause: err,
			msg: fmt.Sprintf("%s refused %s: %s", a.Host, what, serverText(ie))}
	}
	if isParseError(err) {
		return &kindError{kind: mailerr.ErrServer, cause: err,
			msg: fmt.Sprintf("%s sent a reply that is not valid IMAP while %s (%s); the connection was closed", a.Addr(), what, err)}
	}
	return &kindError{kind: mailerr.ErrNetwork, cause: err,
		msg: fmt.Sprintf("connection to %s lost while %s: %s", a.Addr(), what, shortCause(err))}
}

// isParseError recognises imapclient's decoding failures, which it
// reports as plain text ("in response-data: imapwire: expected SP ..."):
// the server sent something that is not IMAP.
func isParseError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "imapwire:") || strings.HasPrefix(msg, "in response") ||
		strings.Contains(msg, "unsupported response type") || strings.Contains(msg, "utf7:")
}

// serverText is a server's NO/BAD text with its response code.
func serverText(ie *imap.Error) string {
	text := strings.TrimSpace(ie.Text)
	if len(text) > 200 {
		text = strings.ToValidUTF8(text[:200], "") + "..."
	}
	if ie.Code != "" {
		text = "[" + string(ie.Code) + "] " + text
	}
	return text
}

// Broken reports whether the connection is unusable (closed, timed out,
// cancelled, or cut by a protocol error).
func (c *Conn) Broken() bool {
	return c.closed.Load() || c.dead()
}

func (c *Conn) dead() bool {
	if c.wire.cause() != nil {
		return true
	}
	select {
	case <-c.Client.Closed():
		return true
	default:
		return false
	}
}

// Abort cuts the connection at once and waits until imapclient's reader
// has stopped. Use it after a message literal failed half-way: imapclient
// (beta.8) would otherwise let the caller drain the rest of that literal
// while its own reader goroutine reads the same buffer (a data race).
func (c *Conn) Abort() {
	if c == nil || c.Client == nil {
		return
	}
	c.wire.fail(errAborted)
	<-c.Client.Closed()
}

var errAborted = errors.New("connection aborted after a failed transfer")

// Close sends LOGOUT and closes the connection, without waiting for the
// server's answer: the server ends the session on reading the command,
// and waiting would add a round trip to the end of every run. Safe to
// call more than once.
func (c *Conn) Close() error {
	if c == nil || c.closed.Swap(true) {
		return nil
	}
	defer c.stopCtx()
	if c.Client == nil {
		c.wire.raw.Close()
		return nil
	}
	if !c.dead() {
		done := make(chan struct{})
		go func() {
			c.Client.Logout() // returns once sent; a stuck writer is cut by the timer
			close(done)
		}()
		t := time.NewTimer(logoutWait)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	c.Client.Close()
	c.wire.raw.Close()
	return nil
}

const logoutWait = 3 * time.Second

// abort closes a connection that failed during Dial.
func (c *Conn) abort() {
	c.closed.Store(true)
	c.stopCtx()
	if c.Client != nil {
		c.Client.Close()
	}
	c.wire.raw.Close()
}

func interrupted(ctx context.Context) error {
	return mailerr.E(mailerr.ErrInterrupted, ctx.Err(), "interrupted")
}

// isKinded reports whether err already carries a mailerr kind.
func isKinded(err error) bool {
	for _, k := range []error{mailerr.ErrUsage, mailerr.ErrAuth, mailerr.ErrNetwork, mailerr.ErrTLS,
		mailerr.ErrServer, mailerr.ErrInterrupted, mailerr.ErrLocalIO, mailerr.ErrPartial} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

func (c *Conn) tlsError(ctx context.Context, err error) error {
	a := c.acct
	if ctx.Err() != nil {
		return interrupted(ctx)
	}
	if errors.Is(c.wire.cause(), errTimeout) {
		return mailerr.E(mailerr.ErrNetwork, nil, "%s did not complete the TLS handshake within %s; check the port (imaps:// expects 993)", a.Addr(), a.EffectiveTimeout())
	}
	return classifyTLS(a, err)
}

// String describes the connection for logs.
func (c *Conn) String() string { return fmt.Sprintf("imap connection to %s", c.acct.Addr()) }
