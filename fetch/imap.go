package fetch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/progress"
)

// IMAP backs up every selected folder of an IMAP account into arc, or,
// with opt.DryRun, reports what it would fetch without writing anything.
//
// The server is never changed: folders are opened with EXAMINE and bodies
// fetched with BODY.PEEK[]. Each folder resumes where the last run
// stopped (UIDVALIDITY + last UID in the archive's sync state), flags
// changed on the server since are copied (CONDSTORE when offered), and
// folders that disappeared from the server stay in the archive, marked
// gone and reported.
//
// Folders are spread over opt.Connections connections, biggest first.
// A folder that fails (cannot be examined, keeps losing its connection)
// is reported and the others continue; the error then wraps
// mailerr.ErrPartial. Errors that concern the whole run (login, the
// archive's disk) stop it. On cancellation, what is already durable stays
// and the next run continues from there.
func IMAP(ctx context.Context, a *account.Account, arc *archive.Archive, opt Options) (*Result, error) {
	r := newIMAPRun(ctx, a, arc, opt)
	defer r.cancel()
	err := r.run()
	r.res.Duration = time.Since(r.started)
	return r.res, err
}

// Tuning of the fetch pipeline.
const (
	// batchMessages and batchBytes bound one UID FETCH command, and so
	// the amount of work a Commit (one durable sync) covers.
	batchMessages = 250
	batchBytes    = 24 << 20
	// A connection keeps pipelineMessages messages asked for and not yet
	// read, in at most pipelineCommands FETCH commands, so the server
	// never waits for the client. The window slides with every message
	// read, not with every command completed: Dovecot runs pipelined
	// FETCH commands side by side and interleaves their answers, so
	// commands in flight tend to complete together, and waiting for
	// completions would leave the link idle for a round trip each time.
	pipelineMessages = 2 * batchMessages
	pipelineCommands = 4
	// flagCommitEvery bounds the flag updates staged before a Commit.
	flagCommitEvery = 2000
	// stateEvery is how many batches may pass between two writes of a
	// folder's sync state (see folderSync.checkpoint).
	stateEvery = 8
)

type imapRun struct {
	ctx     context.Context // cancelled by the caller or by setFatal
	cancel  context.CancelFunc
	parent  context.Context // the caller's: cancelled only by SIGINT/SIGTERM
	acct    *account.Account
	arc     *archive.Archive
	opt     Options
	log     *slog.Logger
	prog    progress.Reporter
	source  string
	started time.Time

	commits sync.WaitGroup // folders' last commits, made in the background

	mu       sync.Mutex
	res      *Result
	fatal    error // an error that stops the whole run
	failures int   // folders given up
	netFails int   // of those, given up because the connection failed
}

func newIMAPRun(ctx context.Context, a *account.Account, arc *archive.Archive, opt Options) *imapRun {
	if opt.Connections <= 0 {
		opt.Connections = DefaultConnectionsFor(runtime.NumCPU())
	}
	switch {
	case opt.Retries == 0:
		opt.Retries = DefaultRetries
	case opt.Retries < 0:
		opt.Retries = 0
	}
	r := &imapRun{
		acct: a, arc: arc, opt: opt, log: opt.Logger, prog: opt.Progress,
		source: a.String(), started: time.Now(),
		res: &Result{Source: a.String(), DryRun: opt.DryRun},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.prog == nil {
		r.prog = progress.Discard
	}
	if arc != nil {
		r.res.Archive = string(arc.Format()) + ":" + arc.Root()
	}
	r.parent = ctx
	r.ctx, r.cancel = context.WithCancel(ctx)
	return r
}

// folderJob is one server folder selected for this run.
type folderJob struct {
	box    imapconn.Mailbox
	name   string // archive name
	exists bool   // the archive has the folder (before this run, or created by it)
	added  bool   // created by this run: its files are made while its EXAMINE is out
	state  archive.SyncState
	folder *archive.Folder // loaded (index and all) only when the folder is visited
	status *imap.StatusData
	weight int64 // expected bytes to fetch: bigger folders start first
	visit  bool  // needs EXAMINE (new messages, flag changes, first sync)
}

func (r *imapRun) run() error {
	var dials *extraDials
	if !r.opt.DryRun && r.opt.Connections > 1 && r.freshArchive() {
		// A first backup: every connection will have work, so the extra
		// ones log in alongside the first instead of after the plan.
		dials = r.startDials(r.opt.Connections - 1)
	}
	// The folder list goes out with the questions asked after login.
	conn, err := imapconn.DialOptions(r.ctx, r.acct, imapconn.Options{ListStatus: planStatus})
	if err != nil {
		dials.closeAll()
		return r.runError(err)
	}
	jobs, err := r.plan(conn)
	if err != nil {
		conn.Close()
		dials.closeAll()
		return r.runError(err)
	}
	var visits, quiet []*folderJob
	for _, j := range jobs {
		if j.visit {
			visits = append(visits, j)
		} else if !r.opt.DryRun {
			quiet = append(quiet, j)
		}
	}
	r.touchAll(quiet)
	slices.SortStableFunc(visits, func(a, b *folderJob) int { return cmp.Compare(b.weight, a.weight) })
	r.runWorkers(conn, visits, dials) // closes every connection
	r.commits.Wait()
	return r.finish()
}

// runError turns an error that ended the run into the returned error.
// r.ctx is also cancelled by setFatal to stop the other workers, so only
// the caller's context tells an interruption: a full disk must end as
// ErrLocalIO (exit 9), not as "interrupted".
func (r *imapRun) runError(err error) error {
	if errors.Is(err, mailerr.ErrInterrupted) || r.parent.Err() != nil {
		return mailerr.E(mailerr.ErrInterrupted, err, "fetch from %s interrupted; what was fetched is kept, the next run continues", r.acct.Host)
	}
	return err
}

func (r *imapRun) finish() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fatal != nil {
		return r.runError(r.fatal)
	}
	if r.ctx.Err() != nil {
		return r.runError(r.ctx.Err())
	}
	if r.netFails > 0 {
		// A dropped connection is worth another attempt now, not at the
		// next cron run: the command layer retries network errors, and
		// what arrived is kept.
		return mailerr.E(mailerr.ErrNetwork, nil, "%d folder(s) of %s could not be fetched completely because the connection failed (see the warnings); what arrived is kept, a rerun continues",
			r.netFails, r.acct.Host)
	}
	if r.failures > 0 {
		return mailerr.E(mailerr.ErrPartial, nil, "%d folder(s) of %s could not be fetched completely (see the warnings); the others are done, the next run retries",
			r.failures, r.acct.Host)
	}
	return nil
}

// planStatus is what plan asks of every folder.
var planStatus = &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: true, Size: true}

// plan lists the server's folders, decides which to work on, records
// them in the archive (unless dry run) and marks gone ones.
func (r *imapRun) plan(conn *imapconn.Conn) ([]*folderJob, error) {
	boxes, err := conn.ListStatus(r.ctx, planStatus)
	if err != nil {
		return nil, err
	}
	listed := map[string]bool{} // archive names present on the server
	byName := map[string]string{}
	var jobs []*folderJob
	for _, box := range boxes {
		name := imapconn.ArchiveName(box.Name, box.Delim, conn.Prefix)
		if box.NoSelect || name == "" {
			continue
		}
		if other, dup := byName[name]; dup {
			r.warn(fmt.Sprintf("server folders %q and %q both map to archive folder %q; skipping the second", shortName(other), shortName(box.Name), shortName(name)))
			r.countSkipped()
			continue
		}
		byName[name] = box.Name
		listed[name] = true
		if !r.opt.Selected(name) || (r.opt.SkipAllMail && isAllMail(box, name)) {
			r.countSkipped()
			continue
		}
		if box.BadName {
			r.mu.Lock()
			r.failures++
			r.res.FoldersSkipped++
			r.mu.Unlock()
			r.warn(fmt.Sprintf("folder %q skipped: the server sent its name as %q, which is not valid IMAP (modified UTF-7), so it cannot be opened; rename it with a mail program", shortName(name), shortName(box.RawName)))
			continue
		}
		jobs = append(jobs, &folderJob{box: box, name: name, status: box.Status})
	}
	if err := r.fillStatus(conn, jobs); err != nil {
		return nil, err
	}
	kept := jobs[:0]
	for i, err := range r.prepare(jobs) {
		j := jobs[i]
		if err != nil {
			// A name the archive cannot hold concerns that folder only.
			if isRunFatal(err) && !errors.Is(err, archive.ErrBadName) {
				return nil, err
			}
			r.mu.Lock()
			r.failures++
			r.res.FoldersSkipped++
			r.mu.Unlock()
			r.warn(fmt.Sprintf("folder %q skipped: %v", shortName(j.name), err))
			continue
		}
		kept = append(kept, j)
	}
	r.mu.Lock()
	r.res.Folders = len(kept)
	r.mu.Unlock()
	if err := r.markGone(listed); err != nil {
		return nil, err
	}
	return kept, nil
}

// shortName keeps a folder name readable in a message: a hostile server
// can send names of thousands of characters.
func shortName(name string) string {
	const keep = 80
	if len(name) <= keep {
		return name
	}
	cut := keep
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", name[:cut], len(name))
}

func isAllMail(box imapconn.Mailbox, name string) bool {
	return box.SpecialUse == imapconn.SpecialAll || strings.EqualFold(name, "[Gmail]/All Mail") ||
		strings.EqualFold(name, "[Google Mail]/All Mail")
}

// fillStatus asks STATUS for folders LIST-STATUS did not cover (servers
// without it), all commands in flight at once: replies are matched by
// name, so pipelining them is safe.
func (r *imapRun) fillStatus(conn *imapconn.Conn, jobs []*folderJob) error {
	opts := conn.SupportedStatus(&imap.StatusOptions{
		NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: true, Size: true})
	type pending struct {
		job *folderJob
		cmd interface {
			Wait() (*imap.StatusData, error)
		}
	}
	var cmds []pending
	for _, j := range jobs {
		if j.status == nil {
			cmds = append(cmds, pending{j, conn.Client.Status(j.box.Name, opts)})
		}
	}
	for _, p := range cmds {
		st, err := p.cmd.Wait()
		if err != nil {
			if conn.Broken() {
				return conn.Err(err, "asking folder status")
			}
			// The folder is listed but cannot be asked about: EXAMINE
			// will tell what is wrong with it.
			r.log.Debug("STATUS failed", "folder", p.job.box.Name, "err", err)
			continue
		}
		p.job.status = st
	}
	return nil
}

// prepare reads the archive side of the folders and decides which need a
// visit, recording the new ones in the archive (one durable write for
// all). It reads sync states only: a folder's index is loaded when the
// folder is visited, so a run with nothing new costs per folder, not per
// message archived. It returns one error per job.
func (r *imapRun) prepare(jobs []*folderJob) []error {
	errs := make([]error, len(jobs))
	var add []archive.FolderSpec
	var added []int // add[k] is jobs[added[k]]
	for i, j := range jobs {
		st, err := r.arc.FolderState(j.name)
		switch {
		case err == nil:
			j.exists, j.state = true, st
		case errors.Is(err, archive.ErrNoFolder):
			if !r.opt.DryRun {
				add = append(add, archive.FolderSpec{Name: j.name, SpecialUse: j.box.SpecialUse})
				added = append(added, i)
			}
		default:
			errs[i] = err
		}
	}
	if len(add) > 0 {
		for k, err := range r.arc.AddFolders(add) {
			i := added[k]
			if errs[i] = err; err != nil {
				continue
			}
			j := jobs[i]
			j.exists, j.added = true, true
			r.mu.Lock()
			r.res.NewFolders = append(r.res.NewFolders, j.name)
			r.mu.Unlock()
		}
	}
	for i, j := range jobs {
		if errs[i] != nil {
			continue
		}
		if j.exists && !j.added && j.box.SpecialUse != "" && !r.opt.DryRun {
			if errs[i] = r.arc.SetSpecialUse(j.name, j.box.SpecialUse); errs[i] != nil {
				continue
			}
		}
		j.visit, j.weight = r.needsVisit(j, j.state)
	}
	return errs
}

// needsVisit decides from the folder's status (LIST-STATUS or STATUS)
// and the archive's sync state whether the folder must be examined, and
// estimates how many bytes it will bring.
func (r *imapRun) needsVisit(j *folderJob, st archive.SyncState) (bool, int64) {
	s := j.status
	if s == nil || s.UIDNext == 0 || s.UIDValidity == 0 {
		return true, 1 // unknown: look
	}
	if st.UIDValidity != s.UIDValidity || st.ServerName != j.box.Name || st.Source != r.source ||
		st.Delimiter != delimString(j.box.Delim) || st.Gone {
		return true, estimateBytes(s, 0)
	}
	var msgs uint32
	if s.NumMessages != nil {
		msgs = *s.NumMessages
	}
	newUIDs := uint32(s.UIDNext) - 1 - min(st.LastUID, uint32(s.UIDNext)-1)
	if newUIDs > 0 {
		return true, estimateBytes(s, min(newUIDs, msgs))
	}
	if st.LastUID == 0 {
		return false, 0 // empty folder, known
	}
	// Flags: with CONDSTORE an unchanged HIGHESTMODSEQ proves nothing
	// changed; without it the flags must be fetched to know.
	if s.HighestModSeq != 0 && st.HighestModSeq == s.HighestModSeq {
		return false, 0
	}
	return true, 0
}

func estimateBytes(s *imap.StatusData, newMsgs uint32) int64 {
	var total, size int64
	if s.NumMessages != nil {
		total = int64(*s.NumMessages)
	}
	if s.Size != nil {
		size = *s.Size
	}
	if newMsgs == 0 {
		if size > 0 {
			return size
		}
		return total * 50 << 10
	}
	if total > 0 && size > 0 {
		return int64(newMsgs) * (size / total)
	}
	return int64(newMsgs) * 50 << 10
}

func delimString(d rune) string {
	if d == 0 {
		return ""
	}
	return string(d)
}

// touchAll records a successful sync of the folders that needed no
// visit. Each is a small durable write; done a few at a time, their
// syncs overlap.
func (r *imapRun) touchAll(jobs []*folderJob) {
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.touch(j)
		}()
	}
	wg.Wait()
}

// touch records a successful sync of a folder that needed no visit,
// without loading its index (see archive.SetFolderState for why no
// repair is needed).
func (r *imapRun) touch(j *folderJob) {
	st := j.state
	st.LastSync = time.Now().UTC()
	if err := r.arc.SetFolderState(j.name, st); err != nil {
		r.setFatal(err)
	}
}

// markGone flags archive folders of this account that the server no
// longer lists, and reports them. It reads and writes sync states only.
func (r *imapRun) markGone(listed map[string]bool) error {
	for _, name := range r.arc.FolderNames() {
		if listed[name] {
			continue
		}
		st, err := r.arc.FolderState(name)
		if err != nil {
			return err
		}
		if st.Source != r.source {
			continue // another account's folder, or a local one
		}
		r.mu.Lock()
		r.res.GoneFolders = append(r.res.GoneFolders, name)
		r.mu.Unlock()
		if st.Gone || r.opt.DryRun {
			continue
		}
		st.Gone = true
		if err := r.arc.SetFolderState(name, st); err != nil {
			return err
		}
		r.log.Info("folder no longer on the server; kept in the archive", "folder", name)
	}
	return nil
}

// runWorkers works through the folders over up to opt.Connections
// connections, the first of which is conn. Work starts on conn at once;
// each extra connection joins as soon as it is logged in (a login costs
// a few round trips, which would otherwise delay every folder). Any the
// server refuses (a connection limit) are simply not used. dials, when
// not nil, are extra connections dialled already.
func (r *imapRun) runWorkers(conn *imapconn.Conn, jobs []*folderJob, dials *extraDials) {
	queue := make(chan *folderJob, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.worker(conn, queue)
	}()
	extra := max(min(r.opt.Connections, len(jobs))-1, 0)
	if r.opt.DryRun {
		extra = 0
	}
	if dials == nil {
		dials = r.startDials(extra)
	}
	for i := range dials.n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := <-dials.ch
			switch {
			case c == nil:
			case i >= extra:
				c.Close() // dialled early, but there is no work for it
			default:
				r.worker(c, queue)
			}
		}()
	}
	wg.Wait()
}

// extraDials are extra connections being dialled; each dial delivers a
// connection, or nil when the server refused it.
type extraDials struct {
	ch chan *imapconn.Conn
	n  int
}

func (r *imapRun) startDials(n int) *extraDials {
	d := &extraDials{ch: make(chan *imapconn.Conn, n), n: n}
	for range n {
		go func() {
			c, err := r.dial()
			if err != nil {
				r.log.Info("extra connection not available; continuing with fewer", "err", err)
				c = nil
			}
			d.ch <- c
		}()
	}
	return d
}

// closeAll waits for the dials and closes what they opened (the run ended
// before they were used).
func (d *extraDials) closeAll() {
	if d == nil {
		return
	}
	for range d.n {
		if c := <-d.ch; c != nil {
			c.Close()
		}
	}
}

// freshArchive reports whether the archive holds nothing of this account
// yet: the run is a first backup.
func (r *imapRun) freshArchive() bool {
	for _, name := range r.arc.FolderNames() {
		if st, err := r.arc.FolderState(name); err == nil && st.Source == r.source {
			return false
		}
	}
	return true
}

// worker syncs folders off the queue until it is empty or the run stops.
// Each folder opens the next behind it once it has sent all it needs (see
// folderSync.allSent); a folder that then needs more is visited again
// after that one.
func (r *imapRun) worker(conn *imapconn.Conn, queue <-chan *folderJob) {
	w := &connWorker{r: r, conn: conn, queue: queue}
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	for !r.stopped() {
		var j *folderJob
		op, revisit := w.next, false
		w.next = nil
		switch {
		case op != nil:
			j = op.job
		case len(w.again) > 0:
			j, revisit = w.again[0], true
			w.again = w.again[1:]
		default:
			var ok bool
			if j, ok = <-queue; !ok {
				return
			}
		}
		w.syncWithRetries(j, op, revisit)
	}
}

// connWorker is one connection's share of the folders.
type connWorker struct {
	r     *imapRun
	conn  *imapconn.Conn // nil when none is usable
	queue <-chan *folderJob
	next  *opened      // opened behind the folder being visited
	again []*folderJob // visited, but need another visit (errRevisit)
}

// openAhead opens the next queued folder on the connection, if any.
func (w *connWorker) openAhead(conn *imapconn.Conn) func() bool {
	if w.r.opt.DryRun {
		return nil
	}
	return func() bool {
		if w.next != nil || conn != w.conn || w.r.stopped() {
			return false
		}
		select {
		case j, ok := <-w.queue:
			if !ok {
				return false
			}
			w.next = w.r.open(conn, j)
			return true
		default:
			return false
		}
	}
}

// syncWithRetries syncs one folder, reconnecting after network errors up
// to opt.Retries times. op, when not nil, is the folder opened already on
// w.conn; revisit: the folder was visited before this run and needs more,
// so nothing is opened behind it this time.
func (w *connWorker) syncWithRetries(j *folderJob, op *opened, revisit bool) {
	r := w.r
	for attempt := 0; ; attempt++ {
		if w.conn == nil || w.conn.Broken() {
			if w.conn != nil {
				w.conn.Close()
			}
			w.conn = nil
			c, err := r.dial()
			if err != nil {
				if attempt < r.opt.Retries && retryable(err) && r.backoff(attempt) {
					continue
				}
				r.folderFailed(j, err)
				return
			}
			w.conn = c
		}
		if op == nil || op.conn != w.conn {
			op = r.open(w.conn, j)
		}
		var ahead func() bool
		if !revisit {
			ahead = w.openAhead(w.conn)
		}
		err := r.visit(op, ahead)
		op = nil
		if err == nil {
			return
		}
		if errors.Is(err, errRevisit) {
			w.again = append(w.again, j)
			return
		}
		if isRunFatal(err) || r.stopped() {
			r.setFatal(err)
			return
		}
		if retryable(err) && attempt < r.opt.Retries && r.backoff(attempt) {
			r.log.Info("connection lost; resuming the folder on a new connection", "folder", j.name, "err", err)
			w.conn.Close()
			w.conn = nil
			continue
		}
		r.folderFailed(j, err)
		return
	}
}

func (r *imapRun) dial() (*imapconn.Conn, error) {
	return imapconn.Dial(r.ctx, r.acct)
}

// backoff waits before a retry (1 s, 2 s, 4 s, ...); false if cancelled.
func (r *imapRun) backoff(attempt int) bool {
	t := time.NewTimer(time.Second << attempt)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

func retryable(err error) bool {
	return errors.Is(err, mailerr.ErrNetwork) && !errors.Is(err, mailerr.ErrInterrupted)
}

// isRunFatal reports errors that concern every folder: the archive's disk
// or integrity, credentials, cancellation.
func isRunFatal(err error) bool {
	for _, k := range []error{mailerr.ErrLocalIO, mailerr.ErrDamaged, mailerr.ErrAuth, mailerr.ErrTLS,
		mailerr.ErrInterrupted, mailerr.ErrUsage, archive.ErrReadOnly} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

func (r *imapRun) stopped() bool { return r.ctx.Err() != nil }

func (r *imapRun) setFatal(err error) {
	r.mu.Lock()
	if r.fatal == nil && !(errors.Is(err, mailerr.ErrInterrupted) && r.fatal != nil) {
		r.fatal = err
	}
	r.mu.Unlock()
	r.cancel()
}

func (r *imapRun) folderFailed(j *folderJob, err error) {
	if isRunFatal(err) {
		r.setFatal(err)
		return
	}
	r.mu.Lock()
	r.failures++
	if errors.Is(err, mailerr.ErrNetwork) {
		r.netFails++
	}
	r.res.FoldersSkipped++
	r.mu.Unlock()
	r.warn(fmt.Sprintf("folder %q not fetched completely: %v", shortName(j.name), err))
}

func (r *imapRun) warn(msg string) {
	r.mu.Lock()
	r.res.Warnings = append(r.res.Warnings, msg)
	r.mu.Unlock()
	r.log.Warn(msg)
	r.prog.Warn(msg)
}

func (r *imapRun) countSkipped() {
	r.mu.Lock()
	r.res.FoldersSkipped++
	r.mu.Unlock()
}

func (r *imapRun) addPlanned(p PlannedFolder) {
	r.mu.Lock()
	r.res.Planned = append(r.res.Planned, p)
	r.mu.Unlock()
}

func (r *imapRun) addFetched(msgs int, bytes int64) {
	r.mu.Lock()
	r.res.NewMessages += msgs
	r.res.Bytes += bytes
	r.mu.Unlock()
}

func (r *imapRun) addFlagUpdates(n int) {
	r.mu.Lock()
	r.res.FlagUpdates += n
	r.mu.Unlock()
}
