// Package restore puts an archive — mailark's own or a tree another mail
// program wrote — onto an IMAP account, exactly once per message, and
// verifies an archive against an account.
//
// Restore never deletes or changes anything already on the target: it
// creates missing folders and APPENDs messages, nothing else. Before
// uploading into a folder it learns what the folder holds (Message-ID,
// size, a header digest for messages without Message-ID) and skips what
// is already there, copies counted; it records every batch the server
// acknowledged in a ledger, so an interrupted restore resumes where it
// stopped and a rerun uploads nothing.
package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/fetch"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/progress"
)

// Options tune a restore (and a verify, which uses the same mapping).
type Options struct {
	// FolderMap maps archive folders to target folders ("/" between
	// levels on both sides); a mapping also moves the folder's
	// subfolders. It wins over Prefix and the special-use mapping.
	FolderMap map[string]string
	// Prefix puts every folder not in FolderMap below this target folder
	// ("Imported" → "Imported/INBOX", "Imported/Sent"). With a prefix,
	// special folders are not merged into the target's own.
	Prefix string
	// Include and Exclude are glob patterns on archive folder names, as
	// for fetch ("Work/*" is everything below Work).
	Include, Exclude []string
	// Connections is the number of parallel connections; each works on
	// one target folder at a time. Zero means DefaultConnections.
	Connections int
	// DryRun reports the plan (Result.Plan) and changes nothing.
	DryRun bool
	// BatchMessages and BatchBytes bound one upload batch: the unit the
	// ledger records after the server acknowledged all of it, and one
	// MULTIAPPEND command. Zero means the defaults.
	BatchMessages int
	BatchBytes    int64
	// NoMultiAppend uploads with single APPENDs even where the server
	// offers MULTIAPPEND.
	NoMultiAppend bool
	// Retries is how often a folder is resumed on a new connection after
	// the connection failed. Zero means DefaultRetries, negative none.
	Retries int
	// InflightWait bounds how long a folder waits for a batch an
	// interrupted run left in flight (see inflight.go). Zero means
	// DefaultInflightWait.
	InflightWait time.Duration
	// LedgerPath, when Restore is given no ledger, names the ledger file
	// to open (see LedgerPathFor for foreign archives). Empty: no ledger,
	// duplicates are found on the target alone.
	LedgerPath string
	// Progress receives progress events; nil means progress.Discard.
	Progress progress.Reporter
	// Logger receives logs; nil means discard.
	Logger *slog.Logger
}

// Defaults for zero Options fields.
const (
	DefaultConnections   = 4
	DefaultRetries       = 3
	DefaultBatchMessages = 100
	DefaultBatchBytes    = 16 << 20
)

// PlannedFolder is one target folder of a restore: where it comes from,
// and what was (or, in a dry run, would be) done.
type PlannedFolder struct {
	Folder     string   `json:"folder"`      // target folder, "/" between levels
	ServerName string   `json:"server_name"` // its name on the server
	Sources    []string `json:"sources"`     // archive folders that go into it
	SpecialUse string   `json:"special_use,omitempty"`
	Create     bool     `json:"create,omitempty"`
	Upload     int      `json:"upload"`       // messages to upload (uploaded, unless dry run)
	Bytes      int64    `json:"upload_bytes"` // their bytes
	Present    int      `json:"present"`      // already on the target: skipped
	InLedger   int      `json:"in_ledger"`    // recorded as uploaded by an earlier run: skipped
	Failed     int      `json:"failed,omitempty"`
	Note       string   `json:"note,omitempty"`
}

// Result summarises a restore; it is what --json prints.
type Result struct {
	Target      string          `json:"target"`
	Folders     int             `json:"folders"`  // target folders worked on
	Uploaded    int             `json:"uploaded"` // messages uploaded (planned, in a dry run)
	Skipped     int             `json:"skipped"`  // already on the target or in the ledger
	Created     int             `json:"created"`  // folders created (to create, in a dry run)
	Failed      int             `json:"failed"`   // messages not uploaded because of an error
	Bytes       int64           `json:"bytes"`
	MultiAppend bool            `json:"multiappend"` // batches went as MULTIAPPEND commands
	DryRun      bool            `json:"dry_run,omitempty"`
	Warnings    []string        `json:"warnings,omitempty"`
	Plan        []PlannedFolder `json:"plan"`
	Duration    time.Duration   `json:"duration_ns"`
}

// Restore uploads the archive src to the account a. ledger (nil for none,
// or opened from Options.LedgerPath) records what was uploaded and is
// consulted to skip it next time. It returns the result also on error;
// an error wrapping mailerr.ErrPartial means some folders or messages
// failed and the rest was done.
func Restore(ctx context.Context, src archive.Reader, ledger *archive.Ledger, a *account.Account, opt Options) (*Result, error) {
	start := time.Now()
	opt.defaults()
	if ledger == nil && opt.LedgerPath != "" && !opt.DryRun {
		l, err := archive.OpenLedger(opt.LedgerPath)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ledger = l
	}
	r := &run{src: src, ledger: ledger, acct: a, opt: &opt, log: opt.Logger, prog: opt.Progress,
		res: &Result{Target: a.String(), DryRun: opt.DryRun}, failedMsgs: map[string]bool{}}
	j, err := openJournal(a, opt.InflightWait)
	if err != nil {
		return r.res, err
	}
	defer j.close()
	r.journal = j
	err = r.restore(ctx)
	r.res.Duration = time.Since(start)
	return r.res, err
}

func (o *Options) defaults() {
	if o.Connections <= 0 {
		o.Connections = DefaultConnections
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.BatchMessages <= 0 {
		o.BatchMessages = DefaultBatchMessages
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.InflightWait <= 0 {
		o.InflightWait = DefaultInflightWait
	}
	if o.Progress == nil {
		o.Progress = progress.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// run is one Restore call.
type run struct {
	src     archive.Reader
	ledger  *archive.Ledger
	journal *journal // fences of batches in flight (nil for verify)
	acct    *account.Account
	opt     *Options
	log     *slog.Logger
	prog    progress.Reporter

	mu         sync.Mutex
	res        *Result
	failedMsgs map[string]bool // folder\x00key of messages that failed for their own reasons
	firstErr   error
}

func (r *run) restore(ctx context.Context) error {
	folders, err := selectedFolders(r.src, r.opt)
	if err != nil {
		return err
	}
	ctl, err := imapconn.Dial(ctx, r.acct)
	if err != nil {
		return err
	}
	pool := &connPool{ctx: ctx, acct: r.acct, idle: []*imapconn.Conn{ctl}}
	defer pool.closeAll()
	boxes, err := ctl.List(ctx)
	if err != nil {
		return err
	}
	layout := targetLayout{delim: ctl.Delim, prefix: ctl.Prefix, boxes: boxes}
	plans := planFolders(folders, layout, r.opt)
	r.res.MultiAppend = r.useMultiAppend(ctl)
	if err := r.createFolders(ctx, ctl, plans); err != nil {
		return err
	}
	r.runFolders(ctx, pool, plans)
	return r.finish(ctx)
}

// selectedFolders lists the archive folders that pass Include/Exclude.
func selectedFolders(src archive.Reader, opt *Options) ([]archive.FolderInfo, error) {
	all, err := src.Folders()
	if err != nil {
		return nil, err
	}
	sel := fetch.Options{Include: opt.Include, Exclude: opt.Exclude}
	var out []archive.FolderInfo
	for _, f := range all {
		if sel.Selected(f.Name) {
			out = append(out, f)
		}
	}
	return out, nil
}

// useMultiAppend decides whether batches go as MULTIAPPEND commands.
func (r *run) useMultiAppend(c *imapconn.Conn) bool {
	return !r.opt.NoMultiAppend && multiAppendSupported(c)
}

// createFolders creates the target folders that do not exist yet (in a
// dry run, only counts them) and subscribes them, so that mail clients
// showing subscribed folders only see them.
func (r *run) createFolders(ctx context.Context, c *imapconn.Conn, plans []*folderPlan) error {
	for _, p := range plans {
		if p.Renamed {
			r.warn("folder %s: its name holds the server's hierarchy delimiter; created as %q", p.Target, p.Server)
		}
		if !p.Create {
			continue
		}
		r.mu.Lock()
		r.res.Created++
		r.mu.Unlock()
		if r.opt.DryRun {
			continue
		}
		if err := createMailbox(c, p.Server, r.acct.String(), r.log); err != nil {
			if c.Broken() {
				return err
			}
			r.warn("cannot create folder %s on the target (%v); its messages are not uploaded", p.Server, err)
			p.Create, p.Exists = false, false
			continue
		}
		p.Exists = true
	}
	return ctx.Err()
}

// createMailbox creates a folder, tolerating one that exists already. A
// server that wants the parents first gets them.
func createMailbox(c *imapconn.Conn, name, target string, log *slog.Logger) error {
	err := c.Client.Create(name, nil).Wait()
	if err != nil && !alreadyExists(err) && !c.Broken() && c.Delim != 0 {
		parts := splitServerName(name, c.Delim)
		for i := 1; i < len(parts); i++ {
			parent := joinServerName(parts[:i], c.Delim)
			if perr := c.Client.Create(parent, nil).Wait(); perr != nil && !alreadyExists(perr) {
				break
			}
		}
		err = c.Client.Create(name, nil).Wait()
	}
	if err != nil && !alreadyExists(err) {
		return c.Err(err, "creating folder "+name)
	}
	if err := c.Client.Subscribe(name).Wait(); err != nil {
		log.Debug("subscribe failed", "folder", name, "target", target, "err", err)
	}
	return nil
}

func alreadyExists(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists
}

func splitServerName(name string, delim rune) []string {
	var parts []string
	cur := ""
	for _, r := range name {
		if r == delim {
			parts = append(parts, cur)
			cur = ""
			continue
		}
		cur += string(r)
	}
	return append(parts, cur)
}

func joinServerName(parts []string, delim rune) string {
	out := parts[0]
	for _, p := range parts[1:] {
		out += string(delim) + p
	}
	return out
}

// runFolders works through the folder plans on up to Connections
// connections, largest folders first so the last one to finish is small.
func (r *run) runFolders(ctx context.Context, pool *connPool, plans []*folderPlan) {
	work := make([]*folderPlan, 0, len(plans))
	for _, p := range plans {
		if p.Exists || (r.opt.DryRun && p.Create) {
			work = append(work, p)
		} else {
			r.addPlan(PlannedFolder{Folder: p.Target, ServerName: p.Server, Sources: sourceNames(p),
				Note: "not created on the target: skipped"})
			r.fail(mailerr.E(mailerr.ErrServer, nil, "folder %s could not be created on the target", p.Server))
		}
	}
	sort.SliceStable(work, func(i, j int) bool { return planBytes(work[i]) > planBytes(work[j]) })
	queue := make(chan *folderPlan)
	var wg sync.WaitGroup
	for i := 0; i < min(r.opt.Connections, len(work)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range queue {
				r.folder(ctx, pool, p)
			}
		}()
	}
	for _, p := range work {
		if ctx.Err() != nil {
			break
		}
		queue <- p
	}
	close(queue)
	wg.Wait()
}

func planBytes(p *folderPlan) int64 {
	var n int64
	for _, s := range p.Sources {
		n += s.Bytes
	}
	return n
}

func sourceNames(p *folderPlan) []string {
	var out []string
	for _, s := range p.Sources {
		out = append(out, s.Name)
	}
	return out
}

// finish sorts the plan and turns failures into the returned error.
func (r *run) finish(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.SortFunc(r.res.Plan, func(a, b PlannedFolder) int { return cmp.Compare(a.Folder, b.Folder) })
	r.res.Folders = len(r.res.Plan)
	if ctx.Err() != nil {
		return mailerr.E(mailerr.ErrInterrupted, ctx.Err(), "restore interrupted; run it again to upload the rest")
	}
	if r.firstErr == nil {
		return nil
	}
	if r.res.Uploaded == 0 && r.res.Skipped == 0 {
		return r.firstErr
	}
	return mailerr.E(mailerr.ErrPartial, r.firstErr, "restore incomplete: %d messages failed; run it again to retry them", r.res.Failed)
}

func (r *run) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Warn(msg)
	r.prog.Warn(msg)
	r.mu.Lock()
	r.res.Warnings = append(r.res.Warnings, msg)
	r.mu.Unlock()
}

func (r *run) fail(err error) {
	r.mu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
}

func (r *run) addPlan(p PlannedFolder) {
	r.mu.Lock()
	r.res.Plan = append(r.res.Plan, p)
	r.mu.Unlock()
}

// connPool hands out logged-in connections: idle ones first, new ones
// dialled on demand. A broken connection is closed, not returned.
type connPool struct {
	ctx  context.Context
	acct *account.Account
	mu   sync.Mutex
	idle []*imapconn.Conn
	all  []*imapconn.Conn
}

func (p *connPool) get() (*imapconn.Conn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if !c.Broken() {
			return c, nil
		}
		c.Close()
		return p.get()
	}
	p.mu.Unlock()
	c, err := imapconn.Dial(p.ctx, p.acct)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.all = append(p.all, c)
	p.mu.Unlock()
	return c, nil
}

func (p *connPool) put(c *imapconn.Conn) {
	if c.Broken() {
		c.Close()
		return
	}
	p.mu.Lock()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

func (p *connPool) closeAll() {
	p.mu.Lock()
	conns := append(p.idle, p.all...)
	p.idle, p.all = nil, nil
	p.mu.Unlock()
	seen := map[*imapconn.Conn]bool{}
	for _, c := range conns {
		if !seen[c] {
			seen[c] = true
			c.Close()
		}
	}
}
