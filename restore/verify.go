package restore

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn"
	"github.com/mailark/mailark/internal/mailerr"
)

// ArchiveMessage is an archive message a Diff lists.
type ArchiveMessage struct {
	Folder string `json:"folder"` // archive folder
	archive.Meta
}

// ServerMessage is a target message a Diff lists.
type ServerMessage struct {
	UID       uint32   `json:"uid"`
	Size      int64    `json:"size"`
	MessageID string   `json:"message_id,omitempty"`
	Flags     []string `json:"flags,omitempty"`
}

// Diff compares one target folder with the archive folders that map to
// it, by the keys restore uses (Message-ID and size, header digest, copies
// counted).
type Diff struct {
	Folder     string   `json:"folder"` // target folder, "/" between levels
	ServerName string   `json:"server_name"`
	Sources    []string `json:"sources,omitempty"` // archive folders; none for a folder only the server has
	Matched    int      `json:"matched"`
	// FlagsDiffer counts matched messages whose flags differ (a target
	// without keyword support, flags changed since): reported, not a
	// mismatch.
	FlagsDiffer      int              `json:"flags_differ,omitempty"`
	MissingOnServer  []ArchiveMessage `json:"missing_on_server,omitempty"`
	MissingInArchive []ServerMessage  `json:"missing_in_archive,omitempty"`
	Note             string           `json:"note,omitempty"` // "folder missing on the server"
}

// Differs reports whether the folder has messages on one side only.
func (d *Diff) Differs() bool { return len(d.MissingOnServer) > 0 || len(d.MissingInArchive) > 0 }

// Verify compares the archive with the account, both ways, folder by
// folder, with the mapping Restore would use (FolderMap, Prefix,
// special-use, Include/Exclude). Server folders the archive does not map
// to are compared too (as holding messages the archive lacks) unless the
// archive is restricted (Include, Exclude or Prefix). It reads the server
// only (EXAMINE). The error wraps mailerr.ErrMismatch when anything
// differs; the diffs are returned either way.
func Verify(ctx context.Context, src archive.Reader, a *account.Account, opt Options) ([]Diff, error) {
	opt.defaults()
	folders, err := selectedFolders(src, &opt)
	if err != nil {
		return nil, err
	}
	ctl, err := imapconn.Dial(ctx, a)
	if err != nil {
		return nil, err
	}
	pool := &connPool{ctx: ctx, acct: a, idle: []*imapconn.Conn{ctl}}
	defer pool.closeAll()
	boxes, err := ctl.List(ctx)
	if err != nil {
		return nil, err
	}
	plans := planFolders(folders, targetLayout{delim: ctl.Delim, prefix: ctl.Prefix, boxes: boxes}, &opt)
	if len(opt.Include) == 0 && len(opt.Exclude) == 0 && opt.Prefix == "" {
		plans = append(plans, serverOnlyPlans(plans, boxes, ctl)...)
	}
	diffs := make([]Diff, len(plans))
	errs := make([]error, len(plans))
	var wg sync.WaitGroup
	sem := make(chan struct{}, opt.Connections)
	for i, p := range plans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			diffs[i], errs[i] = verifyFolder(ctx, pool, src, p)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return diffs, err
		}
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].Folder < diffs[j].Folder })
	differ := 0
	for i := range diffs {
		if diffs[i].Differs() {
			differ++
		}
	}
	if differ > 0 {
		return diffs, mailerr.E(mailerr.ErrMismatch, nil, "archive and %s differ in %d folders", a.String(), differ)
	}
	return diffs, nil
}

// serverOnlyPlans lists the selectable server folders no archive folder
// maps to.
func serverOnlyPlans(plans []*folderPlan, boxes []imapconn.Mailbox, c *imapconn.Conn) []*folderPlan {
	mapped := map[string]bool{}
	for _, p := range plans {
		mapped[p.Server] = true
	}
	var out []*folderPlan
	for _, b := range boxes {
		if !b.NoSelect && !mapped[b.Name] {
			out = append(out, &folderPlan{Target: imapconn.ArchiveName(b.Name, b.Delim, c.Prefix), Server: b.Name, Exists: true})
		}
	}
	return out
}

func verifyFolder(ctx context.Context, pool *connPool, src archive.Reader, p *folderPlan) (Diff, error) {
	d := Diff{Folder: p.Target, ServerName: p.Server, Sources: sourceNames(p)}
	r := &run{src: src}
	cands, err := r.candidates(p)
	if err != nil {
		return d, err
	}
	st := &targetState{}
	if p.Exists {
		c, err := pool.get()
		if err != nil {
			return d, err
		}
		st, err = learnTarget(ctx, c, p.Server, true)
		pool.put(c)
		if err != nil {
			return d, err
		}
	} else {
		d.Note = "folder missing on the server"
	}
	if st.hasNoID {
		if err := r.digestCandidates(cands); err != nil {
			return d, err
		}
	}
	m, err := match(cands, st.messages, r.crlfSize)
	if err != nil {
		return d, err
	}
	d.Matched = len(m.present)
	for _, c := range m.upload {
		d.MissingOnServer = append(d.MissingOnServer, ArchiveMessage{Folder: c.folder, Meta: c.meta})
	}
	for _, s := range m.unmatched {
		d.MissingInArchive = append(d.MissingInArchive, ServerMessage{UID: s.UID, Size: s.Size, MessageID: s.MessageID, Flags: s.Flags})
	}
	for c, s := range m.pairs {
		if !sameFlags(c.meta.Flags, s.Flags) {
			d.FlagsDiffer++
		}
	}
	return d, nil
}

// sameFlags compares flag lists case-insensitively for system flags.
func sameFlags(a, b []string) bool {
	norm := func(fs []string) map[string]bool {
		m := map[string]bool{}
		for _, f := range fs {
			if len(f) > 0 && f[0] == '\\' {
				if sf, ok := systemFlags[strings.ToLower(f)]; ok {
					f = string(sf)
				} else {
					continue // \Recent and unknown system flags
				}
			}
			m[f] = true
		}
		return m
	}
	ma, mb := norm(a), norm(b)
	if len(ma) != len(mb) {
		return false
	}
	for f := range ma {
		if !mb[f] {
			return false
		}
	}
	return true
}
