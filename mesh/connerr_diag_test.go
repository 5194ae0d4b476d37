package mesh

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestConnDiag replays what servers send before a connection ends and
// checks what the node says happened: the lines of a wrong SASL password
// as ergo and InspIRCd with services send them, a server password
// refused, a ban, an HTTP server, binary noise, silence, and a plain
// drop after registration (the client's own error stays).
func TestConnDiag(t *testing.T) {
	saslLS := ":irc.test CAP * LS :message-tags sasl=PLAIN,EXTERNAL server-time"
	for _, tc := range []struct {
		name     string
		lines    []string
		wantSASL bool
		stop     int   // index of the line saw refuses; -1: none
		is       error // nil: the client's error comes back
		text     string
	}{
		{"wrong SASL password (ergo)", []string{saslLS, ":irc.test CAP probe-x ACK :sasl", "AUTHENTICATE +",
			":irc.test 904 * :SASL authentication failed: Invalid account credentials"}, true, -1,
			ErrAuthFailed, "mesh: authentication failed: SASL authentication failed: Invalid account credentials"},
		{"SASL not offered", []string{":irc.test CAP * LS :message-tags", ":irc.test 001 probe-x :Welcome", ":irc.test 005 probe-x NICKLEN=30 :are supported"},
			true, 1, ErrAuthFailed, "mesh: authentication failed: the server does not offer SASL"},
		{"SASL not asked for", []string{":irc.test CAP * LS :message-tags", ":irc.test 001 probe-x :Welcome"},
			false, -1, nil, "EOF"},
		{"server password", []string{":irc.test NOTICE * :*** Looking up your hostname", ":irc.test 464 * :Password incorrect"},
			false, -1, ErrAuthFailed, "authentication failed: Password incorrect"},
		{"banned", []string{":irc.test NOTICE * :hello", "ERROR :Closing link: (x@127.0.0.1) [K-Lined: spam]"},
			false, -1, ErrServerClosed, "the server closed the connection: Closing link: (x@127.0.0.1) [K-Lined: spam]"},
		{"ERROR after registration", []string{":irc.test 001 p :Welcome", "@tag=1 :a!b@c PRIVMSG #x :ERROR in the text", "ERROR :Server shutting down"},
			false, -1, ErrServerClosed, "Server shutting down"},
		{"HTTP", []string{"HTTP/1.1 400 Bad Request", "Content-Type: text/plain; charset=utf-8", "Connection: close", "", "400 Bad Request"},
			false, -1, ErrNotIRC, `mesh: not an IRC server: it answered "HTTP/1.1 400 Bad Request"`},
		{"noise", []string{"\x15\x03\x01\x00\x02\x02\x16"}, false, -1, ErrNotIRC, `it answered "\x15\x03\x01\x00\x02\x02\x16"`},
		{"silence", nil, false, -1, ErrNoAnswer, "nothing received in 6s after connecting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d connDiag
			d.start = time.Now()
			stopped := -1
			for i, l := range tc.lines {
				if !d.saw([]byte(l), tc.wantSASL) && stopped < 0 {
					stopped = i
				}
			}
			if stopped != tc.stop {
				t.Errorf("saw refused line %d, want %d", stopped, tc.stop)
			}
			err := d.explain(io.EOF, 6*time.Second)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("explain: %v, want %v", err, tc.is)
			}
			if tc.is == nil && err != io.EOF {
				t.Errorf("explain: %v, want the client's error", err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("explain: %q, want it to contain %q", err, tc.text)
			}
		})
	}
	var nilDiag *connDiag
	if err := nilDiag.explain(io.ErrUnexpectedEOF, time.Second); err != io.ErrUnexpectedEOF {
		t.Errorf("no connection: %v", err)
	}
}
