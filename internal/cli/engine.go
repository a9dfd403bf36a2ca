package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/progress"
)

// Engine is the boundary between the command layer and mailark's core
// (archive, fetch, restore). Commands describe what to do in a request and
// read back a summary; the engine opens the archive, runs the operation and
// closes it again. Keeping this seam small lets the commands, the job
// scheduler and the retry policy be tested on their own, and keeps the core
// free of any UI.
type Engine interface {
	// Fetch copies new mail from req.Source into the archive.
	Fetch(ctx context.Context, req FetchRequest) (Stats, error)
	// Restore uploads an archive (mailark's or a mail client's tree) to
	// req.Target, exactly once per message.
	Restore(ctx context.Context, req RestoreRequest) (Stats, error)
	// Verify compares an archive with an IMAP account, both ways.
	Verify(ctx context.Context, req VerifyRequest) (VerifyReport, error)
	// List describes an archive's folders.
	List(ctx context.Context, archive string) (Listing, error)
}

// FetchRequest is one fetch: an account into an archive.
type FetchRequest struct {
	Source   *account.Account
	Archive  string // maildir:PATH or mbox:PATH
	LockWait time.Duration

	Include, Exclude []string
	SkipAllMail      bool
	Connections      int
	DryRun           bool

	// POP3 only.
	Delete          bool
	DeleteOlderThan time.Duration
	MarkSeen        bool

	Progress progress.Reporter
	Logger   *slog.Logger
}

// RestoreRequest is one restore: an archive onto an IMAP account.
type RestoreRequest struct {
	Target *account.Account
	// Archive is maildir:PATH / mbox:PATH for a mailark archive, or the
	// path of any mbox file, mbox tree or maildir another program wrote.
	Archive  string
	LockWait time.Duration

	FolderMap   map[string]string // archive folder → target folder
	Prefix      string            // put every folder under this target folder
	Connections int
	DryRun      bool

	Progress progress.Reporter
	Logger   *slog.Logger
}

// VerifyRequest compares an archive with an account.
type VerifyRequest struct {
	Account     *account.Account
	Archive     string
	FolderMap   map[string]string
	Prefix      string
	Connections int
	Logger      *slog.Logger
}

// Stats is what a fetch or restore did, for the summary line and --json.
type Stats struct {
	Folders  int   `json:"folders"`           // folders looked at
	Messages int64 `json:"messages"`          // new messages fetched / uploaded (planned, with --dry-run)
	Bytes    int64 `json:"bytes"`             // their bytes
	Skipped  int64 `json:"skipped,omitempty"` // already present (restore duplicates, fetch dedup)
	Deleted  int64 `json:"deleted,omitempty"` // POP3 messages deleted from the server
	Failed   int   `json:"failed,omitempty"`  // folders or messages that failed (partial)
	// Fetch only.
	FlagUpdates int      `json:"flag_updates,omitempty"` // messages whose flags changed on the server
	NewFolders  []string `json:"new_folders,omitempty"`  // created in the archive by this run
	GoneFolders []string `json:"gone_folders,omitempty"` // no longer on the server, kept in the archive
	// Restore only.
	Created int `json:"created,omitempty"` // folders created on the target
	// Warnings the core reported (also logged as they happened).
	Warnings []string `json:"warnings,omitempty"`
	// Seconds is how long the step took, retries included.
	Seconds  float64 `json:"duration_seconds"`
	duration time.Duration
	// PerFolder details each folder where something happened, or, with
	// --dry-run, the plan.
	PerFolder []FolderStats `json:"per_folder,omitempty"`
}

func (s *Stats) setDuration(d time.Duration) {
	s.duration = d
	s.Seconds = d.Round(time.Millisecond).Seconds()
}

// FolderStats is one folder's share of Stats.
type FolderStats struct {
	Name     string `json:"name"`
	Target   string `json:"target,omitempty"` // restore: the folder on the target
	Create   bool   `json:"create,omitempty"` // restore --dry-run: would be created
	Messages int64  `json:"messages"`
	Bytes    int64  `json:"bytes"`
	Skipped  int64  `json:"skipped,omitempty"`
	Note     string `json:"note,omitempty"` // "skipped: cannot select", "gone from server"
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Folders []VerifyFolder `json:"folders"`
}

// VerifyFolder compares archive folders with the server folder they map
// to. Name is empty for a server folder no archive folder maps to.
type VerifyFolder struct {
	Name             string `json:"name"`
	Target           string `json:"target"`
	Matched          int64  `json:"matched"`
	MissingOnServer  int64  `json:"missing_on_server"`
	MissingInArchive int64  `json:"missing_in_archive"`
	FlagsDiffer      int64  `json:"flags_differ,omitempty"` // reported, not a mismatch
	Note             string `json:"note,omitempty"`
	// The messages missing, by Message-ID (or archive key / server UID).
	MissingOnServerIDs  []string `json:"missing_on_server_ids,omitempty"`
	MissingInArchiveIDs []string `json:"missing_in_archive_ids,omitempty"`
}

// Differs reports whether any folder differs.
func (r VerifyReport) Differs() bool {
	for _, f := range r.Folders {
		if f.MissingOnServer > 0 || f.MissingInArchive > 0 {
			return true
		}
	}
	return false
}

// Listing describes an archive for `mailark ls`.
type Listing struct {
	Archive string       `json:"archive"`
	Format  string       `json:"format"`
	Foreign bool         `json:"foreign"` // written by another program: counts only
	Folders []ListFolder `json:"folders"`
}

// ListFolder is one line of `mailark ls`.
type ListFolder struct {
	Name       string       `json:"name"`
	SpecialUse string       `json:"special_use,omitempty"`
	Messages   int          `json:"messages"`
	Bytes      int64        `json:"bytes"`
	NoSelect   bool         `json:"noselect,omitempty"`
	Sync       []SourceSync `json:"sync,omitempty"`
}

// SourceSync is a folder's position on one source.
type SourceSync struct {
	Source      string    `json:"source"`
	ServerName  string    `json:"server_name,omitempty"`
	LastSync    time.Time `json:"last_sync,omitzero"`
	UIDValidity uint32    `json:"uidvalidity,omitempty"`
	LastUID     uint32    `json:"last_uid,omitempty"`
	Gone        bool      `json:"gone,omitempty"`
}
