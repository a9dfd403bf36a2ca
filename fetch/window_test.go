package fetch

import (
	"testing"
	"time"
)

// waitRoomReturns reports whether w.waitRoom returns within a short time.
func waitRoomReturns(w *window) bool {
	done := make(chan struct{})
	go func() {
		w.waitRoom()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(200 * time.Millisecond):
		return false
	}
}

// The batch window slides with every message read: a batch goes out as
// soon as fewer than pipelineMessages are outstanding, not when a
// command completes (Dovecot completes interleaved commands together).
func TestWindowSlidesWithMessagesRead(t *testing.T) {
	w := newWindow()
	if !waitRoomReturns(w) {
		t.Fatal("an empty window has no room")
	}
	w.sent(batchMessages)
	if !waitRoomReturns(w) {
		t.Fatal("one batch out: no room for the second")
	}
	w.sent(batchMessages)
	if waitRoomReturns(w) {
		t.Fatalf("%d messages outstanding: a third batch was allowed", 2*batchMessages)
	}
	w.done(1) // one message read, no command complete
	if !waitRoomReturns(w) {
		t.Fatal("a message read did not make room")
	}
}

func TestWindowBoundsCommands(t *testing.T) {
	w := newWindow()
	for range pipelineCommands {
		w.sent(1) // batches of one big message each
	}
	if waitRoomReturns(w) {
		t.Fatalf("%d commands in flight: another was allowed", pipelineCommands)
	}
	w.done(1)
	if waitRoomReturns(w) {
		t.Fatal("a message read made room although no command ended")
	}
	w.ended(0)
	if !waitRoomReturns(w) {
		t.Fatal("a command that ended made no room")
	}
}

// A command that ends without delivering its messages (a server leaving
// them out) must not hold the window shut.
func TestWindowCommandEndReleasesUndelivered(t *testing.T) {
	w := newWindow()
	w.sent(pipelineMessages)
	if waitRoomReturns(w) {
		t.Fatal("a full window had room")
	}
	w.done(10)
	w.ended(pipelineMessages - 10)
	if !waitRoomReturns(w) {
		t.Fatal("no room after the only command ended")
	}
	if w.msgs != 0 || w.cmds != 0 {
		t.Errorf("window left at %d messages, %d commands; want 0, 0", w.msgs, w.cmds)
	}
}
