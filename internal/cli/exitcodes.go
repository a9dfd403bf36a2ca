package cli

import (
	"fmt"
	"strings"

	"github.com/mailark/mailark/internal/mailerr"
)

// ExitCodes is the table every command's help ends with and docs/cron.md
// repeats. The codes come from internal/mailerr; this adds what they mean
// to someone reading a cron mail.
var ExitCodes = []struct {
	Code    int
	Meaning string
}{
	{mailerr.ExitOK, "success (verify: archive and server match)"},
	{mailerr.ExitFailure, "failure not classified below"},
	{mailerr.ExitUsage, "usage or configuration error: bad flag, URL, archive spec or config file"},
	{mailerr.ExitPartial, "partial failure: some folders, messages or jobs failed, the rest was done"},
	{mailerr.ExitAuth, "authentication failed: wrong password or token"},
	{mailerr.ExitNetwork, "network error: unreachable, connection reset, timeout (after retries)"},
	{mailerr.ExitTLS, "TLS error: certificate not trusted, handshake failed"},
	{mailerr.ExitLocked, "the archive is locked by another run"},
	{mailerr.ExitDamaged, "the archive is damaged beyond automatic repair"},
	{mailerr.ExitLocalIO, "cannot write the archive: permissions, disk full"},
	{mailerr.ExitServer, "the server refused a command"},
	{mailerr.ExitMismatch, "verify: the archive and the server differ"},
	{mailerr.ExitInterrupted, "interrupted by SIGINT or SIGTERM"},
}

// exitCodeHelp is the "Exit codes:" section of --help.
func exitCodeHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, e := range ExitCodes {
		fmt.Fprintf(&b, "  %3d  %s\n", e.Code, e.Meaning)
	}
	return strings.TrimRight(b.String(), "\n")
}

// ExitCodeMarkdown is the exit-code table as Markdown, for docs.
func ExitCodeMarkdown() string {
	var b strings.Builder
	b.WriteString("| code | meaning |\n|---:|---|\n")
	for _, e := range ExitCodes {
		fmt.Fprintf(&b, "| %d | %s |\n", e.Code, e.Meaning)
	}
	return b.String()
}
