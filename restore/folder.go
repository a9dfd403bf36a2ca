package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/imapconn"
	"github.com/mailark/mailark/internal/mailerr"
)

// folderRun is the state of one target folder across attempts.
type folderRun struct {
	plan     *folderPlan
	report   PlannedFolder
	cands    []*candidate
	digested bool // header digests computed for candidates without Message-ID
	planned  bool // report's Present/InLedger/Upload set by the first look at the target
}

// folder restores one target folder, resuming on a new connection after a
// connection failure (the ledger and the target's contents say where).
func (r *run) folder(ctx context.Context, pool *connPool, p *folderPlan) {
	fr := &folderRun{plan: p, report: PlannedFolder{Folder: p.Target, ServerName: p.Server,
		Sources: sourceNames(p), SpecialUse: p.SpecialUse, Create: p.Create}}
	defer func() { r.addPlan(fr.report) }()
	r.prog.Folder(p.Target)
	cands, err := r.candidates(p)
	if err != nil {
		fr.report.Note = "archive folder unreadable"
		r.fail(err)
		return
	}
	fr.cands = cands
	var lastErr error
	for attempt := 0; attempt <= max(r.opt.Retries, 0); attempt++ {
		if attempt > 0 {
			if !sleepCtx(ctx, time.Duration(attempt)*time.Second) {
				break
			}
			r.log.Info("resuming folder on a new connection", "folder", p.Server, "attempt", attempt+1, "err", lastErr)
		}
		c, err := pool.get()
		if err == nil {
			err = r.attempt(ctx, c, fr)
			pool.put(c)
		}
		if err == nil {
			return
		}
		lastErr = err
		if !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return
	}
	remaining := r.remaining(fr)
	fr.report.Failed += remaining
	fr.report.Note = "gave up: " + lastErr.Error()
	r.mu.Lock()
	r.res.Failed += remaining
	r.mu.Unlock()
	r.fail(lastErr)
}

// retryable says whether a new connection may get further: the network
// failed, or the server cut the connection. Authentication, TLS, local
// disk and interruption are not retried.
func retryable(err error) bool {
	for _, k := range []error{mailerr.ErrAuth, mailerr.ErrTLS, mailerr.ErrLocalIO, mailerr.ErrInterrupted, mailerr.ErrUsage} {
		if errors.Is(err, k) {
			return false
		}
	}
	return errors.Is(err, mailerr.ErrNetwork) || errors.Is(err, errConnLost)
}

// errConnLost marks an attempt that ended because its connection broke.
var errConnLost = errors.New("connection lost")

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// candidates lists the archive messages of a plan, oldest first, so the
// target's UIDs follow the history.
func (r *run) candidates(p *folderPlan) ([]*candidate, error) {
	var out []*candidate
	for _, f := range p.Sources {
		metas, err := r.src.Messages(f.Name)
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			out = append(out, &candidate{folder: f.Name, meta: m, identity: identityOf(m.MessageID, "")})
		}
	}
	slices.SortStableFunc(out, func(a, b *candidate) int {
		if c := a.meta.Date.Compare(b.meta.Date); c != 0 {
			return c
		}
		return cmp.Compare(a.folder, b.folder)
	})
	return out, nil
}

// attempt looks at the target folder, works out what is missing, and
// uploads it batch by batch.
func (r *run) attempt(ctx context.Context, c *imapconn.Conn, fr *folderRun) error {
	p := fr.plan
	st := &targetState{keywords: true}
	if p.Exists {
		if err := r.awaitInflight(ctx, c, p.Server); err != nil {
			return err
		}
		var err error
		if st, err = learnTarget(ctx, c, p.Server, r.opt.DryRun); err != nil {
			return err
		}
	}
	if st.hasNoID && !fr.digested {
		if err := r.digestCandidates(fr.cands); err != nil {
			return err
		}
		fr.digested = true
	}
	for _, cd := range fr.cands {
		cd.ledger = r.ledger != nil && r.ledger.Has(cd.folder, cd.meta.Key, cd.meta.SHA256)
	}
	m, err := match(r.pending(fr.cands), st.messages, r.crlfSize)
	if err != nil {
		return err
	}
	r.log.Debug("folder plan", "folder", p.Server, "on_server", len(st.messages), "present", len(m.present), "in_ledger", len(m.ledger), "upload", len(m.upload))
	r.account(fr, m)
	if r.opt.DryRun || len(m.upload) == 0 {
		return nil
	}
	return r.upload(ctx, c, fr, st, m.upload)
}

// pending leaves out the messages that already failed for their own
// reasons in this run (retrying them would fail again).
func (r *run) pending(cands []*candidate) []*candidate {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failedMsgs) == 0 {
		return cands
	}
	out := make([]*candidate, 0, len(cands))
	for _, c := range cands {
		if !r.failedMsgs[c.folder+"\x00"+c.meta.Key] {
			out = append(out, c)
		}
	}
	return out
}

// account records the first look at the target in the report, the
// totals and the progress display; later attempts only resume.
func (r *run) account(fr *folderRun, m *matchResult) {
	if fr.planned {
		return
	}
	fr.planned = true
	var bytes int64
	for _, c := range m.upload {
		bytes += c.meta.Size
	}
	fr.report.Present, fr.report.InLedger = len(m.present), len(m.ledger)
	r.mu.Lock()
	r.res.Skipped += len(m.present) + len(m.ledger)
	if r.opt.DryRun {
		fr.report.Upload, fr.report.Bytes = len(m.upload), bytes
		r.res.Uploaded += len(m.upload)
		r.res.Bytes += bytes
	}
	r.mu.Unlock()
	r.prog.Start(fr.plan.Target, int64(len(m.upload)), bytes)
}

// remaining counts the messages of a folder that are neither uploaded,
// skipped nor failed yet.
func (r *run) remaining(fr *folderRun) int {
	if !fr.planned {
		return len(fr.cands)
	}
	n := len(fr.cands) - fr.report.Present - fr.report.InLedger - fr.report.Upload - fr.report.Failed
	return max(n, 0)
}

// upload sends the missing messages in batches and records each batch in
// the ledger once the server has acknowledged it.
func (r *run) upload(ctx context.Context, c *imapconn.Conn, fr *folderRun, st *targetState, todo []*candidate) error {
	multi := r.res.MultiAppend
	for len(todo) > 0 {
		if ctx.Err() != nil {
			return mailerr.E(mailerr.ErrInterrupted, ctx.Err(), "restore interrupted")
		}
		n := batchLen(todo, r.opt.BatchMessages, r.opt.BatchBytes)
		items := make([]*uploadItem, n)
		for i, cd := range todo[:n] {
			items[i] = &uploadItem{c: cd, flags: sanitizeFlags(cd.meta.Flags, st), date: appendDate(cd.meta.Date)}
		}
		f := fence{Folder: fr.plan.Server, UIDValidity: st.uidValidity, UIDNext: st.uidNext, Count: n, Whole: multi}
		var outs []outcome
		if multi {
			outs = appendMulti(ctx, c, r.src, fr.plan.Server, items, func(sent bool) error {
				f.Sent = sent
				return r.journal.record(f)
			})
		}
		if outs == nil {
			f.Whole, f.Sent = false, false
			if err := r.journal.record(f); err != nil {
				return err
			}
			outs = appendPipelined(c, r.src, fr.plan.Server, items)
		}
		if err := r.journal.answered(f.Folder, outs); err != nil {
			return err
		}
		if err := r.settle(fr, items, outs); err != nil {
			return err
		}
		if err := r.advanceUIDNext(c, fr.plan.Server, st, outs); err != nil {
			return err
		}
		todo = todo[n:]
	}
	return nil
}

// advanceUIDNext keeps the folder's UIDNEXT current for the next fence:
// from APPENDUID when every stored message has one, else from STATUS.
func (r *run) advanceUIDNext(c *imapconn.Conn, mailbox string, st *targetState, outs []outcome) error {
	stored, withUID := 0, 0
	for _, o := range outs {
		if o.ok {
			stored++
			if o.uid != 0 && o.uidValidity == st.uidValidity {
				withUID++
				st.uidNext = max(st.uidNext, o.uid+1)
			}
		}
	}
	if stored == withUID {
		return nil
	}
	s, err := c.Client.Status(mailbox, &imap.StatusOptions{UIDNext: true}).Wait()
	if err != nil {
		return c.Err(err, "checking "+mailbox)
	}
	st.uidNext = uint32(s.UIDNext)
	return nil
}

// batchLen is how many of todo go into the next batch.
func batchLen(todo []*candidate, maxMsgs int, maxBytes int64) int {
	var bytes int64
	for i, c := range todo {
		if i == maxMsgs || (i > 0 && bytes+c.meta.Size > maxBytes) {
			return i
		}
		bytes += c.meta.Size
	}
	return len(todo)
}

// settle books the outcome of a batch: the ledger first (durably), then
// the counters. It returns an error when the connection failed, so the
// folder resumes on a new one.
func (r *run) settle(fr *folderRun, items []*uploadItem, outs []outcome) error {
	var entries []archive.LedgerEntry
	var connErr error
	for i, o := range outs {
		it := items[i]
		switch {
		case o.ok:
			entries = append(entries, archive.LedgerEntry{Folder: it.c.folder, Key: it.c.meta.Key, SHA256: it.c.meta.SHA256,
				TargetFolder: fr.plan.Server, UIDValidity: o.uidValidity, UID: o.uid})
		case o.messageErr:
			r.warn("message %s in %s not uploaded: %v", it.c.meta.Key, it.c.folder, o.err)
			r.mu.Lock()
			r.failedMsgs[it.c.folder+"\x00"+it.c.meta.Key] = true
			r.res.Failed++
			r.mu.Unlock()
			fr.report.Failed++
			r.fail(mailerr.E(mailerr.ErrServer, o.err, "some messages were refused"))
		case connErr == nil:
			connErr = o.err
		}
	}
	if r.ledger != nil && len(entries) > 0 {
		if err := r.ledger.Record(entries...); err != nil {
			return err
		}
	}
	var bytes int64
	for i, o := range outs {
		if o.ok {
			bytes += items[i].c.meta.Size
			r.prog.Message(items[i].c.meta.Size)
		}
	}
	fr.report.Upload += len(entries)
	fr.report.Bytes += bytes
	r.mu.Lock()
	r.res.Uploaded += len(entries)
	r.res.Bytes += bytes
	r.mu.Unlock()
	if connErr != nil {
		if errors.Is(connErr, mailerr.ErrNetwork) || errors.Is(connErr, mailerr.ErrInterrupted) {
			return connErr
		}
		return fmt.Errorf("%w: %w", errConnLost, connErr)
	}
	return nil
}

// digestCandidates computes the header digest of the archive messages
// without Message-ID; only needed when the target has such messages too.
func (r *run) digestCandidates(cands []*candidate) error {
	for _, c := range cands {
		if normalizeMessageID(c.meta.MessageID) != "" {
			continue
		}
		rc, err := r.src.Open(c.folder, c.meta.Key)
		if err != nil {
			return mailerr.E(mailerr.ErrLocalIO, err, "reading %s/%s", c.folder, c.meta.Key)
		}
		c.identity = identityOf("", headerDigest(rc))
		rc.Close()
	}
	return nil
}

// crlfSize is the CRLF size of an archive message, for matching.
func (r *run) crlfSize(c *candidate) (int64, error) {
	rc, err := r.src.Open(c.folder, c.meta.Key)
	if err != nil {
		return 0, mailerr.E(mailerr.ErrLocalIO, err, "reading %s/%s", c.folder, c.meta.Key)
	}
	defer rc.Close()
	return crlfSize(rc)
}
