package demo

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-mbox"
)

// letter is one demo message before it becomes RFC 5322 bytes.
type letter struct {
	From, To string
	Subject  string
	Date     time.Time
	Body     string
	Flags    []imap.Flag
	// Attachment, when set, adds a base64 part of that many bytes.
	Attachment int
	// InReplyTo threads a reply.
	InReplyTo string
}

// id is the letter's Message-ID, stable for the same content.
func (l letter) id() string {
	return fmt.Sprintf("%d.%x@%s", l.Date.Unix(), hash(l.Subject+l.From), domain(l.From))
}

func domain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.TrimRight(addr[i+1:], ">")
	}
	return "example.org"
}

func hash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// raw renders the letter with CRLF line ends, as a server stores it.
func (l letter) raw() []byte {
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", l.From)
	hdr("To", l.To)
	hdr("Subject", mime.QEncoding.Encode("utf-8", l.Subject))
	hdr("Date", l.Date.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+l.id()+">")
	if l.InReplyTo != "" {
		hdr("In-Reply-To", "<"+l.InReplyTo+">")
	}
	hdr("MIME-Version", "1.0")
	body := strings.ReplaceAll(strings.TrimSpace(l.Body), "\n", "\r\n") + "\r\n"
	if l.Attachment == 0 {
		hdr("Content-Type", "text/plain; charset=utf-8")
		hdr("Content-Transfer-Encoding", "8bit")
		b.WriteString("\r\n" + body)
		return b.Bytes()
	}
	boundary := fmt.Sprintf("=_mailark_%x", hash(l.Subject))
	hdr("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s", boundary, body)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/pdf; name=\"plan.pdf\"\r\nContent-Disposition: attachment; filename=\"plan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary)
	data := make([]byte, l.Attachment)
	seed := hash(l.Subject)
	for i := range data {
		seed = seed*1103515245 + 12345
		data[i] = byte(seed >> 16)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	fmt.Fprintf(&b, "%s\r\n--%s--\r\n", enc, boundary)
	return b.Bytes()
}

func day(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.FixedZone("CET", 3600))
}

const (
	alice = "Alice Martin <alice@example.org>"
	carol = "Carol Weber <carol@isp.example>"
	bob   = "Bob Novak <bob@example.net>"
)

// aliceMailbox is the IMAP account the demo backs up: a few years of mail
// in the folders real accounts have, nested and non-ASCII ones included.
func aliceMailbox() map[string][]letter {
	seen := []imap.Flag{imap.FlagSeen}
	return map[string][]letter{
		"INBOX": {
			{From: bob, To: alice, Subject: "Lunch on Thursday?", Date: day(2023, 3, 14, 11, 2), Flags: seen,
				Body: "Hi Alice,\n\nThe usual place at noon?\n\nBob"},
			{From: "Grete Huber <grete@example.at>", To: alice, Subject: "Grüße aus München", Date: day(2023, 6, 2, 18, 40), Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged},
				Body: "Liebe Alice,\n\nviele Grüße aus München! Die Fotos schicke ich morgen.\n\nGrete"},
			{From: "Billing <billing@power.example>", To: alice, Subject: "Your invoice for May", Date: day(2023, 6, 5, 7, 0), Flags: seen, Attachment: 12_000,
				Body: "Dear customer,\n\nplease find your invoice attached.\n\nFrom a line that starts with From, as mbox files dislike.\n"},
			{From: bob, To: alice, Subject: "Re: Garden plans", Date: day(2024, 4, 20, 9, 15), Flags: []imap.Flag{imap.FlagSeen, imap.FlagAnswered},
				Body: "Sounds good. I can bring the seedlings on Saturday."},
			{From: "Dmitri Volkov <dmitri@example.ru>", To: alice, Subject: "Привет из Москвы", Date: day(2024, 11, 3, 21, 5),
				Body: "Привет, Алиса!\n\nКак дела?\n\nДмитрий"},
			{From: "Newsletter <news@books.example>", To: alice, Subject: "Ten books for winter", Date: day(2025, 1, 8, 6, 30),
				Body: "Our picks for long evenings."},
			{From: bob, To: alice, Subject: "Photos from the trip", Date: day(2025, 2, 1, 20, 12), Attachment: 48_000,
				Body: "Here they are, finally."},
		},
		"Sent": {
			{From: alice, To: bob, Subject: "Re: Lunch on Thursday?", Date: day(2023, 3, 14, 11, 30), Flags: seen,
				Body: "Yes, see you there!"},
			{From: alice, To: bob, Subject: "Garden plans", Date: day(2024, 4, 19, 19, 45), Flags: seen,
				Body: "Tomatoes along the fence, beans by the shed?"},
			{From: alice, To: "Grete Huber <grete@example.at>", Subject: "Re: Grüße aus München", Date: day(2023, 6, 3, 10, 0), Flags: seen,
				Body: "Danke, Grete! Bis bald."},
		},
		"Drafts": {
			{From: alice, To: "Landlord <office@homes.example>", Subject: "Heating in flat 3", Date: day(2025, 2, 10, 22, 0), Flags: []imap.Flag{imap.FlagDraft},
				Body: "Dear Sir or Madam,\n\nthe heating ..."},
		},
		"Projects/2024/Garden": {
			{From: bob, To: alice, Subject: "Seed list", Date: day(2024, 3, 1, 8, 0), Flags: seen, Body: "Tomatoes, beans, basil."},
			{From: "Nursery <shop@plants.example>", To: alice, Subject: "Order 4711 shipped", Date: day(2024, 3, 9, 14, 22), Flags: seen, Body: "Your order is on its way."},
		},
		"Reisen/Zürich": {
			{From: "Rail <tickets@rail.example>", To: alice, Subject: "Ticket Basel – Zürich", Date: day(2024, 7, 12, 6, 45), Flags: []imap.Flag{imap.FlagSeen, "$Travel"},
				Body: "Your e-ticket for 14 July."},
		},
		"Архив": {
			{From: "Dmitri Volkov <dmitri@example.ru>", To: alice, Subject: "Старые фотографии", Date: day(2022, 12, 30, 12, 0), Flags: seen, Body: "Нашёл старые фотографии."},
		},
		"Trash": {
			{From: "Prize <win@spam.example>", To: alice, Subject: "You have won!", Date: day(2025, 1, 1, 0, 1), Flags: []imap.Flag{imap.FlagSeen, imap.FlagDeleted},
				Body: "Click here."},
		},
	}
}

// carolInbox is the POP3 box at her old provider: the last messages her
// mail client left on the server.
func carolInbox() []letter {
	return []letter{
		{From: "Old ISP <support@isp.example>", To: carol, Subject: "Your mailbox will close on 30 June", Date: day(2025, 4, 1, 9, 0),
			Body: "Please move your mail to another provider before 30 June."},
		{From: bob, To: carol, Subject: "Choir rehearsal moved", Date: day(2025, 4, 3, 17, 20), Body: "Wednesday instead of Tuesday this week."},
		{From: "Grete Huber <grete@example.at>", To: carol, Subject: "Rezept: Apfelstrudel", Date: day(2025, 4, 6, 15, 0), Body: "Mehl, Äpfel, Zimt, viel Geduld."},
		{From: "Bank <noreply@bank.example>", To: carol, Subject: "Statement April", Date: day(2025, 5, 2, 4, 0), Attachment: 20_000, Body: "Your statement is attached."},
		{From: bob, To: carol, Subject: "Re: Choir rehearsal moved", Date: day(2025, 5, 9, 8, 10), Body: "Thanks for letting everyone know."},
	}
}

// carolSent is her mail client's local Sent folder: POP never stored it
// on the server, so this file is the only copy.
func carolSent() []letter {
	return []letter{
		{From: carol, To: "Old ISP <support@isp.example>", Subject: "Re: Your mailbox will close on 30 June", Date: day(2025, 4, 1, 10, 30), Flags: []imap.Flag{imap.FlagSeen},
			Body: "Thank you. Can you forward mail until the end of the year?"},
		{From: carol, To: bob, Subject: "Choir rehearsal moved", Date: day(2025, 4, 3, 18, 0), Flags: []imap.Flag{imap.FlagSeen},
			Body: "I told the others.\n\nFrom now on rehearsals are on Wednesday."},
		{From: carol, To: "Grete Huber <grete@example.at>", Subject: "Re: Rezept: Apfelstrudel", Date: day(2025, 4, 7, 9, 0), Flags: []imap.Flag{imap.FlagSeen},
			Body: "Danke! Ich probiere es am Sonntag."},
	}
}

// mboxSender is the address a mail client puts on the From_ line.
func mboxSender(l letter) string {
	addr := l.From
	if i := strings.IndexByte(addr, '<'); i >= 0 {
		addr = strings.TrimSuffix(addr[i+1:], ">")
	}
	return addr
}

// mboxFile renders letters as a mail client's mbox file: mboxo, as mutt and
// Thunderbird write it, produced by go-mbox's writer (LF line ends, "From "
// body lines quoted with '>'), with a Status header for the read flag.
func mboxFile(letters []letter) ([]byte, error) {
	var b bytes.Buffer
	w := mbox.NewWriter(&b)
	for _, l := range letters {
		mw, err := w.CreateMessage(mboxSender(l), l.Date)
		if err != nil {
			return nil, err
		}
		head, body, _ := strings.Cut(string(l.raw()), "\r\n\r\n")
		var msg strings.Builder
		msg.WriteString(head + "\r\n")
		if slices.Contains(l.Flags, imap.FlagSeen) {
			msg.WriteString("Status: RO\r\n")
		}
		msg.WriteString("\r\n" + body)
		// go-mbox ends every message with a blank line of its own; the
		// message's final line end is that line's first half.
		if _, err := io.WriteString(mw, strings.TrimSuffix(msg.String(), "\r\n")); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
