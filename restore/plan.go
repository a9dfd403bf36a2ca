package restore

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/imapconn"
)

// mappedUses are the special uses whose archive folders go into the
// target's folder of the same use, whatever it is called there. \All and
// \Flagged are views of other folders (Gmail), not places mail lives.
var mappedUses = map[string]bool{
	archive.SpecialSent: true, archive.SpecialDrafts: true, archive.SpecialTrash: true,
	archive.SpecialJunk: true, archive.SpecialArchive: true,
}

// folderPlan is one target folder and the archive folders that go into it.
type folderPlan struct {
	Target     string // target folder, archive-style name ("/" between levels)
	Server     string // its name on the server
	SpecialUse string // of the target folder, when it is a special one
	Sources    []archive.FolderInfo
	Exists     bool // the server lists it (selectable)
	Create     bool // to be created
	Renamed    bool // a name component had to be changed for the server
}

// targetLayout is what the plan needs to know of the target server.
type targetLayout struct {
	delim  rune
	prefix string // personal namespace prefix ("INBOX." on Courier)
	boxes  []imapconn.Mailbox
}

// planFolders maps the selected archive folders to target folders:
//
//  1. an explicit FolderMap entry for the folder or its nearest mapped
//     parent ("Old" → "Imported/Old" also moves "Old/2019");
//  2. with a Prefix, everything else goes below it, names unchanged;
//  3. otherwise a special folder (Sent, Drafts, Trash, Junk, Archive) goes
//     into the target's folder of the same use, subfolders with it;
//  4. everything else keeps its name.
//
// Archive folders that end in the same target folder are merged into one
// plan, so duplicates are counted across them.
func planFolders(folders []archive.FolderInfo, t targetLayout, opt *Options) []*folderPlan {
	special := map[string]string{} // archive folder → target folder, by special use
	if opt.Prefix == "" {
		byUse := map[string]string{}
		for _, b := range t.boxes {
			if b.SpecialUse != "" && mappedUses[b.SpecialUse] && !b.NoSelect && byUse[b.SpecialUse] == "" {
				byUse[b.SpecialUse] = imapconn.ArchiveName(b.Name, b.Delim, t.prefix)
			}
		}
		for _, f := range folders {
			if target := byUse[f.SpecialUse]; target != "" && mappedUses[f.SpecialUse] {
				special[f.Name] = target
			}
		}
	}
	existing := map[string]imapconn.Mailbox{}
	for _, b := range t.boxes {
		existing[b.Name] = b
	}
	byServer := map[string]*folderPlan{}
	var plans []*folderPlan
	for _, f := range folders {
		if f.NoSelect {
			continue
		}
		target := targetName(f.Name, special, opt)
		server, renamed := serverName(target, t.delim, t.prefix)
		p := byServer[server]
		if p == nil {
			box, ok := existing[server]
			p = &folderPlan{Target: target, Server: server, Renamed: renamed,
				Exists: ok && !box.NoSelect, SpecialUse: box.SpecialUse}
			p.Create = !p.Exists
			byServer[server] = p
			plans = append(plans, p)
		}
		p.Sources = append(p.Sources, f)
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].Target < plans[j].Target })
	return plans
}

// targetName applies rules 1–4 of planFolders to one archive folder.
func targetName(name string, special map[string]string, opt *Options) string {
	if to, rest, ok := nearestMapped(name, opt.FolderMap); ok {
		return joinName(to, rest)
	}
	if opt.Prefix != "" {
		return joinName(strings.Trim(opt.Prefix, "/"), name)
	}
	if to, rest, ok := nearestMapped(name, special); ok {
		return joinName(to, rest)
	}
	return name
}

// nearestMapped finds the longest of name and its parents that m maps,
// and returns the mapped name and the rest of the path below it.
func nearestMapped(name string, m map[string]string) (to, rest string, ok bool) {
	for cur := name; cur != ""; {
		if to, ok := m[cur]; ok {
			return strings.Trim(to, "/"), strings.TrimPrefix(strings.TrimPrefix(name, cur), "/"), true
		}
		i := strings.LastIndexByte(cur, '/')
		if i < 0 {
			break
		}
		cur = cur[:i]
	}
	return "", "", false
}

func joinName(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// serverName turns an archive-style target name into the name to use on
// a server with the given hierarchy delimiter and namespace prefix. A
// level whose name contains the server's delimiter (a folder "v1.2" on a
// server that separates levels with ".") would split in two; the
// delimiter in it is replaced by a look-alike character and renamed is
// reported.
func serverName(target string, delim rune, prefix string) (name string, renamed bool) {
	if strings.EqualFold(target, "INBOX") {
		return "INBOX", false
	}
	if delim != 0 && delim != '/' {
		parts := strings.Split(target, "/")
		for i, p := range parts {
			if strings.ContainsRune(p, delim) {
				parts[i] = strings.ReplaceAll(p, string(delim), lookalike(delim))
				renamed = true
			}
		}
		target = strings.Join(parts, "/")
	}
	if prefix != "" && strings.HasPrefix(strings.ToUpper(target), "INBOX/") && strings.EqualFold(strings.TrimSuffix(prefix, string(delim)), "INBOX") {
		// Courier/Cyrus: the archive already names the folder below INBOX.
		target = target[len("INBOX/"):]
	}
	return imapconn.ServerName(target, delim, prefix), renamed
}

// lookalike is what replaces a hierarchy delimiter inside a name level.
func lookalike(delim rune) string {
	switch delim {
	case '.':
		return "\u2024" // ONE DOT LEADER
	case '\\':
		return "\u29f5" // REVERSE SOLIDUS OPERATOR
	case '/':
		return "\u2215" // DIVISION SLASH
	}
	return "_"
}

// describe is a one-line account of a plan for logs and warnings.
func (p *folderPlan) describe() string {
	var src []string
	for _, s := range p.Sources {
		src = append(src, s.Name)
	}
	return fmt.Sprintf("%s → %s", strings.Join(src, ", "), p.Server)
}
