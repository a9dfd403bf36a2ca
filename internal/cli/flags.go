package cli

import (
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailark/mailark/fetch"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/cli/config"
	"github.com/mailark/mailark/internal/mailerr"
)

// connFlags tune connections to servers.
type connFlags struct {
	Connections int
	CAFile      string
	Plaintext   bool
	Timeout     time.Duration
	Retries     int
}

// Defaults shared by flags and config jobs.
const (
	defaultRetries = 3
	maxConnections = 64
)

// defaultConnections follows the machine: on two cores shared with a local
// server, four connections measured slower than two.
var defaultConnections = fetch.DefaultConnectionsFor(runtime.NumCPU())

func (c *connFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&c.Connections, "connections", defaultConnections, "IMAP connections used in parallel, one folder each (1-64)")
	f.StringVar(&c.CAFile, "ca-file", "", "trust only the CA certificates in `FILE` (PEM), for a private CA")
	f.BoolVar(&c.Plaintext, "plaintext", false, "allow an unencrypted connection to a host that is not a loopback address (exposes the password)")
	f.DurationVar(&c.Timeout, "timeout", 0, "give up on a server that sends nothing for this long (default 60s)")
	f.IntVar(&c.Retries, "retries", defaultRetries, "retry a job this many times after a network error (0: never)")
}

func (c *connFlags) check() error {
	if c.Connections < 1 || c.Connections > maxConnections {
		return mailerr.E(mailerr.ErrUsage, nil, "--connections %d: use 1 to %d", c.Connections, maxConnections)
	}
	if c.Timeout < 0 {
		return mailerr.E(mailerr.ErrUsage, nil, "--timeout must not be negative")
	}
	if c.Retries < 0 || c.Retries > 20 {
		return mailerr.E(mailerr.ErrUsage, nil, "--retries %d: use 0 to 20", c.Retries)
	}
	return nil
}

// registerSecretFlags adds --password-file/--password-command/--password-env
// and --oauth-token-command, or their --target- twins.
func registerSecretFlags(cmd *cobra.Command, s *secretFlags, target bool) {
	f := cmd.Flags()
	p, who, env := "", "the source account", EnvPassword
	if target {
		p, who, env = "target-", "the target account", EnvTargetPassword+", then "+EnvPassword
	}
	f.StringVar(&s.File, p+"password-file", "", "read the password of "+who+" from the first line of `FILE`")
	f.StringVar(&s.Command, p+"password-command", "", "run `COMMAND` (with /bin/sh) and use the first line it prints as the password of "+who)
	f.StringVar(&s.Env, p+"password-env", "", "read the password of "+who+" from environment variable `NAME` (default "+env+")")
	f.StringVar(&s.OAuthCommand, p+"oauth-token-command", "", "with ?auth=xoauth2 or ?auth=oauthbearer in the URL: run `COMMAND` for the OAuth access token of "+who)
}

// folderFlags select IMAP folders.
type folderFlags struct {
	Include     []string
	Exclude     []string
	SkipAllMail bool
}

func (f *folderFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.Include, "include", nil, "fetch only folders matching `GLOB` (repeatable; * matches within a level, \"A/*\" everything below A)")
	fs.StringArrayVar(&f.Exclude, "exclude", nil, "skip folders matching `GLOB` (repeatable)")
	fs.BoolVar(&f.SkipAllMail, "skip-all-mail", false, `skip "[Gmail]/All Mail" and other \All folders, which repeat every message`)
}

func (f *folderFlags) check() error {
	for _, pats := range [][]string{f.Include, f.Exclude} {
		for _, p := range pats {
			if err := checkGlob(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkGlob rejects a pattern the fetch package could not match, before
// anything connects.
func checkGlob(p string) error {
	if p == "" {
		return mailerr.E(mailerr.ErrUsage, nil, "empty folder pattern")
	}
	if err := fetch.ValidPattern(p); err != nil {
		return mailerr.E(mailerr.ErrUsage, nil, "folder pattern %q: %v", p, err)
	}
	return nil
}

// pop3Flags control deletion on POP3 servers.
type pop3Flags struct {
	Delete          bool
	DeleteOlderThan config.Duration
	MarkSeen        bool
}

func (p *pop3Flags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&p.Delete, "delete", false, "POP3: delete each message from the server once it is safely in the archive")
	f.Var(&p.DeleteOlderThan, "delete-older-than", "POP3: delete archived messages first seen longer ago than `DURATION` (e.g. 30d, 2w, 36h)")
	f.BoolVar(&p.MarkSeen, "mark-seen", false, `POP3: store messages as read (\Seen) in the archive`)
}

func (p *pop3Flags) check(src *account.Account) error {
	if p.Delete && p.DeleteOlderThan > 0 {
		return mailerr.E(mailerr.ErrUsage, nil, "--delete and --delete-older-than both given; choose one")
	}
	if src != nil && src.Protocol != account.POP3 && (p.Delete || p.DeleteOlderThan > 0 || p.MarkSeen) {
		return mailerr.E(mailerr.ErrUsage, nil, "--delete, --delete-older-than and --mark-seen are for POP3 sources; an IMAP fetch never changes the server")
	}
	return nil
}

// mapFlags place archive folders on a restore target.
type mapFlags struct {
	FolderMap []string
	Prefix    string
}

func (m *mapFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&m.FolderMap, "folder-map", nil, "restore archive folder A into target folder B, written `A=B` (repeatable)")
	f.StringVar(&m.Prefix, "prefix", "", "restore every folder under target folder `NAME` (e.g. \"Old mail\")")
}

// parse turns A=B pairs into a map.
func (m *mapFlags) parse() (map[string]string, error) {
	return parseFolderMap(m.FolderMap)
}

func parseFolderMap(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		a, b, ok := strings.Cut(p, "=")
		if !ok || a == "" || b == "" {
			return nil, mailerr.E(mailerr.ErrUsage, nil, "--folder-map %q: write it as ARCHIVE_FOLDER=TARGET_FOLDER", p)
		}
		if prev, dup := out[a]; dup && prev != b {
			return nil, mailerr.E(mailerr.ErrUsage, nil, "--folder-map maps %q twice (%q and %q)", a, prev, b)
		}
		out[a] = b
	}
	return out, nil
}

// lockFlags: how long to wait for another run's archive lock.
type lockFlags struct{ LockWait time.Duration }

func (l *lockFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&l.LockWait, "lock-wait", 0, "wait up to `DURATION` for another run to release the archive (0: fail at once)")
}

// sourceAccount builds the account a command reads mail from: its secret
// comes from the --password-* flags, else MAILARK_PASSWORD.
func (c connFlags) sourceAccount(s *session, url string, secret secretFlags) (*account.Account, error) {
	return accountSpec{URL: url, CAFile: c.CAFile, Plaintext: c.Plaintext, Timeout: c.Timeout,
		Secret: secret, flagPrefix: "--", envNames: []string{EnvPassword}}.build(s)
}

// targetAccount builds the IMAP account command `what` puts mail on: its
// secret comes from the flags flagPrefix names, else MAILARK_TARGET_PASSWORD,
// else MAILARK_PASSWORD.
func (c connFlags) targetAccount(s *session, what, url, caFile string, secret secretFlags, flagPrefix string) (*account.Account, error) {
	a, err := accountSpec{URL: url, CAFile: caFile, Plaintext: c.Plaintext, Timeout: c.Timeout,
		Secret: secret, flagPrefix: flagPrefix, envNames: []string{EnvTargetPassword, EnvPassword}}.build(s)
	if err != nil {
		return nil, err
	}
	if err := requireIMAP(a, what); err != nil {
		return nil, err
	}
	return a, nil
}

// accountSpec is everything needed to turn a URL into an account.
type accountSpec struct {
	URL       string
	CAFile    string
	Plaintext bool
	Timeout   time.Duration
	Secret    secretFlags
	// flagPrefix names the secret flags in errors: "--" or "--target-".
	flagPrefix string
	// envNames are read in order when no file or command is given.
	envNames []string
}

// build parses the URL and attaches TLS, timeout, secret and trace.
func (s accountSpec) build(sess *session) (*account.Account, error) {
	a, err := account.ParseURL(s.URL, account.ParseOptions{AllowPlaintext: s.Plaintext})
	if err != nil {
		return nil, err
	}
	a.CAFile = s.CAFile
	a.Timeout = s.Timeout
	src, err := s.Secret.secretSource(a.Auth, s.flagPrefix, s.envNames)
	if err != nil {
		return nil, err
	}
	a.Secret = src
	if a.Auth != account.AuthPassword && !s.Secret.isSet() {
		// A password in MAILARK_PASSWORD is not a token; say what is missing.
		return nil, mailerr.E(mailerr.ErrUsage, nil, "%s uses auth=%s: give the token with %soauth-token-command", a, a.Auth, s.flagPrefix)
	}
	if s.CAFile != "" {
		if _, err := a.TLSConfig(); err != nil {
			return nil, err
		}
	}
	if sess != nil {
		if tw := sess.trace(a.String()); tw != nil {
			a.Trace = tw
		}
	}
	return a, nil
}
