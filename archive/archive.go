// Package archive is mailark's local store of mail: an ordinary maildir
// or mbox tree that other mail programs open as they are, plus a sidecar
// directory (.mailark/) with what those programs do not keep: per-folder
// sync state, a message index (key, size, SHA-256, Message-ID, flags,
// INTERNALDATE) and restore ledgers.
//
// Writing is append-only and crash-safe: Append streams a message into the
// folder, Commit makes every message appended since the last Commit durable
// and only then records it in the index and advances the sync state. A
// crash between the two leaves unrecorded messages that the next Open
// removes, so the source fetches them again: nothing half-written is ever
// visible, nothing is recorded that is not on disk, nothing is duplicated.
//
// Reading goes through the Reader interface, which foreign trees
// (Thunderbird, mutt, Dovecot, mbsync, OfflineIMAP) implement as well.
package archive

import (
	"errors"
	"io"
	"time"
)

// Format is the on-disk format of an archive.
type Format string

const (
	Maildir Format = "maildir"
	Mbox    Format = "mbox"
)

// Standard IMAP system flags as mailark stores them.
const (
	FlagSeen      = `\Seen`
	FlagAnswered  = `\Answered`
	FlagFlagged   = `\Flagged`
	FlagDeleted   = `\Deleted`
	FlagDraft     = `\Draft`
	FlagForwarded = "$Forwarded"
)

// Special-use attributes (RFC 6154) a folder can carry.
const (
	SpecialSent    = `\Sent`
	SpecialDrafts  = `\Drafts`
	SpecialTrash   = `\Trash`
	SpecialJunk    = `\Junk`
	SpecialArchive = `\Archive`
	SpecialAll     = `\All`
	SpecialFlagged = `\Flagged`
)

// Errors callers test with errors.Is.
var (
	ErrNoFolder   = errors.New("archive: no such folder")
	ErrNoMessage  = errors.New("archive: no such message")
	ErrBadSpec    = errors.New("archive: bad archive spec")
	ErrCorrupt    = errors.New("archive: corrupt")
	ErrLocked     = errors.New("archive: locked by another run")
	ErrReadOnly   = errors.New("archive: opened read-only")
	ErrBadName    = errors.New("archive: folder name not allowed")
	ErrNotArchive = errors.New("archive: not a mailark archive")
)

// FolderInfo describes one folder.
type FolderInfo struct {
	// Name is the folder's archive name: UTF-8 components joined by "/",
	// "INBOX" for the inbox whatever the server called it. It is data,
	// never a path: the on-disk path is derived safely from it.
	Name string
	// SpecialUse is the RFC 6154 attribute (SpecialSent, ...) or "".
	SpecialUse string
	// Path is the folder's file (mbox) or directory (maildir), relative to
	// the archive root, with "/" separators.
	Path string
	// Messages and Bytes count what the index holds.
	Messages int
	Bytes    int64
	// NoSelect marks a folder that only holds other folders.
	NoSelect bool
}

// Meta is what the archive knows of one message.
type Meta struct {
	// Key identifies the message within its folder, stable for the life of
	// the archive (maildir: the unique part of the file name; mbox: the
	// offset of its From line, in decimal).
	Key       string
	Size      int64     // bytes of the message exactly as fetched
	SHA256    string    // lower-case hex of those bytes
	MessageID string    // raw Message-ID header value, trimmed; "" if none
	Flags     []string  // IMAP flags and keywords, sorted, never \Recent
	Date      time.Time // INTERNALDATE, with the zone the server gave
	UID       uint32    // UID on the IMAP source (0: not from IMAP)
	UIDL      string    // UIDL on the POP3 source ("": not from POP3)
	Added     time.Time // when it entered the archive (first seen)
}

// Reader is the read side shared by mailark archives and foreign trees.
// Messages returns metadata only; bodies are streamed by Open, so a reader
// never holds a mailbox in memory. The order of Messages is the folder's
// order on disk.
type Reader interface {
	Folders() ([]FolderInfo, error)
	Messages(folder string) ([]Meta, error)
	// Open streams one message's exact bytes.
	Open(folder, key string) (io.ReadCloser, error)
	Close() error
}

// AppendInfo is what the writer knows of a message before streaming it.
type AppendInfo struct {
	Flags []string  // \Recent is dropped
	Date  time.Time // INTERNALDATE; zero: taken from the message's Date/Received
	UID   uint32
	UIDL  string
}

// SyncState is a folder's position on its source, kept in the sidecar and
// advanced only by Commit (after the messages it covers are durable).
type SyncState struct {
	Source        string    `json:"source,omitempty"`      // account URL without secret
	ServerName    string    `json:"server_name,omitempty"` // the folder's name on the server
	Delimiter     string    `json:"delimiter,omitempty"`   // the server's hierarchy delimiter
	UIDValidity   uint32    `json:"uidvalidity,omitempty"`
	LastUID       uint32    `json:"last_uid,omitempty"`       // highest UID archived
	HighestModSeq uint64    `json:"highest_modseq,omitempty"` // CONDSTORE position for flag sync
	LastSync      time.Time `json:"last_sync,omitzero"`       // last successful run
	Gone          bool      `json:"gone,omitempty"`           // folder no longer on the server
	// UIDLAliases maps POP3 UIDLs to the archive key of the message they
	// name when that message was archived under another UIDL (a server
	// that regenerated its UIDLs). Only UIDLs still on the server are kept.
	UIDLAliases map[string]string `json:"uidl_aliases,omitempty"`
}
