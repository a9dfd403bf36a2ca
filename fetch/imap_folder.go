package fetch

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/imapconn"
)

// folderSync is the work on one folder over one connection.
//
// Durability and resumption: messages are appended as they stream in and
// made durable by a Commit after every batch; the sync state's LastUID
// only ever covers UIDs all archived (the lowest UID not yet archived,
// minus one), so a crash or a failed message never skips anything, and
// the next run skips what the index already holds (ByUID) instead of
// fetching it again.
type folderSync struct {
	r      *imapRun
	conn   *imapconn.Conn
	job    *folderJob
	folder *archive.Folder
	sel    *imap.SelectData

	condstore bool // the folder reports HIGHESTMODSEQ
	// rescan: UIDVALIDITY changed since the last run, so archived UIDs
	// mean nothing; every message is fetched and matched by SHA-256
	// against the index so that nothing is added twice.
	rescan bool
	// pending is the listing sent along with the EXAMINE (nil once read).
	pending *listing
	// dynamicFrom, while a body listing is read, admits new UIDs from it
	// on as they come (0 otherwise).
	dynamicFrom imap.UID
	// announced: the folder's totals went to the progress reporter.
	announced bool
	// commitsPending counts batch commits still running.
	commitsPending sync.WaitGroup
	// win is the flow control of fetchNew's batches (nil outside them).
	win *window
	// checkpoints counts the batches committed (see checkpoint).
	checkpoints int
	// ahead opens the next folder on the connection (nil: not allowed
	// now); movedOn records that it did: from then on the server answers
	// for that folder, and this one may send nothing more (see allSent).
	ahead   func() bool
	movedOn bool

	mu       sync.Mutex
	st       archive.SyncState // working copy, written at checkpoints
	expected []uidSize         // UIDs to fetch, ascending
	pos      map[imap.UID]int  // UID -> index in expected
	state    []uidState        // per expected UID
	claimed  map[string]bool   // rescan: archive keys already matched
	err      error             // first error of a batch consumer
}

type uidSize struct {
	uid  imap.UID
	size int64
}

// opened is a folder whose EXAMINE, and the listing sent with it, are on
// their way to the server: the first half of a visit. A connection opens
// the next folder while the answers of the one before are still coming
// (see folderSync.allSent), so that a distant server is never left idle
// for the round trip between two folders.
type opened struct {
	conn    *imapconn.Conn
	job     *folderJob
	st      archive.SyncState
	sel     *imapclient.SelectCommand // nil when err came first
	pending *listing
	err     error // of the archive side; the answers are drained by visit
}

// open sends a folder's EXAMINE and listing, and gets the archive side
// ready while the server answers. It never waits for the server.
func (r *imapRun) open(conn *imapconn.Conn, j *folderJob) *opened {
	op := &opened{conn: conn, job: j}
	if j.folder == nil && j.exists && !j.added {
		// Loading the index (and repairing what a crashed run left) is
		// the expensive part of a visit; folders that need none skip it.
		f, err := r.arc.Folder(j.name)
		if err != nil {
			op.err = err
			return op
		}
		j.folder = f
	}
	if j.folder != nil {
		op.st = j.folder.State()
	}
	st := op.st
	condstore := conn.Caps.Has(imap.CapCondStore)
	op.sel = conn.Client.Select(j.box.Name, &imap.SelectOptions{ReadOnly: true, CondStore: condstore})
	// The listing of new messages goes out with the EXAMINE instead of
	// after its answer: one round trip per folder less, which is what a
	// distant server charges for. It assumes UIDVALIDITY is unchanged;
	// listNew drops it and lists again when it is not.
	if from := imap.UID(st.LastUID + 1); st.LastUID < math.MaxUint32 {
		// The first batch of new mail has its bodies asked for in the
		// same round trip: all of it when it fits one batch (the bodies
		// list themselves), else the first batch's UIDs while the rest is
		// listed.
		var head imap.UID
		if !r.opt.DryRun && (j.folder == nil || j.folder.HighestUID() <= st.LastUID) {
			head = firstBatch(j, st)
		}
		op.pending = startListing(conn, from, head)
	}
	if j.folder == nil && j.exists {
		// New this run: its files are created while the server answers.
		f, err := r.arc.Folder(j.name)
		if err != nil {
			op.err = err
			return op
		}
		j.folder = f
	}
	return op
}

// asksAll reports whether what open sent is all a folder can need,
// whatever the EXAMINE answers: a first sync (no UIDVALIDITY to differ,
// so no rescan; nothing archived, so no flag sync) whose new mail was
// asked for whole with the EXAMINE. Only a message the server leaves out
// can need more (see errRevisit).
func (op *opened) asksAll() bool {
	return op.pending != nil && op.pending.bodies != nil && op.pending.fetch == nil &&
		op.st.UIDValidity == 0 && op.st.LastUID == 0
}

// visit is the second half of a folder's visit: it reads the answers to
// what open sent and brings the archive up to date. ahead, when not nil,
// may open the next folder on the same connection once this one has sent
// all it needs (it reports whether it did).
func (r *imapRun) visit(op *opened, ahead func() bool) error {
	conn, j, st := op.conn, op.job, op.st
	r.prog.Folder(j.name)
	if op.err != nil {
		op.pending.discard()
		if op.sel != nil {
			op.sel.Wait()
		}
		return op.err
	}
	pending := op.pending
	movedOn := false
	if ahead != nil && op.asksAll() {
		// Nothing to wait for: the next folder goes out now, so that its
		// answers follow this one's without a round trip between.
		movedOn, ahead = ahead(), nil
	}
	sel, err := op.sel.Wait()
	if err != nil {
		pending.discard()
		if conn.Broken() {
			return conn.Err(err, "examining folder "+shortName(j.box.Name))
		}
		return conn.Err(err, fmt.Sprintf("to examine folder %q", shortName(j.box.Name)))
	}
	condstore := conn.Caps.Has(imap.CapCondStore)
	fs := &folderSync{r: r, conn: conn, job: j, folder: j.folder, sel: sel, st: st, pending: pending,
		condstore: condstore && sel.HighestModSeq != 0, claimed: map[string]bool{}, ahead: ahead, movedOn: movedOn}
	fs.rescan = fs.st.UIDValidity != 0 && sel.UIDValidity != 0 && fs.st.UIDValidity != sel.UIDValidity
	if r.opt.DryRun {
		return fs.plan()
	}
	return fs.sync()
}

// firstBatch is the last UID of the first messages to fetch (what the
// batch pipeline holds, or all new mail when it fits one batch), judged
// by the folder's status (LIST-STATUS or STATUS) and its sync state, so
// that its bodies can be asked for with the EXAMINE: imap.UID(0) when
// unknown, and all (math.MaxUint32) when all new mail fits in one batch.
// Unknown sizes or an expected UIDVALIDITY change give 0; so does
// (checked by the caller) an index holding UIDs beyond LastUID, left by a
// run that stopped before its sync state caught up: those messages would
// come again, and their flags are only synced through the listing.
//
// UIDs need not be dense: the batch spans as many UIDs as hold, on
// average, one batch's worth of messages. A wrong guess costs only
// balance between the batches.
func firstBatch(j *folderJob, st archive.SyncState) imap.UID {
	s := j.status
	if s == nil || s.UIDNext == 0 || s.UIDValidity == 0 || s.NumMessages == nil || s.Size == nil {
		return 0
	}
	if st.UIDValidity != 0 && st.UIDValidity != s.UIDValidity {
		return 0
	}
	next := uint32(s.UIDNext)
	if next <= st.LastUID+1 || *s.NumMessages == 0 {
		return 0 // nothing new
	}
	newUIDs := min(next-1-st.LastUID, *s.NumMessages)
	bytes := estimateBytes(s, newUIDs)
	if newUIDs <= batchMessages && bytes <= batchBytes {
		return all
	}
	// As many as the pipeline holds (two batches), so that the link is
	// full until the listing comes back and the batches take over.
	per := int64(pipelineMessages)
	if avg := bytes / int64(newUIDs); avg > 0 {
		per = max(1, min(per, pipelineMessages*batchBytes/batchMessages/avg))
	}
	span := int64(next - 1 - st.LastUID) // UIDs LastUID+1 .. UIDNEXT-1
	stop := int64(st.LastUID) + (per*span+int64(newUIDs)-1)/int64(newUIDs)
	if stop >= int64(next-1) {
		// All of it: then no listing of "UIDNEXT:*", which servers
		// answer with the last message.
		return all
	}
	return imap.UID(stop)
}

// all, as the last UID of a first batch, means every new message.
const all = imap.UID(math.MaxUint32)

func (fs *folderSync) sync() error {
	r, j := fs.r, fs.job
	fs.st.Source, fs.st.ServerName, fs.st.Delimiter, fs.st.Gone = r.source, j.box.Name, delimString(j.box.Delim), false
	if fs.st.UIDValidity == 0 {
		fs.st.UIDValidity = fs.sel.UIDValidity
	}
	if fs.rescan {
		r.log.Info("UIDVALIDITY changed on the server; rescanning the folder, matching messages against the archive",
			"folder", j.name, "old", fs.st.UIDValidity, "new", fs.sel.UIDValidity)
	}
	// The listing is read before the flags are asked for: two FETCH
	// commands in flight over the same UIDs could have their answers
	// routed to the wrong one. A body listing archives messages already,
	// and its commit, in the background, moves fs.st on: the flag sync
	// covers what was archived before this visit.
	before := fs.st
	flagSync := !fs.rescan && before.LastUID > 0
	ahead := fs.ahead
	if flagSync {
		fs.ahead = nil // the flags are asked for after the listing
	}
	err := fs.listNew()
	if err == nil && flagSync {
		err = fs.syncFlags(before)
		fs.ahead = ahead
	}
	if err == nil {
		err = fs.fetchNew()
	}
	if err != nil {
		// What arrived is committed now, before anything else touches
		// the folder: a retry must find it in the index, or it would
		// fetch and append it a second time.
		fs.commitsPending.Wait()
		if cerr := fs.checkpoint(false); cerr != nil && isRunFatal(cerr) {
			return cerr
		}
		return err
	}
	// The folder is complete: its last commit (a sync of everything the
	// last batch wrote) runs while the connection goes on to the next
	// folder. It can only fail on the archive's disk, which ends the run.
	r.commits.Go(func() {
		fs.commitsPending.Wait()
		if err := fs.checkpoint(true); err != nil {
			r.folderFailed(j, err)
		}
	})
	return nil
}

// plan is the dry run: count what is new, change nothing.
func (fs *folderSync) plan() error {
	p := PlannedFolder{Folder: fs.job.name, ServerName: fs.job.box.Name, Create: fs.folder == nil}
	p.FlagSync = !fs.rescan && fs.st.LastUID > 0 &&
		(!fs.condstore || fs.st.HighestModSeq == 0 || fs.sel.HighestModSeq != fs.st.HighestModSeq)
	if err := fs.listNew(); err != nil {
		return err
	}
	p.Messages = len(fs.expected)
	for _, e := range fs.expected {
		p.Bytes += e.size
	}
	if p.Messages > 0 || p.Create || p.FlagSync {
		fs.r.addPlanned(p)
	}
	return nil
}

// syncFlags copies flag changes of archived messages from the server:
// with CONDSTORE only those changed since the last run's HIGHESTMODSEQ,
// otherwise all (UID FLAGS only, no bodies). before is the folder's sync
// state as this visit found it.
func (fs *folderSync) syncFlags(before archive.SyncState) error {
	opts := &imap.FetchOptions{UID: true, Flags: true, InternalDate: true}
	if fs.condstore && before.HighestModSeq != 0 {
		if fs.sel.HighestModSeq == before.HighestModSeq {
			return nil
		}
		opts.ChangedSince = before.HighestModSeq
	}
	cmd := fs.conn.Client.Fetch(imap.UIDSet{{Start: 1, Stop: imap.UID(before.LastUID)}}, opts)
	updates := 0
	var archErr error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		buf, err := msg.Collect() // no literals here: small
		if err != nil || buf.UID == 0 || archErr != nil {
			continue
		}
		changed, err := fs.applyFlags(uint32(buf.UID), buf.Flags, buf.InternalDate)
		if err != nil {
			archErr = err
			continue
		}
		if changed {
			updates++
			if updates%flagCommitEvery == 0 {
				if archErr = fs.folder.Commit(); archErr != nil {
					continue
				}
			}
		}
	}
	err := cmd.Close()
	fs.r.addFlagUpdates(updates)
	if archErr != nil {
		return archErr
	}
	if err != nil {
		return fs.conn.Err(err, "fetching the flags of folder "+shortName(fs.job.box.Name))
	}
	return fs.folder.Commit()
}

// applyFlags sets an archived message's flags to the server's when they
// differ. The message is found by UID and checked by INTERNALDATE: after a
// UIDVALIDITY change an old entry may carry a UID that now names another
// message, and such an entry is left alone.
func (fs *folderSync) applyFlags(uid uint32, flags []imap.Flag, date time.Time) (bool, error) {
	e, ok := fs.folder.ByUID(uid)
	if !ok {
		return false, nil
	}
	if !date.IsZero() && !e.Date.IsZero() && !date.Equal(e.Date) {
		return false, nil
	}
	want := flagStrings(flags)
	if sameFlags(e.Flags, want) {
		return false, nil
	}
	return true, fs.folder.SetFlags(e.Key, want)
}

// listNew collects the UIDs and sizes of messages to fetch: every UID
// after the last one archived (all of them when rescanning) that the
// index does not hold yet. One cheap command: UID FETCH n:* (UID
// RFC822.SIZE); sizes shape the batches and the progress totals. A UID
// SEARCH of the same range, pipelined, cross-checks the listing: a
// message the server leaves out of it (or whose reply imapclient drops)
// must not be skipped for good.
func (fs *folderSync) listNew() error {
	from := imap.UID(fs.st.LastUID + 1)
	if fs.rescan {
		from = 1
	}
	l := fs.pending
	fs.pending = nil
	if l != nil && l.from != from {
		l.discard()
		l = nil
	}
	if fs.sel.NumMessages == 0 || (!fs.rescan && fs.sel.UIDNext != 0 && fs.sel.UIDNext <= from) {
		// Nothing to list. A listing already sent is answered all the
		// same (some servers refuse "n:*" in an empty folder: no matter).
		l.discard()
		return nil
	}
	if l != nil && l.bodies != nil && fs.rescan {
		l.discard() // a rescan matches every message first
		l = nil
	}
	if l == nil {
		l = startListing(fs.conn, from, 0)
	}
	if l.bodies != nil {
		if l.fetch == nil {
			// Every new message was asked for with the EXAMINE.
			fs.allSent()
		}
		return fs.listFromBodies(l)
	}
	listed, err := fs.readListing(l.fetch, from)
	if err != nil {
		l.search.Wait()
		return err
	}
	seen := make(map[imap.UID]bool, len(listed))
	for _, e := range listed {
		seen[e.uid] = true
	}
	fs.expected = listed
	data, err := l.search.Wait()
	if err != nil {
		return fs.conn.Err(err, "searching new messages of folder "+shortName(fs.job.box.Name))
	}
	for _, uid := range data.AllUIDs() {
		// Size unknown: the FETCH listing left it out.
		if uid >= from && !seen[uid] && !fs.archived(uid) {
			seen[uid] = true
			fs.expected = append(fs.expected, uidSize{uid: uid})
		}
	}
	slices.SortFunc(fs.expected, func(a, b uidSize) int { return int(a.uid) - int(b.uid) })
	fs.expected = slices.CompactFunc(fs.expected, func(a, b uidSize) bool { return a.uid == b.uid })
	fs.pos = make(map[imap.UID]int, len(fs.expected))
	for i, e := range fs.expected {
		fs.pos[e.uid] = i
	}
	fs.state = make([]uidState, len(fs.expected))
	return nil
}

// readListing reads a `UID FETCH n:* (UID RFC822.SIZE FLAGS
// INTERNALDATE)`: the UIDs from `from` on that the archive does not hold,
// with their sizes. A message archived beyond LastUID, by a run that
// stopped before its sync state caught up, gets its flags from it: the
// flag sync (1:LastUID) does not cover it.
func (fs *folderSync) readListing(cmd *imapclient.FetchCommand, from imap.UID) ([]uidSize, error) {
	var out []uidSize
	seen := map[imap.UID]bool{}
	updates := 0
	var archErr error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		buf, err := msg.Collect()
		if err != nil || buf.UID < from || seen[buf.UID] {
			continue
		}
		seen[buf.UID] = true
		if !fs.archived(buf.UID) {
			out = append(out, uidSize{buf.UID, buf.RFC822Size})
			continue
		}
		if fs.r.opt.DryRun || archErr != nil {
			continue
		}
		changed, err := fs.applyFlags(uint32(buf.UID), buf.Flags, buf.InternalDate)
		if err != nil {
			archErr = err
		} else if changed {
			updates++
		}
	}
	fs.r.addFlagUpdates(updates)
	if err := cmd.Close(); err != nil {
		return nil, fs.conn.Err(err, "listing new messages of folder "+shortName(fs.job.box.Name))
	}
	return out, archErr
}

// archived reports whether the index holds uid already (never while
// rescanning: the old UIDs mean nothing then).
func (fs *folderSync) archived(uid imap.UID) bool {
	if fs.rescan || fs.folder == nil {
		return false
	}
	_, have := fs.folder.ByUID(uint32(uid))
	return have
}

// listing is what goes out with the EXAMINE to learn what is new: a
// `UID FETCH n:* (UID RFC822.SIZE FLAGS INTERNALDATE)`, with the UID
// SEARCH of the same range that cross-checks it, and possibly the bodies
// of the first batch.
type listing struct {
	from imap.UID
	// fetch lists the UIDs after head (from on when head is 0); nil when
	// head is all.
	fetch  *imapclient.FetchCommand
	search *imapclient.SearchCommand // of from:*
	// bodies is `UID FETCH from:head (... BODY.PEEK[])`: the first
	// batch's messages, which list themselves as they come; nil when
	// head is 0.
	bodies *imapclient.FetchCommand
	head   imap.UID
}

// listFromBodies reads a listing that came with bodies: the messages are
// archived as they come, each new UID admitted as it shows up
// (dynamicFrom), while the metadata listing of the UIDs after them (if
// only the first batch's bodies were asked for) and the SEARCH of the
// whole range tell which other UIDs exist; those are left pending for
// the batches and fetchMissing. All are read at once: Dovecot
// interleaves the answers of pipelined commands.
func (fs *folderSync) listFromBodies(l *listing) error {
	s := fs.job.status
	n := min(uint32(s.UIDNext)-1-min(fs.st.LastUID, uint32(s.UIDNext)-1), *s.NumMessages)
	fs.r.prog.Start(fs.job.name, int64(n), estimateBytes(s, n))
	fs.announced = true
	fs.mu.Lock()
	fs.pos = map[imap.UID]int{}
	fs.dynamicFrom = l.from
	fs.mu.Unlock()

	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		fs.consume(l.bodies, false)
	}()
	var listed []uidSize
	var lerr error
	if l.fetch != nil {
		listed, lerr = fs.readListing(l.fetch, l.head+1)
	}
	data, serr := l.search.Wait()
	<-consumed

	fs.mu.Lock()
	fs.dynamicFrom = 0
	for _, e := range listed {
		if i, ok := fs.admit(e.uid, l.from); ok && fs.expected[i].size == 0 {
			fs.expected[i].size = e.size
		}
	}
	if serr == nil {
		for _, uid := range data.AllUIDs() {
			fs.admit(uid, l.from)
		}
	}
	// Back into UID order, states along.
	order := make([]int, len(fs.expected))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(fs.expected[a].uid, fs.expected[b].uid) })
	expected := make([]uidSize, len(order))
	state := make([]uidState, len(order))
	for i, o := range order {
		expected[i], state[i] = fs.expected[o], fs.state[o]
		fs.pos[expected[i].uid] = i
	}
	fs.expected, fs.state = expected, state
	fs.mu.Unlock()

	// What came is committed like a batch, in the background.
	fs.commitsPending.Add(1)
	go func() {
		defer fs.commitsPending.Done()
		fs.batchDone()
	}()
	if err := fs.firstErr(); err != nil {
		return err
	}
	if lerr != nil {
		return lerr
	}
	if serr != nil {
		return fs.conn.Err(serr, "searching new messages of folder "+shortName(fs.job.box.Name))
	}
	return nil
}

// admit adds uid to the expected messages if it is new: at or after from,
// not expected yet, and not archived already. fs.mu is held.
func (fs *folderSync) admit(uid, from imap.UID) (int, bool) {
	if i, ok := fs.pos[uid]; ok {
		return i, true
	}
	if uid < from {
		return 0, false
	}
	if fs.folder != nil {
		if _, have := fs.folder.ByUID(uint32(uid)); have {
			return 0, false
		}
	}
	fs.expected = append(fs.expected, uidSize{uid: uid})
	fs.state = append(fs.state, uidPending)
	fs.pos[uid] = len(fs.expected) - 1
	return len(fs.expected) - 1, true
}

// startListing sends the listing of the UIDs from `from` on, with the UID
// SEARCH of the same range that cross-checks it, and the bodies of the
// UIDs up to head (none when head is 0; all: the bodies are the listing).
func startListing(conn *imapconn.Conn, from, head imap.UID) *listing {
	l := &listing{from: from, head: head}
	if head != 0 {
		stop := head
		if head == all {
			stop = 0 // "*"
		}
		l.bodies = conn.Client.Fetch(imap.UIDSet{{Start: from, Stop: stop}}, fullFetch)
	}
	if head != all {
		start := from
		if head != 0 {
			start = head + 1
		}
		l.fetch = conn.Client.Fetch(imap.UIDSet{{Start: start, Stop: 0}},
			&imap.FetchOptions{UID: true, RFC822Size: true, Flags: true, InternalDate: true})
	}
	var opts *imap.SearchOptions
	if conn.Caps.Has(imap.CapESearch) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	l.search = conn.Client.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{{Start: from, Stop: 0}}}}, opts)
	return l
}

// discard reads and drops the answers of a listing that is not needed
// (errors included: a broken connection shows at the next command).
func (l *listing) discard() {
	if l == nil {
		return
	}
	// Read side by side: the server may interleave the answers, and an
	// unread body holds up everything after it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l.bodies != nil {
			l.bodies.Close()
		}
	}()
	if l.fetch != nil {
		l.fetch.Close()
	}
	l.search.Wait()
	<-done
}

// fetchNew fetches the new messages in pipelined batches, then goes after
// any the server did not deliver.
func (fs *folderSync) fetchNew() error {
	if len(fs.expected) == 0 {
		return nil
	}
	if !fs.announced {
		var total int64
		for _, e := range fs.expected {
			total += e.size
		}
		fs.r.prog.Start(fs.job.name, int64(len(fs.expected)), total)
	}

	win := newWindow()
	fs.win = win
	defer func() { fs.win = nil }()
	var wg sync.WaitGroup
	complete := true
	for _, b := range makeBatches(fs.pendingExpected()) {
		if fs.movedOn {
			return errRevisit
		}
		win.waitRoom()
		if fs.firstErr() != nil || fs.r.stopped() {
			complete = false
			break
		}
		n := countUIDs(b)
		win.sent(n)
		// One goroutine per command in flight: imapclient delivers the
		// responses of pipelined commands interleaved, and draining them
		// one after the other deadlocks.
		cmd := fs.conn.Client.Fetch(b, fullFetch)
		wg.Add(1)
		go func() {
			read := fs.consume(cmd, false)
			win.ended(n - read)
			// The batch's commit does not hold up the folder: the
			// connection moves on as soon as the messages are read.
			fs.commitsPending.Add(1)
			wg.Done()
			defer fs.commitsPending.Done()
			fs.batchDone()
		}()
	}
	if complete {
		fs.allSent()
	}
	wg.Wait()
	if err := fs.firstErr(); err != nil {
		return err
	}
	return fs.fetchMissing()
}

// errRevisit ends a visit that needs more from the server after its
// connection has moved on to the next folder: the folder is visited again
// after that one, and the visit resumes where the sync state stands.
var errRevisit = errors.New("folder needs another visit")

// allSent is called once every command the folder needs is sent: unless
// some message then turns out missing, the server needs nothing more for
// it, so the next folder's EXAMINE and listing may follow at once, answered
// as soon as this folder's last bodies are out. Only the connection's
// worker may allow it (ahead), and never in a rescan, whose matching
// reads the whole folder again when a message is missing.
//
// Replies stay unambiguous: the server runs an EXAMINE only after the
// commands before it completed, and imapclient matches FETCH data to the
// first pending command that asked for the UID, which is this folder's.
// (Untagged EXISTS or HIGHESTMODSEQ that this folder's commands bring are
// credited to the pending EXAMINE by imapclient, but the EXAMINE's own
// answer carries both and comes after them.)
func (fs *folderSync) allSent() {
	if fs.ahead == nil || fs.rescan || fs.movedOn {
		return
	}
	fs.movedOn = fs.ahead()
	fs.ahead = nil
}

// pendingExpected lists the expected messages not archived yet.
func (fs *folderSync) pendingExpected() []uidSize {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []uidSize
	for i, e := range fs.expected {
		if fs.state[i] == uidPending {
			out = append(out, e)
		}
	}
	return out
}

// fullFetch asks for everything archived about a message. BODY.PEEK
// leaves \Seen alone on the server.
var fullFetch = &imap.FetchOptions{
	UID: true, Flags: true, InternalDate: true, RFC822Size: true,
	BodySection: []*imap.FetchItemBodySection{{Peek: true}},
}

// makeBatches cuts the UID list into sets of at most batchMessages
// messages and batchBytes bytes (a single bigger message is a batch on
// its own).
func makeBatches(list []uidSize) []imap.UIDSet {
	var out []imap.UIDSet
	var cur imap.UIDSet
	n, size := 0, int64(0)
	for _, e := range list {
		if n > 0 && (n >= batchMessages || size+e.size > batchBytes) {
			out = append(out, cur)
			cur, n, size = nil, 0, 0
		}
		cur.AddNum(e.uid)
		n++
		size += e.size
	}
	if n > 0 {
		out = append(out, cur)
	}
	return out
}

// consume reads one FETCH command's responses into the archive and
// returns how many messages it read.
func (fs *folderSync) consume(cmd *imapclient.FetchCommand, bySeq bool) (read int) {
	win := fs.win
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		err := fs.message(msg)
		read++
		if win != nil {
			win.done(1)
		}
		if err != nil {
			fs.setErr(err)
			if isRunFatal(err) {
				fs.r.setFatal(err)
			}
			break
		}
	}
	if err := cmd.Close(); err != nil {
		if fs.conn.Broken() {
			fs.setErr(fs.conn.Err(err, "fetching messages of folder "+shortName(fs.job.box.Name)))
			return read
		}
		// A NO for the whole command (a server failing one message):
		// what arrived is kept, the rest is retried one by one.
		fs.r.log.Info("server refused part of a FETCH", "folder", fs.job.name, "err", err, "by_seq", bySeq)
	}
	return read
}

// window is the flow control of one folder's batch FETCH commands: how
// many messages are asked for and not read yet, in how many commands.
type window struct {
	mu   sync.Mutex
	cond *sync.Cond
	msgs int
	cmds int
}

func newWindow() *window {
	w := &window{}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// waitRoom blocks until another batch may be sent. A failing or cancelled
// folder does not hang here: its commands end, and each end wakes it.
func (w *window) waitRoom() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.cmds > 0 && (w.msgs >= pipelineMessages || w.cmds >= pipelineCommands) {
		w.cond.Wait()
	}
}

// sent records a batch of n messages sent.
func (w *window) sent(n int) {
	w.mu.Lock()
	w.msgs += n
	w.cmds++
	w.mu.Unlock()
}

// done records n messages read.
func (w *window) done(n int) {
	w.mu.Lock()
	w.msgs -= n
	w.mu.Unlock()
	w.cond.Broadcast()
}

// ended records the end of a command, undelivered of whose messages
// never came (the server left them out; fetchMissing goes after them).
func (w *window) ended(undelivered int) {
	w.mu.Lock()
	w.msgs -= undelivered
	w.cmds--
	w.mu.Unlock()
	w.cond.Broadcast()
}

// countUIDs is the number of UIDs in a set without "*".
func countUIDs(set imap.UIDSet) int {
	n := 0
	for _, r := range set {
		n += int(r.Stop-r.Start) + 1
	}
	return n
}

// batchDone is called when a batch's command has completed: the messages
// it brought become durable and the sync state moves past them.
func (fs *folderSync) batchDone() {
	if fs.firstErr() != nil {
		return
	}
	if err := fs.checkpoint(false); err != nil {
		fs.setErr(err)
		fs.r.setFatal(err)
	}
}

// checkpoint commits what was appended and moves LastUID to the highest
// UID below which everything expected is archived. final: the folder is
// done, so LastUID may move up to UIDNEXT-1 and HIGHESTMODSEQ and the
// new UIDVALIDITY are recorded.
func (fs *folderSync) checkpoint(final bool) error {
	fs.mu.Lock()
	st := fs.st
	complete := true
	for i, e := range fs.expected {
		if fs.state[i] != uidDone {
			complete = false
			if !fs.rescan {
				st.LastUID = max(st.LastUID, uint32(e.uid)-1)
			}
			break
		}
	}
	if complete && len(fs.expected) > 0 && (!fs.rescan || final) {
		st.LastUID = max(st.LastUID, uint32(fs.expected[len(fs.expected)-1].uid))
	}
	if final && complete {
		if fs.sel.UIDNext > 0 {
			st.LastUID = max(st.LastUID, uint32(fs.sel.UIDNext)-1)
		}
		if fs.rescan {
			// Only now: a rescan cut short must be redone (its matching
			// by SHA-256 is what prevents duplicates), so the old
			// UIDVALIDITY stays until every message is accounted for.
			st.UIDValidity = fs.sel.UIDValidity
			st.LastUID = lastExpected(fs.expected)
			if fs.sel.UIDNext > 0 {
				st.LastUID = max(st.LastUID, uint32(fs.sel.UIDNext)-1)
			}
		}
		if fs.condstore {
			st.HighestModSeq = fs.sel.HighestModSeq
		}
		st.LastSync = time.Now().UTC()
	}
	rescanDone := final && complete && fs.rescan
	fs.st = st
	fs.checkpoints++
	every := fs.checkpoints%stateEvery == 0
	fs.mu.Unlock()

	if rescanDone {
		if err := fs.unbindStale(); err != nil {
			return err
		}
	}
	// The sync state is a file replaced with two syncs, so a batch
	// rewrites it only when it tells something new about the folder (the
	// first batch of a folder: its UIDVALIDITY and source), and otherwise
	// every stateEvery batches and at the end. Between, LastUID may lag
	// behind the index after a crash: the next run lists those messages
	// again and skips them by UID (listNew), so nothing is fetched twice.
	if final || every || !sameIdentity(fs.folder.State(), st) {
		fs.folder.SetState(st)
	}
	return fs.folder.Commit()
}

// unbindStale drops the UID of every archived message a completed rescan
// did not find on the server (deleted there meanwhile). Such a UID is of
// the old UIDVALIDITY and may name another message now: left in place, a
// new message that gets it would be taken for archived and never fetched,
// and its flags would be applied to the wrong copy. The records go into
// the same Commit as the new UIDVALIDITY.
func (fs *folderSync) unbindStale() error {
	for _, e := range fs.folder.Entries() {
		fs.mu.Lock()
		matched := fs.claimed[e.Key]
		fs.mu.Unlock()
		if e.UID != 0 && !matched {
			if err := fs.folder.SetUID(e.Key, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameIdentity reports whether two sync states agree on everything but
// the position (LastUID, HIGHESTMODSEQ, time of the last sync).
func sameIdentity(a, b archive.SyncState) bool {
	return a.Source == b.Source && a.ServerName == b.ServerName && a.Delimiter == b.Delimiter &&
		a.UIDValidity == b.UIDValidity && a.Gone == b.Gone
}

func lastExpected(l []uidSize) uint32 {
	if len(l) == 0 {
		return 0
	}
	return uint32(l[len(l)-1].uid)
}

func (fs *folderSync) setErr(err error) {
	fs.mu.Lock()
	if fs.err == nil {
		fs.err = err
	}
	fs.mu.Unlock()
}

func (fs *folderSync) firstErr() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.err
}

// uidState tracks an expected UID. A UID is done only once its message
// is appended (staged for the next Commit): a checkpoint must never let
// LastUID pass a message whose Append has not happened yet, or a kill
// right after that Commit would lose it for good.
type uidState uint8

const (
	uidPending  uidState = iota
	uidInFlight          // claimed by a consumer, Append under way
	uidDone              // appended, matched (rescan) or gone from the server
)

// claim reserves an expected UID for the caller; false if it was not
// expected or is taken already (a server sending a message twice).
func (fs *folderSync) claim(uid imap.UID) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	i, ok := fs.slot(uid)
	if !ok || fs.state[i] != uidPending {
		return false
	}
	fs.state[i] = uidInFlight
	return true
}

// finish marks a claimed UID done (archived) or, when ok is false, gives
// it back for fetchMissing.
func (fs *folderSync) finish(uid imap.UID, ok bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if i, found := fs.pos[uid]; found {
		if ok {
			fs.state[i] = uidDone
		} else {
			fs.state[i] = uidPending
		}
	}
}

func (fs *folderSync) wanted(uid imap.UID) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	i, ok := fs.slot(uid)
	return ok && fs.state[i] == uidPending
}

// slot finds an expected UID, admitting it first while a body listing is
// read (see listFromBodies). fs.mu is held.
func (fs *folderSync) slot(uid imap.UID) (int, bool) {
	if fs.dynamicFrom != 0 {
		return fs.admit(uid, fs.dynamicFrom)
	}
	i, ok := fs.pos[uid]
	return i, ok
}

func (fs *folderSync) missing() []imap.UID {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []imap.UID
	for i, e := range fs.expected {
		if fs.state[i] != uidDone {
			out = append(out, e.uid)
		}
	}
	return out
}

// fetchMissing goes after messages a batch did not deliver. Servers do
// this: Exchange answers OK without data for messages it cannot convert,
// Yahoo fails one message with NO, and some servers put the UID after the
// literal, which imapclient cannot route to a UID FETCH (the message is
// silently dropped). So: ask which of them still exist (the others were
// expunged meanwhile, nothing lost), fetch those by sequence number
// (routed by number, whatever the item order), then one by one by UID,
// and report any the server never delivers; they are tried again next run.
func (fs *folderSync) fetchMissing() error {
	miss := fs.missing()
	if len(miss) == 0 {
		return nil
	}
	if fs.movedOn {
		return errRevisit
	}
	set := imap.UIDSetNum(miss...)
	data, err := fs.conn.Client.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	if err != nil {
		return fs.conn.Err(err, "looking for undelivered messages in folder "+shortName(fs.job.box.Name))
	}
	exist := map[imap.UID]bool{}
	for _, uid := range data.AllUIDs() {
		exist[uid] = true
	}
	for _, uid := range miss {
		if !exist[uid] && fs.claim(uid) {
			fs.finish(uid, true) // expunged on the server while we fetched
		}
	}
	if miss = fs.missing(); len(miss) > 0 {
		fs.r.log.Info("fetching undelivered messages by sequence number", "folder", fs.job.name, "count", len(miss))
		if err := fs.fetchBySeq(miss); err != nil {
			return err
		}
	}
	for _, uid := range fs.missing() {
		fs.consume(fs.conn.Client.Fetch(imap.UIDSetNum(uid), fullFetch), false)
		if err := fs.firstErr(); err != nil {
			return err
		}
	}
	if miss = fs.missing(); len(miss) > 0 {
		fs.r.warn(fmt.Sprintf("folder %q: the server did not deliver %d message(s) (UID %s); they are retried on the next run",
			shortName(fs.job.name), len(miss), shortList(miss)))
		fs.r.mu.Lock()
		fs.r.failures++
		fs.r.mu.Unlock()
	}
	return nil
}

func (fs *folderSync) fetchBySeq(uids []imap.UID) error {
	set := imap.UIDSetNum(uids...)
	data, err := fs.conn.Client.Search(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	if err != nil {
		return fs.conn.Err(err, "looking up sequence numbers in folder "+shortName(fs.job.box.Name))
	}
	seqs := data.AllSeqNums()
	if len(seqs) == 0 {
		return nil
	}
	fs.consume(fs.conn.Client.Fetch(imap.SeqSetNum(seqs...), fullFetch), true)
	return fs.firstErr()
}

func shortList(uids []imap.UID) string {
	var parts []string
	for i, u := range uids {
		if i == 5 {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprint(u))
	}
	return strings.Join(parts, ", ")
}

// flagStrings converts server flags to the archive's form (\Recent is
// session state, never archived).
func flagStrings(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, string(f))
	}
	return out
}

// sameFlags compares flag sets as IMAP does: order and case do not matter.
func sameFlags(a, b []string) bool {
	norm := func(fl []string) []string {
		out := make([]string, 0, len(fl))
		for _, f := range fl {
			if f = strings.ToLower(strings.TrimSpace(f)); f != "" && f != `\recent` {
				out = append(out, f)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}
