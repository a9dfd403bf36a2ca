package restore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn"
	"github.com/mailark/mailark/internal/mailerr"
)

// Batches in flight.
//
// A server keeps executing the commands it has received completely even
// after the client is gone: a restore killed just after sending a batch
// leaves that batch being stored while the next run already looks at the
// folder. Without care the next run would not see the batch yet, upload it
// again, and find two copies later.
//
// So before a batch can complete on the server, its fence is written to a
// small journal per target account (fsync'ed): the folder, its UIDVALIDITY
// and UIDNEXT before the batch, and the batch size. A MULTIAPPEND is
// fenced after its last literal and before the CRLF that completes it, so
// a run that dies before the fence never completed the command; once the
// CRLF is written the fence is marked sent. Pipelined single APPENDs are
// fenced before the batch starts.
//
// Before a run (or a resumed attempt) looks at a folder whose last fence
// is recent, it waits until the batch has landed — UIDNEXT has moved past
// the fence — or, when landing is not certain (a MULTIAPPEND not marked
// sent may have died before its CRLF; of single APPENDs any prefix may
// land), until the folder has been quiet for a while: the server already
// holds every byte of such a command, so only its commit is outstanding.
// Never longer than Options.InflightWait.

// DefaultInflightWait bounds the wait for a batch a previous run left in
// flight.
const DefaultInflightWait = 30 * time.Second

// quietPeriod is how long a folder must not change before a partly sent
// batch of single APPENDs is taken as finished.
const quietPeriod = 2 * time.Second

// fence is one journal line.
type fence struct {
	Folder      string    `json:"folder"` // server name
	UIDValidity uint32    `json:"uidvalidity"`
	UIDNext     uint32    `json:"uidnext"` // before the batch
	Count       int       `json:"count"`
	Whole       bool      `json:"whole"`          // all or nothing (MULTIAPPEND)
	Sent        bool      `json:"sent,omitempty"` // the command was completed on the wire
	At          time.Time `json:"at"`
}

// journal is the append-only fence file of one target account.
type journal struct {
	mu     sync.Mutex
	f      *os.File
	recent map[string]fence // last fence per folder, from this and earlier runs
}

// journalPath is $XDG_STATE_HOME/mailark/inflight/<account>-<digest>.jsonl.
func journalPath(target *account.Account) (string, error) {
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" || !filepath.IsAbs(state) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		state = filepath.Join(home, ".local", "state")
	}
	h := sha256.Sum256([]byte(target.String()))
	name := readableName(target.User+"@"+target.Host) + "-" + hex.EncodeToString(h[:6]) + ".jsonl"
	return filepath.Join(state, "mailark", "inflight", name), nil
}

// openJournal reads the fences younger than maxAge and opens the file for
// appending. An old journal (every fence stale) starts afresh.
func openJournal(target *account.Account, maxAge time.Duration) (*journal, error) {
	path, err := journalPath(target)
	if err != nil {
		return nil, mailerr.E(mailerr.ErrLocalIO, err, "cannot find a place for the restore journal; set XDG_STATE_HOME")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, mailerr.E(mailerr.ErrLocalIO, err, "create %s", filepath.Dir(path))
	}
	j := &journal{recent: map[string]fence{}}
	if data, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(data)
		for sc.Scan() {
			var f fence
			if json.Unmarshal(sc.Bytes(), &f) == nil && time.Since(f.At) < maxAge {
				j.recent[f.Folder] = f
			}
		}
		data.Close()
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if len(j.recent) == 0 {
		flags |= os.O_TRUNC
	}
	j.f, err = os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, mailerr.E(mailerr.ErrLocalIO, err, "open restore journal %s", path)
	}
	return j, nil
}

// record appends a fence and makes it durable before returning.
func (j *journal) record(f fence) error {
	f.At = time.Now().UTC()
	line, err := json.Marshal(f)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return mailerr.E(mailerr.ErrLocalIO, err, "write restore journal")
	}
	if err := j.f.Sync(); err != nil {
		return mailerr.E(mailerr.ErrLocalIO, err, "sync restore journal")
	}
	j.recent[f.Folder] = f
	return nil
}

// answered retires the fence of a batch the server has answered in full
// (each message stored or refused): nothing of it can land later. When
// some message was refused the batch will never complete as fenced, so
// the retirement is written down too; otherwise the fence is satisfied
// by UIDNEXT anyway.
func (j *journal) answered(folder string, outs []outcome) error {
	allOK := true
	for _, o := range outs {
		if !o.ok && !o.messageErr {
			return nil // the connection failed: the server may still be at it
		}
		allOK = allOK && o.ok
	}
	done := fence{Folder: folder} // Count 0: nothing to wait for
	if !allOK {
		return j.record(done)
	}
	done.At = time.Now().UTC()
	j.mu.Lock()
	j.recent[folder] = done
	j.mu.Unlock()
	return nil
}

func (j *journal) last(folder string) (fence, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f, ok := j.recent[folder]
	return f, ok
}

func (j *journal) close() error { return j.f.Close() }

// awaitInflight waits, before a folder is looked at, for the batch its
// last recent fence describes.
func (r *run) awaitInflight(ctx context.Context, c *imapconn.Conn, folder string) error {
	if r.journal == nil {
		return nil
	}
	f, ok := r.journal.last(folder)
	if !ok || time.Since(f.At) > r.opt.InflightWait {
		return nil
	}
	var lastNext uint32
	lastChange := f.At
	for {
		st, err := c.Client.Status(folder, &imap.StatusOptions{UIDValidity: true, UIDNext: true}).Wait()
		if err != nil {
			return c.Err(err, "checking "+folder)
		}
		next := uint32(st.UIDNext)
		if st.UIDValidity != f.UIDValidity || next >= f.UIDNext+uint32(f.Count) {
			return nil
		}
		now := time.Now()
		if next != lastNext {
			lastNext, lastChange = next, now
		}
		switch {
		case now.Sub(f.At) > r.opt.InflightWait:
			r.log.Info("a batch of an interrupted run did not arrive; going on", "folder", folder)
			return nil
		case !(f.Whole && f.Sent) && now.Sub(lastChange) > quietPeriod && now.Sub(f.At) > quietPeriod:
			return nil
		}
		r.log.Debug("waiting for a batch still in flight", "folder", folder, "uidnext", next, "want", f.UIDNext+uint32(f.Count))
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}
