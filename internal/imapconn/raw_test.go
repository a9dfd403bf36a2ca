package imapconn

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn/imaptest"
	"github.com/mailark/mailark/internal/testbed"
	"github.com/mailark/mailark/internal/testkit"
)

// A raw command gets its own answer, and imapclient carries on afterwards
// on the same connection as if nothing had happened.
func TestRawCommandSharesTheConnection(t *testing.T) {
	var trace testkit.Buffer
	srv := imaptest.Start(t, imaptest.Config{Folders: []string{"Work"}, Caps: []imap.Cap{imap.CapLiteralPlus}})
	a := testAccount(srv.Host, srv.Port, account.Plain, imaptest.Password)
	a.Trace = &trace
	c := dialOK(t, a)
	body := "Subject: raw\r\n\r\nhello\r\n"
	resp, err := c.RawCommand(context.Background(), func(w io.Writer) error {
		_, err := io.WriteString(w, "APPEND Work (\\Seen) {"+strconv.Itoa(len(body))+"+}\r\n"+body+"\r\n")
		return err
	})
	if err != nil || resp.Status != "OK" {
		t.Fatalf("raw APPEND: %v %+v", err, resp)
	}
	resp, err = c.RawCommand(context.Background(), func(w io.Writer) error {
		_, err := io.WriteString(w, "SELECT Nowhere\r\n")
		return err
	})
	if err != nil || resp.Status != "NO" || resp.Err() == nil {
		t.Fatalf("raw SELECT of a missing folder: %v %+v", err, resp)
	}
	st, err := c.Client.Status("Work", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || *st.NumMessages != 1 {
		t.Fatalf("STATUS after raw commands: %v %+v", err, st)
	}
	if !strings.Contains(trace.String(), "APPEND Work") {
		t.Errorf("raw command missing from the trace:\n%s", trace.String())
	}
	if strings.Contains(trace.String(), "hello") {
		t.Errorf("literal data in the trace")
	}
}

// A command whose writer fails is never completed: the connection is cut
// so the server executes nothing of it. (Dovecot, because go-imap's
// in-memory server stores a literal cut short by a closed connection.)
func TestRawCommandWriteFailureCutsTheConnection(t *testing.T) {
	srv := testbed.Start(t)
	user := srv.AddUser(t, "raw")
	a := &account.Account{Protocol: account.IMAP, User: user, Host: srv.Host, Port: srv.IMAPPort,
		Security: account.Plain, Auth: account.AuthPassword, Secret: testkit.Secret(testbed.Password), Timeout: 10 * time.Second}
	c := dialOK(t, a)
	boom := errors.New("archive unreadable")
	_, err := c.RawCommand(context.Background(), func(w io.Writer) error {
		io.WriteString(w, "APPEND INBOX () {100+}\r\nSubject: half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the writer's error", err)
	}
	if !c.Broken() {
		t.Fatalf("connection still usable after an incomplete raw command")
	}
	if n, _, _ := srv.Status(t, user, "INBOX"); n != 0 {
		t.Fatalf("half a message was stored: INBOX has %d", n)
	}
}
