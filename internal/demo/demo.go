// Package demo runs the servers `mailark demo` works against: go-imap's
// in-memory IMAP server and mailark's small POP3 server on loopback ports,
// seeded with realistic mail, plus a mail client's local Sent folder on
// disk. Nothing is installed and nothing leaves the machine.
package demo

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailark/mailark/internal/pop3server"
)

// Password of every demo account.
const Password = "demo"

// Account is one demo mail account.
type Account struct {
	URL         string // imap://user@127.0.0.1:PORT, pop3://...
	Description string
	Folders     []Folder
}

// Folder is a seeded folder and its message count.
type Folder struct {
	Name     string
	Messages int
}

// Servers are the running demo servers and what they hold.
type Servers struct {
	// Backup is the IMAP account backed up to an archive.
	Backup Account
	// Fresh is an empty IMAP account the backup is restored to, as after
	// losing a device or changing provider.
	Fresh Account
	// OldPOP is a POP3 box at a provider that is closing.
	OldPOP Account
	// NewIMAP is the IMAP account the POP history moves to. It already
	// holds two of the POP messages (the old provider forwarded them).
	NewIMAP Account
	// LocalSent is the mail client's Sent folder, an mbox file: POP never
	// kept sent mail on the server.
	LocalSent string

	imap    *imapserver.Server
	pop     *pop3server.Server
	newUser *imapmemserver.User
}

// Start seeds the accounts and serves them on loopback ports; the local
// Sent folder is written under dir.
func Start(dir string) (*Servers, error) {
	s := &Servers{}
	mem := imapmemserver.New()
	backup, err := seedIMAP(mem, "alice", aliceMailbox())
	if err != nil {
		return nil, err
	}
	fresh := imapmemserver.NewUser("alice.new", Password)
	if err := fresh.Create("INBOX", nil); err != nil {
		return nil, err
	}
	mem.AddUser(fresh)
	newUser := imapmemserver.NewUser("carol", Password)
	if err := newUser.Create("INBOX", nil); err != nil {
		return nil, err
	}
	if err := newUser.Create("Sent", nil); err != nil {
		return nil, err
	}
	forwarded := carolInbox()[:2]
	welcome := letter{From: "New Mail <welcome@newmail.example>", To: carol, Subject: "Welcome to your new mailbox",
		Date: day(2025, 3, 28, 12, 0), Body: "Your account is ready."}
	for _, l := range append([]letter{welcome}, forwarded...) {
		if err := appendLetter(newUser, "INBOX", l); err != nil {
			return nil, err
		}
	}
	mem.AddUser(newUser)
	s.newUser = newUser

	imapAddr, err := s.startIMAP(mem)
	if err != nil {
		return nil, err
	}
	popAddr, err := s.startPOP3()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.LocalSent = filepath.Join(dir, "Thunderbird", "Local Folders", "Sent")
	if err := os.MkdirAll(filepath.Dir(s.LocalSent), 0o700); err != nil {
		s.Close()
		return nil, err
	}
	sent, err := mboxFile(carolSent())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("demo: write the local Sent mbox: %w", err)
	}
	if err := os.WriteFile(s.LocalSent, sent, 0o600); err != nil {
		s.Close()
		return nil, err
	}

	s.Backup = Account{URL: "imap://alice@" + imapAddr, Description: "an IMAP account with a few years of mail", Folders: backup}
	s.Fresh = Account{URL: "imap://alice.new@" + imapAddr, Description: "an empty account at a new provider"}
	s.OldPOP = Account{URL: "pop3://carol@" + popAddr, Description: "a POP3 box at a provider that is closing",
		Folders: []Folder{{"INBOX", len(carolInbox())}}}
	s.NewIMAP = Account{URL: "imap://carol@" + imapAddr, Description: "the new IMAP account (already holds 2 of the POP messages)",
		Folders: []Folder{{"INBOX", 1 + len(forwarded)}, {"Sent", 0}}}
	return s, nil
}

func seedIMAP(mem *imapmemserver.Server, name string, box map[string][]letter) ([]Folder, error) {
	u := imapmemserver.NewUser(name, Password)
	names := make([]string, 0, len(box))
	for n := range box {
		names = append(names, n)
	}
	sort.Strings(names)
	var folders []Folder
	for _, n := range names {
		if err := u.Create(n, nil); err != nil {
			return nil, fmt.Errorf("demo: create %s: %w", n, err)
		}
		for _, l := range box[n] {
			if err := appendLetter(u, n, l); err != nil {
				return nil, err
			}
		}
		folders = append(folders, Folder{n, len(box[n])})
	}
	mem.AddUser(u)
	return folders, nil
}

func appendLetter(u *imapmemserver.User, folder string, l letter) error {
	_, err := u.Append(folder, bytes.NewReader(l.raw()), &imap.AppendOptions{Flags: l.Flags, Time: l.Date})
	if err != nil {
		return fmt.Errorf("demo: seed %s: %w", folder, err)
	}
	return nil
}

func (s *Servers) startIMAP(mem *imapmemserver.Server) (string, error) {
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		// IMAP4rev1 plus the extensions real servers offer; not rev2,
		// which would make the client skip modified UTF-7.
		Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapListExtended: {},
			imap.CapListStatus: {}, imap.CapNamespace: {}, imap.CapESearch: {}, imap.CapLiteralPlus: {}},
		InsecureAuth: true, // loopback only
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: IMAP server: %w", err)
	}
	go s.imap.Serve(ln) //nolint:errcheck // ends with Close
	return ln.Addr().String(), nil
}

func (s *Servers) startPOP3() (string, error) {
	store := pop3server.NewMemStore()
	for _, l := range carolInbox() {
		store.Add("carol", l.raw())
	}
	s.pop = &pop3server.Server{Store: store, Users: map[string]string{"carol": Password}}
	addr, err := s.pop.Start("127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: POP3 server: %w", err)
	}
	return addr, nil
}

// NewAccountFolders counts the messages now in the new IMAP account's
// INBOX and Sent, read on the server itself.
func (s *Servers) NewAccountFolders() ([]Folder, error) {
	var out []Folder
	for _, name := range []string{"INBOX", "Sent"} {
		st, err := s.newUser.Status(name, &imap.StatusOptions{NumMessages: true})
		if err != nil {
			return nil, err
		}
		out = append(out, Folder{name, int(*st.NumMessages)})
	}
	return out, nil
}

// Close stops both servers.
func (s *Servers) Close() error {
	var err error
	if s.imap != nil {
		err = s.imap.Close()
	}
	if s.pop != nil {
		if perr := s.pop.Close(); err == nil {
			err = perr
		}
	}
	return err
}
