// Package pop3conn is mailark's POP3 client: go-pop3 for the session
// (greeting, STLS, USER/PASS, CAPA, LIST, UIDL, QUIT) on a connection that
// this package controls underneath it, and the protocol spoken directly on
// that same connection where go-pop3 cannot help: APOP, SASL, streaming
// RETR/TOP (go-pop3 buffers whole messages) and RFC 2449 pipelining.
//
// Every network wait has the account's inactivity timeout, a cancelled
// context closes the connection, errors carry internal/mailerr kinds, and
// the optional trace never shows a secret.
package pop3conn

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	pop3 "github.com/knadh/go-pop3"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
)

// DefaultWindow is how many commands a pipelining session keeps
// outstanding. Commands are a dozen bytes, so the window costs nothing
// on our side; it must cover a round trip's worth of messages: with 20 ms
// of added RTT, 32 gave 1,100 msgs/s, 128 gave 3,300 and 512 4,400 (mbox,
// Dovecot, 2,000 small messages).
const DefaultWindow = 256

// DefaultMaxMessageSize bounds one streamed message so that a server
// that never ends a RETR cannot fill the disk. Real mail stays far below.
const DefaultMaxMessageSize = 1 << 30

// Conn is one authenticated POP3 session (TRANSACTION state). It is not
// safe for concurrent use: POP3 is one mailbox, one conversation.
type Conn struct {
	// Window is the number of outstanding commands when the server
	// offers PIPELINING; 1 turns pipelining off. Set before use.
	Window int
	// MaxMessageSize aborts a RETR whose body exceeds it.
	MaxMessageSize int64

	acct  *account.Account
	pc    *pop3.Conn
	w     *wire
	tcp   net.Conn // the socket under any TLS layer; closing it ends every wait
	trace *tracer
	caps  map[string]string

	mu     sync.Mutex
	broken error // set when the conversation is out of step; nothing more is sent
	done   bool  // QUIT sent or Close called
}

// Dial connects to the account's POP3 server, secures the connection as
// a.Security says (implicit TLS, STLS, or plaintext), logs in and learns
// the server's capabilities.
//
// Authentication: USER/PASS by default (over TLS the password is as safe
// as the channel); APOP only with ?auth=apop, and then never downgraded
// to USER/PASS when the server does not offer it, because "APOP when
// offered" is defeated by anyone able to strip the greeting's timestamp
// and protects nothing that TLS does not already; SASL XOAUTH2 and
// OAUTHBEARER with a token from the account's secret source.
func Dial(ctx context.Context, a *account.Account) (*Conn, error) {
	if a.Protocol != account.POP3 {
		return nil, mailerr.E(mailerr.ErrUsage, nil, "%s is not a POP3 account", a)
	}
	var tlsConf *tls.Config
	if a.Security != account.Plain {
		var err error
		if tlsConf, err = a.TLSConfig(); err != nil {
			return nil, err
		}
	}
	c := &Conn{
		Window:         DefaultWindow,
		MaxMessageSize: DefaultMaxMessageSize,
		acct:           a,
		trace:          &tracer{w: a.Trace},
	}
	d := &dialer{ctx: ctx, timeout: a.EffectiveTimeout(), trace: c.trace}
	if a.Security == account.ImplicitTLS {
		d.tls = tlsConf
	}
	stop := context.AfterFunc(ctx, d.abort)
	defer stop()

	pc, err := pop3.New(pop3.Opt{
		Host:        a.Host,
		Port:        a.Port,
		Dialer:      d,
		DialTimeout: a.EffectiveTimeout(),
	}).NewConn()
	c.w, c.tcp = d.wire, d.tcp
	if err != nil {
		d.abort()
		if c.w == nil { // dial or implicit TLS handshake failed
			return nil, c.dialError(ctx, err)
		}
		return nil, c.classify(ctx, err, "greeting")
	}
	c.pc = pc
	c.w.lineMode = false
	if err := c.setup(ctx, tlsConf); err != nil {
		c.tcp.Close()
		return nil, err
	}
	return c, nil
}

// setup runs STLS (if asked for), login and CAPA.
func (c *Conn) setup(ctx context.Context, tlsConf *tls.Config) error {
	if c.acct.Security == account.StartTLS {
		if err := c.startTLS(ctx, tlsConf); err != nil {
			return err
		}
	}
	if err := c.login(ctx); err != nil {
		return err
	}
	return c.capa(ctx)
}

// startTLS upgrades the connection. go-pop3's reader holds nothing after
// the STLS reply (the server says nothing more before the handshake), so
// the TLS layer can be slid in under it.
func (c *Conn) startTLS(ctx context.Context, conf *tls.Config) error {
	if _, err := c.lineCmd(ctx, "STLS", false); err != nil {
		if c.w.err() == nil && ctx.Err() == nil {
			return mailerr.E(mailerr.ErrTLS, err,
				"%s does not offer STLS; use pop3s:// (port 995), or ?tls=none with --plaintext to send the password unprotected", c.acct.Addr())
		}
		return c.classify(ctx, err, "STLS")
	}
	tc := tls.Client(c.w.Conn, conf)
	if err := handshake(ctx, tc, c.acct.EffectiveTimeout()); err != nil {
		return c.dialError(ctx, err)
	}
	c.w.Conn = tc
	c.trace.note("[TLS established: %s]", tls.VersionName(tc.ConnectionState().Version))
	return nil
}

// login authenticates as the account says.
func (c *Conn) login(ctx context.Context) error {
	a := c.acct
	if a.Secret == nil {
		return mailerr.E(mailerr.ErrUsage, nil, "no password source for %s", a)
	}
	secret, err := a.Secret.Secret(ctx)
	if err != nil {
		return err
	}
	if strings.ContainsAny(secret, "\r\n\x00") || strings.ContainsAny(a.User, "\r\n\x00") {
		// go-pop3 sends arguments verbatim: a line break would inject commands.
		return mailerr.E(mailerr.ErrUsage, nil, "the user name or the %s contains a control character", a.Secret.Describe())
	}
	if a.Auth == account.AuthAPOP && strings.Contains(a.User, " ") {
		return mailerr.E(mailerr.ErrUsage, nil, "APOP cannot send a user name with a space; remove ?auth=apop")
	}
	switch a.Auth {
	case account.AuthAPOP:
		return c.loginAPOP(ctx, secret)
	case account.AuthXOAUTH2:
		return c.loginSASL(ctx, "XOAUTH2", fmt.Sprintf("user=%s\x01auth=Bearer %s\x01\x01", a.User, secret))
	case account.AuthOAUTHBEARER:
		return c.loginSASL(ctx, "OAUTHBEARER", fmt.Sprintf("n,a=%s,\x01auth=Bearer %s\x01\x01", a.User, secret))
	}
	if _, err := c.lineCmd(ctx, "USER", false, a.User); err != nil {
		return c.authError(ctx, err, "USER")
	}
	if _, err := c.lineCmd(ctx, "PASS", false, secret); err != nil {
		return c.authError(ctx, err, "PASS")
	}
	return nil
}

// apopTimestamp finds the RFC 1939 timestamp (<...@...>) in a greeting.
var apopTimestamp = regexp.MustCompile(`<[\x21-\x3d\x3f-\x7e]*@[\x21-\x3d\x3f-\x7e]*>`)

func (c *Conn) loginAPOP(ctx context.Context, secret string) error {
	ts := apopTimestamp.Find(c.w.greeting)
	if ts == nil {
		return mailerr.E(mailerr.ErrAuth, nil,
			"%s does not offer APOP (no timestamp in its greeting); remove ?auth=apop to log in with USER/PASS over TLS", c.acct.Addr())
	}
	sum := md5.Sum(append(append([]byte{}, ts...), secret...))
	if _, err := c.lineCmd(ctx, "APOP", false, c.acct.User, hex.EncodeToString(sum[:])); err != nil {
		return c.authError(ctx, err, "APOP")
	}
	return nil
}

// loginSASL runs AUTH with an initial response (RFC 5034). A failing
// XOAUTH2/OAUTHBEARER server sends a "+ " challenge with error details,
// which the client answers with an empty line to get the final -ERR.
func (c *Conn) loginSASL(ctx context.Context, mech, ir string) error {
	c.trace.setSASL(true)
	defer c.trace.setSASL(false)
	_, err := c.lineCmd(ctx, "AUTH", false, mech, base64.StdEncoding.EncodeToString([]byte(ir)))
	if err != nil && c.w.err() == nil && strings.HasPrefix(err.Error(), "unknown response: +") {
		err = c.withLineMode(ctx, func() error {
			if err := c.pc.Send(""); err != nil {
				return err
			}
			_, err := c.pc.ReadOne()
			if err == nil {
				err = errors.New("server accepted an aborted AUTH")
			}
			return err
		})
	}
	if err != nil {
		return c.authError(ctx, err, "AUTH "+mech)
	}
	return nil
}

// capa asks for the capabilities (RFC 2449). A server without CAPA is an
// RFC 1939 server: no pipelining, UIDL and TOP tried anyway.
func (c *Conn) capa(ctx context.Context) error {
	c.caps = map[string]string{}
	buf, err := c.lineCmd(ctx, "CAPA", true)
	if err != nil {
		if c.w.err() != nil || ctx.Err() != nil {
			return c.classify(ctx, err, "CAPA")
		}
		return nil
	}
	for _, line := range strings.Split(buf, "\r\n") {
		name, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name != "" {
			c.caps[strings.ToUpper(name)] = args
		}
	}
	return nil
}

// Has reports whether CAPA listed the capability (e.g. "PIPELINING").
func (c *Conn) Has(capability string) bool {
	_, ok := c.caps[strings.ToUpper(capability)]
	return ok
}

// Pipelining reports whether commands are pipelined on this session.
func (c *Conn) Pipelining() bool { return c.Has("PIPELINING") && c.Window > 1 }

// Greeting is the server's first line (it names the server software).
func (c *Conn) Greeting() string { return string(c.w.greeting) }

// lineCmd runs one go-pop3 command with line-mode reading and the
// context's cancellation; the reply text (multi-line: the body) comes
// back as a string.
func (c *Conn) lineCmd(ctx context.Context, cmd string, multi bool, args ...any) (string, error) {
	var out string
	err := c.withLineMode(ctx, func() error {
		buf, err := c.pc.Cmd(cmd, multi, args...)
		if buf != nil {
			out = buf.String()
		}
		return err
	})
	return out, err
}

// withLineMode runs fn (which uses go-pop3's reader) with the wire in
// line mode and the context watched.
func (c *Conn) withLineMode(ctx context.Context, fn func() error) error {
	if err := c.usable(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.tcp.Close() })
	defer stop()
	c.w.lineMode, c.w.lineBytes = true, 0
	defer func() { c.w.lineMode = false }()
	err := fn()
	if err != nil && (c.w.err() != nil || ctx.Err() != nil) {
		c.markBroken(err)
	}
	return err
}

// usable refuses to talk on a session that is finished or out of step.
func (c *Conn) usable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return errors.New("pop3: session already closed")
	}
	return c.broken
}

func (c *Conn) markBroken(err error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = mailerr.E(mailerr.ErrNetwork, err, "POP3 session with %s is no longer usable", c.acct.Addr())
	}
	c.mu.Unlock()
	c.tcp.Close()
}

// Noop keeps an idle session alive.
func (c *Conn) Noop(ctx context.Context) error {
	if _, err := c.lineCmd(ctx, "NOOP", false); err != nil {
		return c.classify(ctx, err, "NOOP")
	}
	return nil
}

// Quit ends the session; only a successful QUIT makes the server carry
// out the DELEs of this session (RFC 1939 UPDATE state). An error means
// the deletions may or may not have happened: the messages are archived
// either way, and the next run deletes what is still there.
func (c *Conn) Quit(ctx context.Context) error {
	if err := c.usable(); err != nil {
		c.Close()
		return err
	}
	err := c.withLineMode(ctx, c.pc.Quit)
	c.mu.Lock()
	c.done = true
	c.mu.Unlock()
	c.tcp.Close()
	if err != nil {
		if c.w.err() == nil && ctx.Err() == nil {
			return mailerr.E(mailerr.ErrServer, err, "%s refused QUIT, so deletions may not have been carried out; the next run retries them", c.acct.Addr())
		}
		return c.classify(ctx, err, "QUIT")
	}
	return nil
}

// Close drops the connection without QUIT: the server forgets this
// session's DELEs.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.done = true
	c.mu.Unlock()
	if c.tcp != nil {
		return c.tcp.Close()
	}
	return nil
}

// dialer is go-pop3's Dialer hook: it dials with the context and the
// account's timeout, does the implicit-TLS handshake with the account's
// verified TLS config, and puts the deadline wire under go-pop3.
type dialer struct {
	ctx     context.Context
	timeout time.Duration
	tls     *tls.Config
	trace   *tracer

	mu     sync.Mutex
	tcp    net.Conn
	wire   *wire
	closed bool
}

func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	nd := &net.Dialer{Timeout: d.timeout}
	conn, err := nd.DialContext(d.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.tcp = conn
	closed := d.closed
	d.mu.Unlock()
	if closed {
		conn.Close()
		return nil, context.Canceled
	}
	if d.tls != nil {
		tc := tls.Client(conn, d.tls)
		if err := handshake(d.ctx, tc, d.timeout); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
		d.trace.note("[TLS established: %s]", tls.VersionName(tc.ConnectionState().Version))
	}
	d.wire = &wire{Conn: conn, timeout: d.timeout, lineMode: true, trace: d.trace}
	return d.wire, nil
}

// abort closes the socket (cancellation, or cleanup after a failure).
func (d *dialer) abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.tcp != nil {
		d.tcp.Close()
	}
}

func handshake(ctx context.Context, tc *tls.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return tc.HandshakeContext(ctx)
}
