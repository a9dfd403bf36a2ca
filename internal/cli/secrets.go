package cli

import (
	"context"
	"os"
	"strings"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
)

// Environment variables that hold passwords. The target of restore and
// migrate looks at MAILARK_TARGET_PASSWORD first and falls back to
// MAILARK_PASSWORD, so a restore (one account) works with either and a
// migrate between two accounts can keep the two passwords apart.
const (
	EnvPassword       = "MAILARK_PASSWORD"
	EnvTargetPassword = "MAILARK_TARGET_PASSWORD"
)

// secretFlags are where one account's password or OAuth token comes from.
// Never the secret itself: it would show in ps, /proc and shell history.
type secretFlags struct {
	File         string
	Command      string
	Env          string // variable name; "" means the default chain
	OAuthCommand string // token command for ?auth=xoauth2 / oauthbearer
	// Inline is a password from a config file that only its owner can
	// read (never from a flag).
	Inline string
}

func (s secretFlags) isSet() bool {
	return s.File != "" || s.Command != "" || s.Inline != "" || s.OAuthCommand != "" || s.Env != ""
}

// secretSource picks the account's secret source. flagPrefix ("--" or
// "--target-") makes error messages name the flags the user has.
// envNames are tried in order when neither a file nor a command is given.
func (s secretFlags) secretSource(auth account.AuthMethod, flagPrefix string, envNames []string) (account.SecretSource, error) {
	if s.File != "" && s.Command != "" {
		return nil, mailerr.E(mailerr.ErrUsage, nil, "%spassword-file and %spassword-command both given; choose one", flagPrefix, flagPrefix)
	}
	var src account.SecretSource
	switch {
	case auth != account.AuthPassword && s.OAuthCommand != "":
		src = account.CommandSecret(s.OAuthCommand)
	case s.Inline != "":
		src = inlineSecret(s.Inline)
	case s.File != "":
		src = account.FileSecret(s.File)
	case s.Command != "":
		src = account.CommandSecret(s.Command)
	default:
		if s.Env != "" {
			envNames = []string{s.Env}
		}
		src = envChain{names: envNames, flagPrefix: flagPrefix}
	}
	return account.Cached(src), nil
}

// envChain reads the first of several environment variables that is set.
type envChain struct {
	names      []string
	flagPrefix string
}

func (e envChain) Describe() string {
	return "environment variable " + strings.Join(e.names, " or ")
}

func (e envChain) Secret(ctx context.Context) (string, error) {
	for _, n := range e.names {
		if v, ok := os.LookupEnv(n); ok && v != "" {
			return account.EnvSecret(n).Secret(ctx)
		}
	}
	return "", mailerr.E(mailerr.ErrUsage, nil, "no password: set %s, or use %spassword-file or %spassword-command",
		strings.Join(e.names, " or "), e.flagPrefix, e.flagPrefix)
}

// inlineSecret is a password written in a config file readable by its
// owner alone (the config package enforces the file mode).
type inlineSecret string

func (inlineSecret) Describe() string { return "password in the config file" }

func (s inlineSecret) Secret(context.Context) (string, error) {
	if strings.ContainsAny(string(s), "\r\n\x00") {
		return "", mailerr.E(mailerr.ErrUsage, nil, "the password in the config file contains a control character")
	}
	return string(s), nil
}
