package pop3conn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/mailark/mailark/internal/pop3server"
)

// FuzzReplyStream feeds arbitrary server output to the reply reader:
// it must neither panic nor read past its limits, whatever the server sends.
func FuzzReplyStream(f *testing.F) {
	f.Add([]byte("+OK 5 octets\r\nabc\r\n.\r\n"))
	f.Add([]byte("+OK\r\n..dot\r\n.\r\n-ERR no such message\r\n"))
	f.Add([]byte("+OK\r\npartial line without end"))
	f.Add([]byte("-ERR [IN-USE] locked\r\n"))
	f.Add([]byte("HELLO\r\n"))
	f.Add([]byte("+OK\n.\n+OK\r\nx\n.\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Conn{MaxMessageSize: 1 << 16}
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		for range 8 {
			refused, body, err := c.readReply(br, true, "RETR", 1)
			if err != nil {
				return
			}
			if refused != nil {
				if refused.Num != 1 {
					t.Fatalf("refusal for message %d", refused.Num)
				}
				continue
			}
			n, err := io.Copy(io.Discard, body)
			if n > c.MaxMessageSize+4096 {
				t.Fatalf("read %d bytes past a %d limit", n, c.MaxMessageSize)
			}
			if err != nil {
				if !errors.Is(err, ErrTooBig) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
		}
	})
}

// FuzzDotStuffingRoundTrip: whatever a message holds, what the server
// writes (pop3server.WriteStuffed) the client reads back as the server's
// wire form of the message.
func FuzzDotStuffingRoundTrip(f *testing.F) {
	for _, m := range trickyMessages() {
		f.Add(m)
	}
	f.Add([]byte(".\r\n.\r\n"))
	f.Add([]byte("\r\r\n\n."))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var wire bytes.Buffer
		wire.WriteString("+OK\r\n")
		if err := pop3server.WriteStuffed(&wire, bytes.NewReader(msg), -1); err != nil {
			t.Fatal(err)
		}
		wire.WriteString(".\r\n")
		c := &Conn{}
		br := bufio.NewReaderSize(&wire, 16) // small: long lines arrive in pieces
		refused, body, err := c.readReply(br, true, "RETR", 1)
		if err != nil || refused != nil {
			t.Fatalf("reply: %v %v", refused, err)
		}
		got, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		if want := pop3server.Wire(msg); !bytes.Equal(got, want) {
			t.Fatalf("read back %q, want %q", got, want)
		}
		if br.Buffered() != 0 {
			t.Fatal("bytes left after the terminator")
		}
	})
}
