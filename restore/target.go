package restore

import (
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailark/mailark/internal/imapconn"
)

// targetState is what a target folder holds and accepts.
type targetState struct {
	uidValidity uint32
	uidNext     uint32
	// keywords says the folder stores any keyword (PERMANENTFLAGS has
	// \*); allowed lists the flags it names explicitly (lower case).
	keywords bool
	allowed  map[string]bool
	messages []*serverMessage
	hasNoID  bool // some message has no Message-ID (header digests needed)
}

// headerFieldsFetched are fetched for every target message: the
// Message-ID, and the fields of the header digest for messages without.
var headerFieldsFetched = []string{"Message-ID", "Date", "From", "To", "Cc", "Subject"}

// maxHeaderFields bounds what is kept of one message's fetched header
// fields; a hostile server cannot make the listing grow beyond it.
const maxHeaderFields = 64 << 10

// learnTarget selects a target folder (read-only for a dry run or verify)
// and lists its messages: UID, size, flags, Message-ID and header digest.
// It fetches headers only, streamed, so a large folder costs a few hundred
// bytes per message.
func learnTarget(ctx context.Context, c *imapconn.Conn, mailbox string, readOnly bool) (*targetState, error) {
	sel, err := c.Client.Select(mailbox, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		return nil, c.Err(err, "selecting "+mailbox)
	}
	st := &targetState{uidValidity: sel.UIDValidity, uidNext: uint32(sel.UIDNext), allowed: map[string]bool{}}
	for _, f := range sel.PermanentFlags {
		if f == imap.FlagWildcard {
			st.keywords = true
		}
		st.allowed[strings.ToLower(string(f))] = true
	}
	if sel.NumMessages == 0 {
		return st, nil
	}
	opts := &imap.FetchOptions{
		UID: true, RFC822Size: true, Flags: true,
		BodySection: []*imap.FetchItemBodySection{{
			Specifier: imap.PartSpecifierHeader, HeaderFields: headerFieldsFetched, Peek: true,
		}},
	}
	cmd := c.Client.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, opts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		sm, err := readServerMessage(msg)
		if err != nil {
			cmd.Close()
			return nil, c.Err(err, "listing "+mailbox)
		}
		st.messages = append(st.messages, sm)
		st.hasNoID = st.hasNoID || sm.MessageID == ""
	}
	if err := cmd.Close(); err != nil {
		return nil, c.Err(err, "listing "+mailbox)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return st, nil
}

func readServerMessage(msg *imapclient.FetchMessageData) (*serverMessage, error) {
	sm := &serverMessage{}
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			sm.UID = uint32(it.UID)
		case imapclient.FetchItemDataRFC822Size:
			sm.Size = it.Size
		case imapclient.FetchItemDataFlags:
			for _, f := range it.Flags {
				if !strings.EqualFold(string(f), `\Recent`) {
					sm.Flags = append(sm.Flags, string(f))
				}
			}
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue
			}
			var buf bytes.Buffer
			if _, err := io.Copy(&buf, io.LimitReader(it.Literal, maxHeaderFields)); err != nil {
				return nil, err
			}
			if _, err := io.Copy(io.Discard, it.Literal); err != nil {
				return nil, err
			}
			fields := headerFields(bytes.NewReader(buf.Bytes()), "message-id")
			sm.MessageID = fields["message-id"]
			if normalizeMessageID(sm.MessageID) == "" {
				sm.Digest = headerBytesDigest(buf.Bytes())
			}
		}
	}
	sm.identity = identityOf(sm.MessageID, sm.Digest)
	return sm, nil
}
