package archive

import (
	"strings"

	"github.com/emersion/go-imap/utf7"
)

// wellKnownSpecialUse maps lower-cased folder names that mail clients and
// servers use for their special folders (in the languages seen most) to
// the RFC 6154 attribute. Foreign trees carry no attributes, and servers
// without SPECIAL-USE carry none either, so the name is all there is.
var wellKnownSpecialUse = map[string]string{
	"sent": SpecialSent, "sent items": SpecialSent, "sent messages": SpecialSent,
	"sent mail": SpecialSent, "sent-mail": SpecialSent, "outbox sent": SpecialSent,
	"gesendet": SpecialSent, "gesendete objekte": SpecialSent, "gesendete elemente": SpecialSent,
	"envoyés": SpecialSent, "éléments envoyés": SpecialSent, "messages envoyés": SpecialSent,
	"enviados": SpecialSent, "elementos enviados": SpecialSent, "inviati": SpecialSent,
	"posta inviata": SpecialSent, "verzonden": SpecialSent, "verzonden items": SpecialSent,
	"skickat": SpecialSent, "sendt": SpecialSent, "wysłane": SpecialSent, "отправленные": SpecialSent,

	"drafts": SpecialDrafts, "draft": SpecialDrafts, "entwürfe": SpecialDrafts,
	"brouillons": SpecialDrafts, "borradores": SpecialDrafts, "bozze": SpecialDrafts,
	"concepten": SpecialDrafts, "utkast": SpecialDrafts, "kladder": SpecialDrafts,
	"черновики": SpecialDrafts,

	"trash": SpecialTrash, "deleted items": SpecialTrash, "deleted messages": SpecialTrash,
	"bin": SpecialTrash, "papierkorb": SpecialTrash, "gelöschte objekte": SpecialTrash,
	"gelöschte elemente": SpecialTrash, "corbeille": SpecialTrash, "éléments supprimés": SpecialTrash,
	"papelera": SpecialTrash, "elementos eliminados": SpecialTrash, "cestino": SpecialTrash,
	"prullenbak": SpecialTrash, "papperskorgen": SpecialTrash, "kosz": SpecialTrash,
	"корзина": SpecialTrash,

	"junk": SpecialJunk, "spam": SpecialJunk, "junk e-mail": SpecialJunk, "junk email": SpecialJunk,
	"junk mail": SpecialJunk, "bulk mail": SpecialJunk, "spamverdacht": SpecialJunk,
	"courrier indésirable": SpecialJunk, "indésirables": SpecialJunk, "correo no deseado": SpecialJunk,
	"posta indesiderata": SpecialJunk, "ongewenste e-mail": SpecialJunk, "нежелательная почта": SpecialJunk,
	"спам": SpecialJunk,

	"archive": SpecialArchive, "archives": SpecialArchive, "archiv": SpecialArchive,
	"archivo": SpecialArchive, "archivio": SpecialArchive, "archief": SpecialArchive,
	"arkiv": SpecialArchive, "архив": SpecialArchive,

	"all mail": SpecialAll,
}

// SpecialUseByName returns the special-use attribute a folder name implies
// by convention ("Sent Items" → \Sent, "[Gmail]/Trash" → \Trash), or "".
// name uses "/" as separator. Only top-level folders, children of INBOX
// (Courier/Cyrus style "INBOX/Sent") and children of "[Gmail]" or
// "[Google Mail]" qualify: "Projects/Sent" is an ordinary folder.
func SpecialUseByName(name string) string {
	parts := strings.Split(name, "/")
	switch {
	case len(parts) == 1:
	case len(parts) == 2 && foreignIsInbox(parts[0]):
	case len(parts) == 2 && (strings.EqualFold(parts[0], "[Gmail]") || strings.EqualFold(parts[0], "[Google Mail]")):
		if strings.EqualFold(parts[1], "Starred") {
			return SpecialFlagged
		}
	default:
		return ""
	}
	return wellKnownSpecialUse[strings.ToLower(strings.TrimSpace(parts[len(parts)-1]))]
}

func foreignIsInbox(s string) bool { return strings.EqualFold(s, "INBOX") }

// foreignCanonicalName joins name components with "/" and spells a
// top-level inbox (Thunderbird's "Inbox", mbsync's "inbox") as "INBOX",
// the one spelling IMAP reserves for it.
func foreignCanonicalName(components []string) string {
	if len(components) > 0 && foreignIsInbox(components[0]) {
		components = append([]string{"INBOX"}, components[1:]...)
	}
	return strings.Join(components, "/")
}

// foreignDecodeUTF7 turns an on-disk name component written in modified
// UTF-7 (Dovecot Maildir++, OfflineIMAP without utf8foldernames) into
// UTF-8. Names that are not valid modified UTF-7 — mbsync and most mail
// clients write plain UTF-8, and a bare "&" is invalid UTF-7 — are kept as
// they are, so "R&D" stays "R&D" while "Entw&APw-rfe" becomes "Entwürfe".
func foreignDecodeUTF7(component string) string {
	if !strings.Contains(component, "&") {
		return component
	}
	dec, err := utf7.Encoding.NewDecoder().String(component)
	if err != nil {
		return component
	}
	return dec
}
