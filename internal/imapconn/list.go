package imapconn

import (
	"context"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailark/mailark/archive"
)

// SpecialAll is archive.SpecialAll under the name the IMAP fetcher uses.
// Every special-use attribute mailark knows is an archive.Special*
// constant: the archive records what this package recognises.
const SpecialAll = archive.SpecialAll

// specialUses are the attributes recognised, in the order names are
// tried.
var specialUses = []string{archive.SpecialSent, archive.SpecialDrafts, archive.SpecialTrash, archive.SpecialJunk,
	archive.SpecialArchive, archive.SpecialAll, archive.SpecialFlagged}

// wellKnownNames are folder names that mean a special use on servers
// without SPECIAL-USE (or where the attribute is not configured), in order
// of preference. Compared case-insensitively, after the personal
// namespace prefix is removed.
var wellKnownNames = map[string][]string{
	archive.SpecialSent: {"Sent", "Sent Items", "Sent Messages", "Sent Mail", "[Gmail]/Sent Mail", "[Google Mail]/Sent Mail",
		"Gesendet", "Gesendete Elemente", "Gesendete Objekte", "Envoyés", "Éléments envoyés", "Enviados",
		"Elementos enviados", "Posta inviata", "Verzonden", "Verzonden items", "Skickat", "Sendt"},
	archive.SpecialDrafts: {"Drafts", "[Gmail]/Drafts", "[Google Mail]/Drafts", "Entwürfe", "Brouillons", "Borradores",
		"Bozze", "Concepten", "Utkast", "Kladder"},
	archive.SpecialTrash: {"Trash", "Deleted Items", "Deleted Messages", "[Gmail]/Trash", "[Gmail]/Bin", "[Google Mail]/Trash",
		"[Google Mail]/Bin", "Bin", "Papierkorb", "Gelöschte Elemente", "Gelöschte Objekte", "Corbeille",
		"Éléments supprimés", "Papelera", "Elementos eliminados", "Cestino", "Prullenbak", "Papperskorgen"},
	archive.SpecialJunk: {"Junk", "Spam", "Junk E-mail", "Junk Email", "Junk Mail", "[Gmail]/Spam", "[Google Mail]/Spam",
		"Bulk Mail", "Spamverdacht", "Junk-E-Mail", "Courrier indésirable", "Correo no deseado"},
	archive.SpecialArchive: {"Archive", "Archives", "Archiv", "Archivo", "Archivio", "Archief"},
	archive.SpecialAll:     {"[Gmail]/All Mail", "[Google Mail]/All Mail", "All Mail"},
	archive.SpecialFlagged: {"[Gmail]/Starred", "[Google Mail]/Starred"},
}

// Mailbox is one folder as the server lists it.
type Mailbox struct {
	// Name is the server's name, decoded from modified UTF-7 to UTF-8,
	// "INBOX" for the inbox in any case.
	Name  string
	Delim rune // hierarchy delimiter, 0 if the server has none
	Attrs []imap.MailboxAttr
	// SpecialUse is the RFC 6154 attribute, from the server when it
	// sends one, else recognised from a well-known name; "" otherwise.
	SpecialUse string
	// NoSelect marks a folder that cannot hold messages (\Noselect, or
	// \NonExistent: a placeholder parent).
	NoSelect bool
	// Status is what LIST-STATUS returned with the folder; nil without it.
	Status *imap.StatusData
	// BadName marks a name the server sent that is not valid modified
	// UTF-7: Name shows it as text, RawName is what the server sent. Such
	// a folder cannot be opened by name through imapclient.
	BadName bool
	RawName string
}

// List lists every folder of the account.
func (c *Conn) List(ctx context.Context) ([]Mailbox, error) {
	return c.ListStatus(ctx, nil)
}

// ListStatus lists every folder and, when the server has LIST-STATUS,
// returns the STATUS items asked for with each (Mailbox.Status); without
// LIST-STATUS, Status stays nil and the caller asks STATUS per folder.
// Items the server does not support (HIGHESTMODSEQ without CONDSTORE,
// SIZE without STATUS=SIZE) are dropped from the request.
func (c *Conn) ListStatus(ctx context.Context, status *imap.StatusOptions) ([]Mailbox, error) {
	l := c.folders
	c.folders = nil
	if l == nil || !sameStatus(l.status, status) {
		if l != nil {
			l.cmd.Collect() // asked for with other items: not the answer
		}
		l = c.startList(status)
	}
	return c.finishList(l)
}

// folderList is a LIST "" "*" in flight.
type folderList struct {
	cmd    *imapclient.ListCommand
	fix    *listFixer
	status *imap.StatusOptions
}

// startList sends the LIST of every folder (see ListStatus).
func (c *Conn) startList(status *imap.StatusOptions) *folderList {
	var opts *imap.ListOptions
	// Selection/return options make imapclient send LIST-EXTENDED
	// syntax, which servers without it (Office 365) answer with BAD.
	if c.Caps.Has(imap.CapListExtended) {
		opts = &imap.ListOptions{ReturnSpecialUse: c.Caps.Has(imap.CapSpecialUse)}
		if status != nil && c.Caps.Has(imap.CapListStatus) {
			opts.ReturnStatus = c.SupportedStatus(status)
		}
		if !opts.ReturnSpecialUse && opts.ReturnStatus == nil {
			opts = nil
		}
	}
	fix := newListFixer()
	c.wire.listFix.Store(fix)
	// The reader drops the fixer itself once the LIST is over and every
	// byte it holds is handed on.
	return &folderList{cmd: c.Client.List("", "*", opts), fix: fix, status: status}
}

// finishList reads the answer to startList.
func (c *Conn) finishList(l *folderList) ([]Mailbox, error) {
	data, err := l.cmd.Collect()
	if err != nil {
		return nil, c.Err(err, "listing folders")
	}
	fix := l.fix
	out := make([]Mailbox, 0, len(data))
	for _, d := range data {
		m := Mailbox{Name: d.Mailbox, Delim: d.Delim, Attrs: d.Attrs, Status: d.Status}
		fix.mu.Lock()
		m.RawName, m.BadName = fix.renamed[d.Mailbox]
		fix.mu.Unlock()
		if strings.EqualFold(m.Name, "INBOX") {
			m.Name = "INBOX"
		}
		for _, a := range d.Attrs {
			switch {
			case attrIs(a, imap.MailboxAttrNoSelect), attrIs(a, imap.MailboxAttrNonExistent):
				m.NoSelect = true
			default:
				for _, su := range specialUses {
					if attrIs(a, imap.MailboxAttr(su)) && m.SpecialUse == "" {
						m.SpecialUse = su
					}
				}
			}
		}
		out = append(out, m)
	}
	assignWellKnown(out, c.Prefix)
	return out, nil
}

func sameStatus(a, b *imap.StatusOptions) bool {
	return a == b || a != nil && b != nil && *a == *b
}

// SupportedStatus drops the STATUS items the server does not support.
func (c *Conn) SupportedStatus(want *imap.StatusOptions) *imap.StatusOptions {
	o := *want
	o.NumRecent = false // panics in imapclient (beta.8)
	if !c.Caps.Has(imap.CapCondStore) {
		o.HighestModSeq = false
	}
	if !c.Caps.Has(imap.CapStatusSize) && !c.Caps.Has(imap.CapIMAP4rev2) {
		o.Size = false
	}
	if !c.Caps.Has(imap.CapIMAP4rev2) && !c.Caps.Has(imap.CapQuota) {
		o.NumDeleted = false
	}
	if !c.Caps.Has(imap.CapAppendLimit) {
		o.AppendLimit = false
	}
	o.DeletedStorage = false
	return &o
}

func attrIs(a, b imap.MailboxAttr) bool { return strings.EqualFold(string(a), string(b)) }

// assignWellKnown gives a special use to folders named like one, for each
// use no folder carries as an attribute already.
func assignWellKnown(boxes []Mailbox, prefix string) {
	taken := map[string]bool{}
	for _, m := range boxes {
		if m.SpecialUse != "" {
			taken[m.SpecialUse] = true
		}
	}
	for _, use := range specialUses {
		if taken[use] {
			continue
		}
	names:
		for _, name := range wellKnownNames[use] {
			for i := range boxes {
				m := &boxes[i]
				if m.SpecialUse != "" || m.NoSelect {
					continue
				}
				if strings.EqualFold(stripPrefix(m.Name, prefix), name) ||
					(m.Delim != '/' && strings.EqualFold(stripPrefix(m.Name, prefix), strings.ReplaceAll(name, "/", string(m.Delim)))) {
					m.SpecialUse = use
					break names
				}
			}
		}
	}
}

func stripPrefix(name, prefix string) string {
	if prefix != "" && len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
		return name[len(prefix):]
	}
	return name
}

// ArchiveName maps a server folder name to mailark's archive name:
// components joined by "/" whatever the server's delimiter, the personal
// namespace prefix ("INBOX." on Courier/Cyrus) removed so the archive does
// not depend on the server's layout, and "INBOX" canonical. A "/" inside a
// component (possible where the delimiter is ".") becomes U+2215 DIVISION
// SLASH, which looks alike and cannot split the name.
func ArchiveName(name string, delim rune, prefix string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	name = stripPrefix(name, prefix)
	if delim == 0 || delim == '/' {
		return name
	}
	parts := strings.Split(name, string(delim))
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "/", "\u2215")
	}
	if strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
	}
	return strings.Join(parts, "/")
}

// ServerName maps an archive name to a folder name on a server with the
// given delimiter and personal namespace prefix (the inverse of
// ArchiveName).
func ServerName(archiveName string, delim rune, prefix string) string {
	if strings.EqualFold(archiveName, "INBOX") {
		return "INBOX"
	}
	name := archiveName
	if delim != 0 && delim != '/' {
		parts := strings.Split(archiveName, "/")
		for i, p := range parts {
			parts[i] = strings.ReplaceAll(p, "\u2215", "/")
		}
		name = strings.Join(parts, string(delim))
	}
	return prefix + name
}
