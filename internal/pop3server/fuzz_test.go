package pop3server

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzSession sends arbitrary client input to a session: the server must
// not panic, hang, or delete anything without a QUIT in the TRANSACTION
// state.
func FuzzSession(f *testing.F) {
	f.Add([]byte("USER u\r\nPASS p\r\nLIST\r\nUIDL 1\r\nTOP 1 0\r\nRETR 1\r\nDELE 1\r\nRSET\r\nQUIT\r\n"))
	f.Add([]byte("USER u\r\nPASS p\r\nDELE 1\r\nDELE 1\r\nSTAT\r\n"))
	f.Add([]byte("APOP u 0123\r\nCAPA\r\nSTLS\r\nNOOP\r\n"))
	f.Add([]byte("USER u\nPASS p\nTOP 1 -1\nLIST 99999999999999999999\nQUIT\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		store := NewMemStore()
		store.Add("u", []byte("Subject: x\r\n\r\n.line\r\nbody\r\n"))
		s := &Server{Store: store, Users: map[string]string{"u": "p"}, APOP: true, done: make(chan struct{})}
		client, server := net.Pipe()
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			s.serveConn(server, 1)
			server.Close()
		}()
		go io.Copy(io.Discard, client)
		client.SetDeadline(time.Now().Add(2 * time.Second))
		client.Write(input)
		client.Close()
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
			t.Fatal("session did not end when the client left")
		}
		quit := strings.Contains(strings.ToUpper(string(input)), "QUIT")
		if !quit && len(store.Messages("u")) != 1 {
			t.Fatal("a message was deleted without QUIT")
		}
	})
}
