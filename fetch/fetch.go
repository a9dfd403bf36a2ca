// Package fetch copies mail from a server (IMAP or POP3) into an archive.
//
// Both sources share Options and Result so the command layer treats them
// alike: the same flags, the same summary, the same JSON. A source never
// changes the server unless asked to (POP3 --delete); IMAP fetch is
// read-only by construction (EXAMINE and BODY.PEEK only).
package fetch

import (
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/mailark/mailark/internal/progress"
)

// Options tune a fetch run.
type Options struct {
	// Include and Exclude are glob patterns on archive folder names
	// ("INBOX", "Work/2024", "Entwürfe"): path.Match syntax, and a pattern
	// ending in "/*" also matches everything below that folder. An empty
	// Include means every folder; Exclude wins over Include.
	Include, Exclude []string
	// SkipAllMail skips folders that repeat every message of the account
	// (special-use \All, Gmail's "[Gmail]/All Mail").
	SkipAllMail bool
	// Connections is the number of parallel server connections (IMAP:
	// one folder per connection at a time). Zero means the source's
	// default (DefaultConnectionsFor the machine's CPUs).
	Connections int
	// Retries is how often a folder is resumed on a fresh connection
	// after a network error before the folder is given up. Zero means
	// DefaultRetries; negative means none.
	Retries int
	// DryRun examines the server and reports the plan (Result.Planned)
	// without writing anything to the archive.
	DryRun bool
	// Progress receives progress events; nil means progress.Discard.
	Progress progress.Reporter
	// Logger receives debug and warning logs; nil means discard.
	Logger *slog.Logger

	// POP3 specific options follow (owned by the POP3 source).

	// Delete removes from the server every message that is durably in
	// the archive (committed to the index), including messages archived
	// by earlier runs.
	Delete bool
	// DeleteOlderThan, when positive, deletes only archived messages the
	// archive first saw at least this long ago ("leave a copy on the
	// server for 14 days"); it implies Delete for those.
	DeleteOlderThan time.Duration
	// MarkSeen stores POP3 messages with \Seen (POP3 has no flags).
	MarkSeen bool
	// POP3Window is the number of outstanding POP3 commands when the
	// server offers PIPELINING: 0 means the default, 1 turns pipelining
	// off (for measurements).
	POP3Window int
}

// Defaults for zero Options fields.
const (
	// DefaultIMAPConnections is the most connections the default opens.
	DefaultIMAPConnections = 4
	DefaultRetries         = 2
)

// DefaultConnectionsFor is the default number of IMAP connections on a
// machine with cpus CPUs: one per CPU, at least 2 (one connection leaves
// the link idle while a batch is written) and at most
// DefaultIMAPConnections. Each connection costs CPU (parsing, hashing,
// goroutine hand-offs), so more connections than CPUs add contention
// and no throughput: on 2 CPUs shared with the server, a full fetch of
// 5,000 messages was never faster over 4 connections than over 2.
func DefaultConnectionsFor(cpus int) int {
	return min(DefaultIMAPConnections, max(2, cpus))
}

// Result summarises a fetch run; it is what --json prints.
type Result struct {
	Source         string          `json:"source"`
	Archive        string          `json:"archive"`
	Folders        int             `json:"folders"`         // folders looked at
	FoldersSkipped int             `json:"folders_skipped"` // excluded, \Noselect, or failed
	NewMessages    int             `json:"new_messages"`
	Bytes          int64           `json:"bytes"`
	FlagUpdates    int             `json:"flag_updates"`
	GoneFolders    []string        `json:"gone_folders,omitempty"` // in the archive, no longer on the server
	NewFolders     []string        `json:"new_folders,omitempty"`  // created in the archive by this run
	Warnings       []string        `json:"warnings,omitempty"`
	Duration       time.Duration   `json:"duration_ns"`
	DryRun         bool            `json:"dry_run,omitempty"`
	Planned        []PlannedFolder `json:"planned,omitempty"` // dry run only
	// POP3: messages deleted from the server (dry run: would be deleted),
	// and server messages found already archived under another UIDL or
	// without one (compared by header and content, not fetched again).
	Deleted    int `json:"deleted,omitempty"`
	Duplicates int `json:"duplicates,omitempty"`
}

// PlannedFolder is what a dry run would fetch from one folder.
type PlannedFolder struct {
	Folder     string `json:"folder"`      // archive name
	ServerName string `json:"server_name"` // name on the server
	Messages   int    `json:"messages"`    // new messages to fetch
	Bytes      int64  `json:"bytes"`       // their size
	FlagSync   bool   `json:"flag_sync"`   // flags would be compared
	Create     bool   `json:"create"`      // the folder would be created
}

// Selected reports whether folder (an archive name) passes the include
// and exclude patterns.
func (o *Options) Selected(folder string) bool {
	if len(o.Include) > 0 && !matchAny(o.Include, folder) {
		return false
	}
	return !matchAny(o.Exclude, folder)
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if globMatch(p, name) {
			return true
		}
	}
	return false
}

// globMatch is path.Match, plus "A/*" covering the whole subtree of A, and
// INBOX matched case-insensitively as IMAP does. A malformed pattern
// matches nothing (the command layer validates patterns up front with
// ValidPattern).
func globMatch(pattern, name string) bool {
	if strings.EqualFold(pattern, "INBOX") && strings.EqualFold(name, "INBOX") {
		return true
	}
	if ok, err := path.Match(pattern, name); err == nil && ok {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, "/*"); ok {
		if m, err := path.Match(prefix, name); err == nil && m {
			return false // "A/*" is below A, not A itself
		}
		for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if m, err := path.Match(prefix, dir); err == nil && m {
				return true
			}
		}
	}
	return false
}

// ValidPattern reports a malformed include/exclude pattern.
func ValidPattern(pattern string) error {
	_, err := path.Match(pattern, "")
	return err
}
