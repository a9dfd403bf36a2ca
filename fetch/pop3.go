package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/pop3conn"
	"github.com/mailark/mailark/internal/progress"
)

// POP3 commits a batch of fetched messages to the archive every
// pop3CommitMessages messages or pop3CommitBytes bytes: one sync per batch
// instead of one per message, at the price of refetching at most one
// batch after a crash. Deletion waits for the final commit anyway.
const (
	pop3CommitMessages = 500
	pop3CommitBytes    = 64 << 20
)

// pop3Folder is where POP3 mail goes in the archive.
const pop3Folder = "INBOX"

// POP3 copies a POP3 maildrop into the archive's INBOX.
//
// It is incremental by UIDL: a message whose UIDL the archive holds (with
// a consistent size) is not fetched again. Messages the archive may hold
// under another UIDL, or on a server without UIDL, are compared with the
// archived candidates of the same size by their header (TOP n 0) or,
// without TOP, by the SHA-256 of their content, and are fetched only when
// no archived copy matches; matches are remembered as UIDL aliases.
//
// With Delete (or DeleteOlderThan) it removes from the server only
// messages that are committed to the archive's index and whose content
// was proven identical to the archived copy in this session (fetched now,
// or retrieved and hashed), and only by a final QUIT after the last
// Commit returned: a run that dies earlier deletes nothing, and the next
// run finishes the job. A Result is returned even with an error, counting
// what was done.
func POP3(ctx context.Context, a *account.Account, arc *archive.Archive, opt Options) (*Result, error) {
	start := time.Now()
	r := &pop3Run{
		acct: a,
		arc:  arc,
		opt:  opt,
		res: &Result{
			Source:  a.String(),
			Archive: string(arc.Format()) + ":" + arc.Root(),
			Folders: 1,
			DryRun:  opt.DryRun,
		},
		prog: opt.Progress,
		log:  opt.Logger,
		now:  time.Now(),
	}
	if r.prog == nil {
		r.prog = progress.Discard
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	err := r.run(ctx)
	r.res.Duration = time.Since(start)
	return r.res, err
}

// pop3Run is the state of one POP3 fetch.
type pop3Run struct {
	acct *account.Account
	arc  *archive.Archive
	opt  Options
	res  *Result
	prog progress.Reporter
	log  *slog.Logger
	now  time.Time

	conn   *pop3conn.Conn
	folder *archive.Folder // nil in a dry run when INBOX does not exist yet
	noUIDL bool            // content mode: the server's UIDLs cannot be trusted or do not exist
	msgs   []*pop3Msg
	byNum  map[int]*pop3Msg
	known  *archiveView

	pending      []*pop3Msg // appended, not yet committed
	pendingBytes int64
	// committing is the background Commit in flight (nil if none): it
	// answers with its error and the messages it was to commit.
	committing chan commitResult
}

type commitResult struct {
	batch []*pop3Msg
	err   error
}

// pop3Msg is one server message and what this run learned about it.
type pop3Msg struct {
	pop3conn.Entry
	// archived is the archive's copy of this message, nil if none.
	archived *archive.Meta
	// confirmed: the server's header block is the archived copy's.
	confirmed bool
	// proven: the server's bytes are the archived copy's (fetched, or
	// retrieved and hashed, in this session); deletion requires it.
	proven bool
	staged *archive.Meta // appended, awaiting Commit
}

func (r *pop3Run) run(ctx context.Context) error {
	conn, err := pop3conn.Dial(ctx, r.acct)
	if err != nil {
		return err
	}
	defer conn.Close()
	r.conn = conn
	if r.opt.POP3Window > 0 {
		conn.Window = r.opt.POP3Window
	}
	r.log.Debug("pop3 session", "server", conn.Greeting(), "pipelining", conn.Pipelining())

	if err := r.openFolder(); err != nil {
		return err
	}
	if err := r.list(ctx); err != nil {
		return err
	}
	r.known = newArchiveView(r.folder)
	fetch, err := r.plan(ctx)
	if err != nil {
		return err
	}
	if r.opt.DryRun {
		r.reportPlan(fetch)
		return r.quit(ctx, false)
	}
	if err := r.fetch(ctx, fetch); err != nil {
		// Keep what arrived whole: the next run need not fetch it again.
		if cerr := r.commit(); cerr != nil {
			return fmt.Errorf("%w (keeping the messages fetched so far failed too: %v)", err, cerr)
		}
		if errors.Is(err, mailerr.ErrInterrupted) {
			return mailerr.E(mailerr.ErrInterrupted, err, "fetch from %s interrupted; what was fetched is kept, the next run continues", r.acct.Host)
		}
		return err
	}
	if err := r.saveState(); err != nil {
		return err
	}
	return r.deleteAndQuit(ctx)
}

// openFolder opens (or, unless dry run, creates) the archive's INBOX.
func (r *pop3Run) openFolder() error {
	if r.opt.DryRun {
		f, err := r.arc.Folder(pop3Folder)
		if errors.Is(err, archive.ErrNoFolder) {
			return nil
		}
		r.folder = f
		return err
	}
	f, err := r.arc.CreateFolder(pop3Folder, "")
	r.folder = f
	return err
}

// list reads the maildrop's listing; without (usable) UIDLs the run
// compares content instead.
func (r *pop3Run) list(ctx context.Context) error {
	entries, err := r.conn.UIDL(ctx)
	if errors.Is(err, pop3conn.ErrNoUIDL) {
		r.warn("%s does not support UIDL: every message is compared with the archive by header or content, which costs more per run", r.acct.Addr())
		r.noUIDL = true
		entries, err = r.conn.List(ctx)
	}
	if err != nil {
		return err
	}
	if !r.noUIDL && hasDuplicateUIDL(entries) {
		r.warn("%s gave the same UIDL to two messages: its UIDLs cannot be trusted, so messages are compared by header or content", r.acct.Addr())
		r.noUIDL = true
	}
	r.byNum = make(map[int]*pop3Msg, len(entries))
	for _, e := range entries {
		if r.noUIDL {
			e.UIDL = ""
		}
		m := &pop3Msg{Entry: e}
		r.msgs = append(r.msgs, m)
		r.byNum[e.Num] = m
	}
	return nil
}

func hasDuplicateUIDL(entries []pop3conn.Entry) bool {
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if seen[e.UIDL] {
			return true
		}
		seen[e.UIDL] = true
	}
	return false
}

// wantsDeletion reports whether an archived message should leave the
// server under the delete options.
func (r *pop3Run) wantsDeletion(a *archive.Meta) bool {
	switch {
	case r.opt.DeleteOlderThan > 0:
		return !a.Added.IsZero() && r.now.Sub(a.Added) >= r.opt.DeleteOlderThan
	case r.opt.Delete:
		return true
	}
	return false
}

// fetch retrieves the messages not in the archive, appending each and
// committing in batches.
func (r *pop3Run) fetch(ctx context.Context, fetch []*pop3Msg) error {
	var total int64
	for _, m := range fetch {
		total += m.Size
	}
	r.prog.Start(pop3Folder, int64(len(fetch)), total)
	r.prog.Folder(pop3Folder)
	if len(fetch) == 0 {
		return nil
	}
	var flags []string
	if r.opt.MarkSeen {
		flags = []string{archive.FlagSeen}
	}
	return r.retrSkippingVanished(ctx, nums(fetch), func(num int, body io.Reader) error {
		m := r.byNum[num]
		meta, err := r.folder.Append(body, archive.AppendInfo{UIDL: m.UIDL, Flags: flags})
		if err != nil {
			return err
		}
		m.staged = &meta
		r.pending = append(r.pending, m)
		r.pendingBytes += meta.Size
		r.prog.Message(meta.Size)
		if len(r.pending) >= pop3CommitMessages || r.pendingBytes >= pop3CommitBytes {
			return r.commitInBackground()
		}
		return nil
	})
}

// retrSkippingVanished retrieves nums; a message the server refuses
// (another client deleted it since the listing) is reported and skipped.
func (r *pop3Run) retrSkippingVanished(ctx context.Context, todo []int, fn func(int, io.Reader) error) error {
	for len(todo) > 0 {
		err := r.conn.Retr(ctx, todo, fn)
		var re *pop3conn.ReplyError
		if err == nil || !errors.As(err, &re) || re.Num == 0 {
			return err
		}
		r.warn("%s refused message %d (%s); skipped, it is probably deleted by another client", r.acct.Addr(), re.Num, re.Text)
		i := slices.Index(todo, re.Num)
		if i < 0 {
			return err
		}
		todo = todo[i+1:]
	}
	return nil
}

// commit makes the appended messages durable; only then do they count
// as archived (and become deletable).
func (r *pop3Run) commit() error {
	if err := r.waitCommit(); err != nil {
		return err
	}
	batch := r.takePending()
	return r.settle(batch, r.commitBatch(batch))
}

// commitInBackground starts the Commit of the appended messages and
// returns while it runs: the archive takes the next messages during its
// syncs, so the stream from the server does not pause for the disk. One
// runs at a time; its error surfaces at the next commit.
func (r *pop3Run) commitInBackground() error {
	if err := r.waitCommit(); err != nil {
		return err
	}
	batch := r.takePending()
	done := make(chan commitResult, 1)
	r.committing = done
	go func() { done <- commitResult{batch, r.commitBatch(batch)} }()
	return nil
}

// waitCommit waits for the background Commit, if any.
func (r *pop3Run) waitCommit() error {
	if r.committing == nil {
		return nil
	}
	res := <-r.committing
	r.committing = nil
	return r.settle(res.batch, res.err)
}

func (r *pop3Run) takePending() []*pop3Msg {
	batch := r.pending
	r.pending, r.pendingBytes = nil, 0
	return batch
}

// commitBatch commits the folder; batch's messages become archived.
func (r *pop3Run) commitBatch(batch []*pop3Msg) error {
	if r.folder == nil {
		return nil
	}
	if err := r.folder.Commit(); err != nil {
		return err
	}
	for _, m := range batch {
		m.archived, m.staged = m.staged, nil
		m.confirmed, m.proven = true, true
	}
	return nil
}

// settle counts a committed batch, or after a failure puts it back in
// front of the pending messages (the archive keeps them staged).
func (r *pop3Run) settle(batch []*pop3Msg, err error) error {
	if err != nil {
		r.pending = append(batch, r.pending...)
		for _, m := range batch {
			r.pendingBytes += m.staged.Size
		}
		return err
	}
	for _, m := range batch {
		r.res.NewMessages++
		r.res.Bytes += m.archived.Size
	}
	return nil
}

// saveState commits the last batch with the folder's sync state: the
// source, the time of this successful run and the UIDL aliases still in
// use.
func (r *pop3Run) saveState() error {
	st := r.folder.State()
	if st.Source != "" && st.Source != r.acct.String() {
		r.warn("the archive's INBOX was last fetched from %s; keep one archive per POP3 account, or UIDLs of the two servers may be mistaken for each other", st.Source)
	}
	st.Source, st.ServerName, st.LastSync = r.acct.String(), pop3Folder, time.Now()
	st.UIDLAliases = nil
	for _, m := range r.msgs {
		if m.archived != nil && m.UIDL != "" && m.archived.UIDL != m.UIDL {
			if st.UIDLAliases == nil {
				st.UIDLAliases = map[string]string{}
			}
			st.UIDLAliases[m.UIDL] = m.archived.Key
		}
	}
	r.folder.SetState(st)
	return r.commit()
}

// deleteAndQuit marks the proven, committed messages the options say
// to delete and ends the session; the server deletes them at QUIT.
func (r *pop3Run) deleteAndQuit(ctx context.Context) error {
	var del []int
	for _, m := range r.msgs {
		if m.archived != nil && m.proven && r.wantsDeletion(m.archived) {
			del = append(del, m.Num)
		}
	}
	if len(del) == 0 {
		return r.quit(ctx, false)
	}
	err := r.conn.Dele(ctx, del...)
	refused := countRefusals(err)
	if err != nil && refused == 0 {
		return err // connection trouble: nothing will be deleted
	}
	if refused > 0 {
		var re *pop3conn.ReplyError
		errors.As(err, &re)
		r.warn("%s refused to delete %d message(s), e.g. %s: %s; they are archived and the next run tries again", r.acct.Addr(), refused, re.Command, re.Text)
	}
	if err := r.quit(ctx, true); err != nil {
		return err
	}
	r.res.Deleted = len(del) - refused
	return nil
}

// quit ends the session. Without deletions at stake a failed QUIT is
// only a warning.
func (r *pop3Run) quit(ctx context.Context, deleting bool) error {
	err := r.conn.Quit(ctx)
	if err != nil && !deleting {
		r.warn("ending the POP3 session: %v", err)
		return nil
	}
	return err
}

// countRefusals counts the -ERR replies inside err (Dele joins them).
func countRefusals(err error) int {
	if err == nil {
		return 0
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range joined.Unwrap() {
			n += countRefusals(e)
		}
		return n
	}
	var re *pop3conn.ReplyError
	if errors.As(err, &re) {
		return 1
	}
	return 0
}

func (r *pop3Run) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.res.Warnings = append(r.res.Warnings, msg)
	r.prog.Warn(msg)
	r.log.Warn(msg)
}

// reportPlan fills a dry run's Result: what would be fetched and deleted.
func (r *pop3Run) reportPlan(fetch []*pop3Msg) {
	pf := PlannedFolder{Folder: pop3Folder, ServerName: pop3Folder, Messages: len(fetch), Create: r.folder == nil}
	for _, m := range fetch {
		pf.Bytes += m.Size
		r.log.Info("would fetch", "msg", m.Num, "uidl", m.UIDL, "size", m.Size)
	}
	r.res.Planned = []PlannedFolder{pf}
	for _, m := range r.msgs {
		// A real run proves each by content before deleting it.
		if m.archived != nil && r.wantsDeletion(m.archived) {
			r.res.Deleted++
			r.log.Info("would delete", "msg", m.Num, "uidl", m.UIDL)
		}
	}
	if r.opt.Delete && r.opt.DeleteOlderThan == 0 {
		r.res.Deleted += len(fetch) // archived by the real run, then deleted
	}
}

func nums(ms []*pop3Msg) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = m.Num
	}
	return out
}
