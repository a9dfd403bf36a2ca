package testbed

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"slices"
	"strings"
	"time"
)

// GenOptions shapes the messages of GenMessages. The zero value gives an
// INBOX of ordinary mail from 2012 to 2024.
type GenOptions struct {
	// Folders to spread the messages over, uniformly at random. Default
	// {"INBOX"}. Folders whose last level looks like a Sent folder
	// ("Sent", "Sent Items", "Gesendet", ...) get mail from Self; Drafts
	// folders ("Drafts", "Entwürfe") get \Draft messages.
	Folders []string
	// Since and Until bound the dates (INTERNALDATE). Defaults 2012-01-01
	// and 2025-01-01 UTC.
	Since, Until time.Time
	// Self is the account owner, "Name <address>".
	Self string
	// AttachmentRate is the fraction of messages with base64 attachments:
	// 0 means the default 0.15, a negative value means none.
	AttachmentRate float64
	// MaxAttachment bounds the size of one attachment before encoding.
	// Default 256 KiB. Sizes are spread log-uniformly from 512 bytes.
	MaxAttachment int
	// Keywords is the pool of keywords some messages carry. Default
	// {"$Forwarded", "$MDNSent", "$label1", "NonJunk", "Work"}.
	Keywords []string
	// DeletedRate is the fraction of messages flagged \Deleted (not
	// expunged), as mail clients leave them. Default 0.
	DeletedRate float64
	// NoMessageIDRate is the fraction of messages without a Message-ID
	// header, as old POP3 mail sometimes is. Default 0.
	NoMessageIDRate float64
}

// GenMessages returns n realistic RFC 5322 messages, the same for the same
// seed and options: From/To/Cc/Subject/Date/Message-ID and Received
// headers, MIME-encoded non-ASCII names and subjects, plain, quoted-printable,
// 8bit and multipart/alternative bodies, multipart/mixed messages with base64
// attachments, replies with In-Reply-To/References, and flags as a mail
// client leaves them. Every line ends in CRLF, which is how IMAP serves mail,
// so the bytes survive a round trip through Dovecot unchanged. The messages
// are sorted by date; Date is INTERNALDATE, a little after the Date header.
func GenMessages(seed int64, n int, opts GenOptions) []Message {
	g := newGenerator(seed, opts)
	dates := make([]time.Time, n)
	span := g.until.Unix() - g.since.Unix()
	for i := range dates {
		dates[i] = time.Unix(g.since.Unix()+g.r.Int64N(span), 0).UTC()
	}
	slices.SortFunc(dates, func(a, b time.Time) int { return a.Compare(b) })
	msgs := make([]Message, n)
	for i := range msgs {
		folder := g.folders[g.r.IntN(len(g.folders))]
		msgs[i] = g.message(i, n, folder, dates[i])
	}
	return msgs
}

type generator struct {
	r            *rand.Rand
	seed         int64
	opts         GenOptions
	folders      []string
	since, until time.Time
	selfName     string
	selfAddr     string
	keywords     []string
	attachRate   float64
	maxAttach    int
	sentIDs      []string // Message-IDs earlier messages used, for replies
	sentSubjects []string
}

func newGenerator(seed int64, opts GenOptions) *generator {
	g := &generator{
		r:          rand.New(rand.NewPCG(uint64(seed), 0x6d61696c61726b21)),
		seed:       seed,
		opts:       opts,
		folders:    opts.Folders,
		since:      opts.Since,
		until:      opts.Until,
		keywords:   opts.Keywords,
		attachRate: opts.AttachmentRate,
		maxAttach:  opts.MaxAttachment,
		selfName:   "Alex Berger",
		selfAddr:   "alex.berger@example.org",
	}
	if len(g.folders) == 0 {
		g.folders = []string{"INBOX"}
	}
	if g.since.IsZero() {
		g.since = time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if g.until.IsZero() {
		g.until = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if !g.until.After(g.since) {
		g.until = g.since.Add(24 * time.Hour)
	}
	if g.keywords == nil {
		g.keywords = []string{"$Forwarded", "$MDNSent", "$label1", "NonJunk", "Work"}
	}
	if g.attachRate == 0 {
		g.attachRate = 0.15
	}
	if g.maxAttach <= 0 {
		g.maxAttach = 256 << 10
	}
	if g.maxAttach < 512 {
		g.maxAttach = 512
	}
	if opts.Self != "" {
		if a, err := parseAddress(opts.Self); err == nil {
			g.selfName, g.selfAddr = a.name, a.addr
		}
	}
	return g
}

type person struct{ name, addr string }

func parseAddress(s string) (person, error) {
	i := strings.LastIndexByte(s, '<')
	j := strings.LastIndexByte(s, '>')
	if i < 0 || j < i {
		if strings.Contains(s, "@") {
			return person{addr: strings.TrimSpace(s)}, nil
		}
		return person{}, fmt.Errorf("not an address: %q", s)
	}
	return person{strings.TrimSpace(s[:i]), s[i+1 : j]}, nil
}

var contacts = []person{
	{"Anna Schmidt", "anna.schmidt@example.com"},
	{"Björn Larsson", "bjorn@example.net"},
	{"Chloé Martin", "chloe.martin@example.fr"},
	{"David Okafor", "d.okafor@example.com"},
	{"Emma Wilson", "emma@example.co.uk"},
	{"Fatima Haddad", "fatima.haddad@example.org"},
	{"Giulia Rossi", "giulia.rossi@example.it"},
	{"Hiroshi Tanaka", "h.tanaka@example.jp"},
	{"Ingrid Müller", "ingrid.mueller@example.de"},
	{"José García", "jgarcia@example.es"},
	{"Łukasz Nowak", "lukasz@example.pl"},
	{"Zoë O'Brien", "zoe@example.ie"},
	// Senders nobody writes to come last (see message).
	{"", "noreply@shop.example.com"},
	{"Newsletter", "news@lists.example.net"},
}

// writable is how many of contacts (from the start) the owner writes to.
var writable = len(contacts) - 2

var topics = []string{
	"Quarterly report", "Meeting next week", "Invoice %d", "Your order %d has shipped",
	"Holiday plans", "Project status", "Re: budget %d", "Lunch on Friday?",
	"Photos from the weekend", "Contract draft v%d", "Server maintenance window",
	"Grüße aus München", "Rückfrage zur Rechnung %d", "Café à Paris", "Überweisung erhalten",
	"Tickets for the concert", "Minutes of the board meeting", "Password reset request",
	"Welcome to the team", "Newsletter %d/2024",
}

var words = []string{
	"the", "report", "meeting", "please", "find", "attached", "thanks", "regards", "we", "should",
	"discuss", "budget", "next", "week", "schedule", "project", "deadline", "update", "review", "draft",
	"customer", "invoice", "order", "shipping", "delivery", "account", "team", "office", "travel", "plan",
	"question", "answer", "tomorrow", "morning", "afternoon", "call", "agenda", "numbers", "figures", "summary",
	"and", "or", "but", "with", "for", "about", "from", "to", "in", "on", "a", "is", "are", "was", "it",
}

var wordsUTF8 = []string{
	"Grüße", "Straße", "Müller", "café", "naïve", "Überweisung", "Bärbel", "smørrebrød",
	"garçon", "Zürich", "€", "½", "Łódź", "déjà", "vu",
}

func (g *generator) message(i, n int, folder string, date time.Time) Message {
	r := g.r
	kind := roleOf(folder)
	var from, to person
	if kind == roleSent || kind == roleDrafts {
		from = person{g.selfName, g.selfAddr}
		to = contacts[r.IntN(writable)]
	} else {
		from = contacts[r.IntN(len(contacts))]
		to = person{g.selfName, g.selfAddr}
	}
	zones := []*time.Location{
		time.UTC, time.FixedZone("", 3600), time.FixedZone("", 7200), time.FixedZone("", -5*3600),
		time.FixedZone("", -8*3600), time.FixedZone("", 5*3600+1800), time.FixedZone("", 9*3600),
	}
	// The Date header is when the sender wrote it; INTERNALDATE is when it
	// arrived, a little later.
	sent := date.Add(-time.Duration(1+r.IntN(300)) * time.Second).In(zones[r.IntN(len(zones))])

	var h strings.Builder
	hdr := func(name, value string) { h.WriteString(name + ": " + value + "\r\n") }
	if kind != roleSent && kind != roleDrafts {
		hdr("Return-Path", "<"+from.addr+">")
		fmt.Fprintf(&h, "Received: from mail.example.net (mail.example.net [192.0.2.%d])\r\n"+
			"\tby mx.example.org (Postfix) with ESMTPS id %X\r\n\tfor <%s>; %s\r\n",
			1+r.IntN(250), r.Uint32(), to.addr, date.Format(time.RFC1123Z))
	}
	id := fmt.Sprintf("<%d.%x.%d@%s>", sent.Unix(), uint32(g.seed), i, domainOf(from.addr))
	reply := len(g.sentIDs) > 0 && r.IntN(5) == 0
	if r.Float64() >= g.opts.NoMessageIDRate {
		hdr("Message-ID", id)
	}
	hdr("Date", sent.Format(time.RFC1123Z))
	hdr("From", formatAddress(from, r))
	hdr("To", formatAddress(to, r))
	if r.IntN(6) == 0 {
		cc := contacts[r.IntN(writable)]
		hdr("Cc", formatAddress(cc, r))
	}
	var subject string
	if reply {
		k := r.IntN(len(g.sentIDs))
		subject = "Re: " + strings.TrimPrefix(g.sentSubjects[k], "Re: ")
		hdr("In-Reply-To", g.sentIDs[k])
		// A long References header folds over several lines, as real ones do.
		refs := []string{g.sentIDs[k]}
		for j, extra := 0, r.IntN(4); j < extra; j++ {
			refs = append(refs, fmt.Sprintf("<%x.%d@example.com>", r.Uint64(), j))
		}
		hdr("References", strings.Join(refs, "\r\n\t"))
	} else {
		subject = topics[r.IntN(len(topics))]
		if strings.Contains(subject, "%d") {
			subject = fmt.Sprintf(subject, 1000+r.IntN(9000))
		}
	}
	hdr("Subject", encodeHeaderText(subject, r))
	if len(g.sentIDs) < 1000 {
		g.sentIDs = append(g.sentIDs, id)
		g.sentSubjects = append(g.sentSubjects, subject)
	}
	hdr("MIME-Version", "1.0")
	if r.IntN(3) == 0 {
		hdr("User-Agent", []string{"Mozilla Thunderbird", "Mutt/2.2.9", "Apple Mail (2.3731)", "Roundcube Webmail/1.6.5"}[r.IntN(4)])
	}

	var body string
	var ctype string
	if g.attachRate > 0 && r.Float64() < g.attachRate {
		ctype, body = g.mixedBody(i)
	} else {
		ctype, body = g.simpleBody()
	}
	h.WriteString(ctype)
	h.WriteString("\r\n")
	h.WriteString(body)

	return Message{
		Folder: folder,
		Raw:    []byte(h.String()),
		Flags:  g.flags(kind, i, n),
		Date:   date,
	}
}

type folderKind int

const (
	roleNormal folderKind = iota
	roleSent
	roleDrafts
)

func roleOf(folder string) folderKind {
	last := strings.ToLower(folder[strings.LastIndexByte(folder, '/')+1:])
	switch {
	case strings.HasPrefix(last, "sent") || last == "gesendet" || last == "gesendete objekte" || last == "envoyés":
		return roleSent
	case strings.HasPrefix(last, "draft") || last == "entwürfe" || last == "brouillons":
		return roleDrafts
	}
	return roleNormal
}

// flags picks flags as a mail client leaves them: old mail is mostly read,
// recent mail less so; some is answered, flagged or tagged.
func (g *generator) flags(kind folderKind, i, n int) []string {
	r := g.r
	var f []string
	switch kind {
	case roleSent:
		f = append(f, `\Seen`)
	case roleDrafts:
		f = append(f, `\Draft`, `\Seen`)
	default:
		pSeen := 0.9
		if i >= n-n/10 {
			pSeen = 0.4
		}
		if r.Float64() < pSeen {
			f = append(f, `\Seen`)
			if r.Float64() < 0.12 {
				f = append(f, `\Answered`)
			}
		}
		if r.Float64() < 0.06 {
			f = append(f, `\Flagged`)
		}
	}
	if len(g.keywords) > 0 && r.Float64() < 0.1 {
		for k := 0; k <= r.IntN(2); k++ {
			f = append(f, g.keywords[r.IntN(len(g.keywords))])
		}
	}
	if g.opts.DeletedRate > 0 && r.Float64() < g.opts.DeletedRate {
		f = append(f, `\Deleted`)
	}
	return NormalizeFlags(f)
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "example.org"
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// encodeHeaderText MIME-encodes non-ASCII header text, with Q or B encoding
// as different mailers do.
func encodeHeaderText(s string, r *rand.Rand) string {
	if isASCII(s) {
		return s
	}
	if r.IntN(2) == 0 {
		return mime.QEncoding.Encode("utf-8", s)
	}
	return mime.BEncoding.Encode("utf-8", s)
}

func formatAddress(p person, r *rand.Rand) string {
	switch {
	case p.name == "":
		return p.addr
	case isASCII(p.name):
		if strings.ContainsAny(p.name, `'.,"`) {
			return `"` + strings.ReplaceAll(p.name, `"`, `\"`) + `" <` + p.addr + ">"
		}
		return p.name + " <" + p.addr + ">"
	default:
		return encodeHeaderText(p.name, r) + " <" + p.addr + ">"
	}
}

// paragraphs returns lines of text joined with CRLF and ending in CRLF.
func (g *generator) paragraphs(utf8 bool) string {
	r := g.r
	var b strings.Builder
	b.WriteString([]string{"Hello,", "Hi all,", "Dear colleagues,", "Hallo zusammen,"}[r.IntN(4)] + "\r\n\r\n")
	nlines := 2 + r.IntN(40)
	if r.IntN(20) == 0 {
		nlines += 200 + r.IntN(400) // a long mail now and then
	}
	for l := 0; l < nlines; l++ {
		if l > 0 && r.IntN(7) == 0 {
			b.WriteString("\r\n") // paragraph break
		}
		n := 0
		for {
			w := words[r.IntN(len(words))]
			if utf8 && r.IntN(6) == 0 {
				w = wordsUTF8[r.IntN(len(wordsUTF8))]
			}
			if n > 0 && n+1+len(w) > 72 {
				break
			}
			if n > 0 {
				b.WriteByte(' ')
				n++
			}
			b.WriteString(w)
			n += len(w)
		}
		b.WriteString(".\r\n")
	}
	signatures := []string{"Best regards", "Cheers", "Viele Gruesse"}
	if utf8 {
		signatures[2] = "Viele Grüße"
	}
	b.WriteString("\r\n-- \r\n" + signatures[r.IntN(len(signatures))] + "\r\n")
	return b.String()
}

// simpleBody returns a Content-Type/Content-Transfer-Encoding header block
// (without the blank line) and the body.
func (g *generator) simpleBody() (string, string) {
	r := g.r
	switch k := r.IntN(20); {
	case k < 9:
		text := g.paragraphs(false)
		return "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n", text
	case k < 12:
		return "Content-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: quoted-printable\r\n",
			qp(g.paragraphs(true))
	case k < 14:
		return "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n", g.paragraphs(true)
	default:
		boundary := g.boundary()
		text := g.paragraphs(true)
		html := "<html><body><p>" + strings.ReplaceAll(strings.TrimSuffix(text, "\r\n"), "\r\n\r\n", "</p>\r\n<p>") + "</p></body></html>\r\n"
		var b strings.Builder
		b.WriteString("This is a multi-part message in MIME format.\r\n")
		part := func(ctype, body string) {
			b.WriteString("--" + boundary + "\r\n")
			b.WriteString("Content-Type: " + ctype + "\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
			b.WriteString(qp(body))
		}
		part("text/plain; charset=utf-8", text)
		part("text/html; charset=utf-8", html)
		b.WriteString("--" + boundary + "--\r\n")
		return "Content-Type: multipart/alternative;\r\n\tboundary=\"" + boundary + "\"\r\n", b.String()
	}
}

// mixedBody returns a multipart/mixed body: a text part and one to three
// base64 attachments.
func (g *generator) mixedBody(i int) (string, string) {
	r := g.r
	boundary := g.boundary()
	var b strings.Builder
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	ctype, text := g.simpleBody()
	b.WriteString("--" + boundary + "\r\n" + ctype + "\r\n" + text)
	kinds := []struct{ ctype, name string }{
		{"application/pdf", "report-%d.pdf"},
		{"image/jpeg", "IMG_%04d.jpg"},
		{"application/zip", "files-%d.zip"},
		{"text/csv; charset=utf-8", "export-%d.csv"},
		{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "Vertrag-%d.docx"},
	}
	count := 1
	if r.IntN(4) == 0 {
		count++
	}
	if r.IntN(10) == 0 {
		count++
	}
	for a := 0; a < count; a++ {
		k := kinds[r.IntN(len(kinds))]
		name := fmt.Sprintf(k.name, i*10+a)
		size := int(math.Exp(math.Log(512) + r.Float64()*(math.Log(float64(g.maxAttach))-math.Log(512))))
		data := make([]byte, size)
		for j := 0; j < size; j += 8 {
			v := r.Uint64()
			for k := 0; k < 8 && j+k < size; k++ {
				data[j+k] = byte(v >> (8 * k))
			}
		}
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, k.ctype, name, name)
		b.WriteString(base64Lines(data))
	}
	b.WriteString("--" + boundary + "--\r\n")
	return "Content-Type: multipart/mixed;\r\n\tboundary=\"" + boundary + "\"\r\n", b.String()
}

func (g *generator) boundary() string {
	return fmt.Sprintf("----=_Part_%d_%d.%d", g.r.IntN(1_000_000), g.r.Uint32(), g.r.IntN(1_000_000_000))
}

// qp encodes text as quoted-printable with CRLF line ends.
func qp(text string) string {
	var b strings.Builder
	w := quotedprintable.NewWriter(&b)
	// The writer turns every line break into CRLF and emits soft breaks
	// ("=" CRLF) itself.
	_, _ = w.Write([]byte(text))
	_ = w.Close()
	s := b.String()
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

// base64Lines encodes data in lines of 76 characters, each ending in CRLF.
func base64Lines(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	b.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.String()
}
