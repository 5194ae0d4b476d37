package heartbeat

import "strings"

// ParseSplitQuit tells a netsplit from a departure by the server's QUIT
// text: in a split, every user behind the lost link quits with the names
// of the two servers whose link broke, "near.example far.example" (the
// one still linked to the reader's server first), or "*.net *.split" on a
// network that hides its servers (InspIRCd's hidesplits). It reports the
// two names and true for such a text, false for anything else (a client's
// own QUIT, "Ping timeout", "Connection closed", ...).
//
// A client could quit with a text that looks like a split; the mesh then
// takes it for unreachable rather than gone, which only delays the
// takeover of its own claims. Servers that prefix users' QUIT texts
// ("Quit: ...") rule that out.
func ParseSplitQuit(text string) (near, far string, ok bool) {
	near, far, ok = strings.Cut(text, " ")
	if !ok || !serverName(near) || !serverName(far) {
		return "", "", false
	}
	return near, far, true
}

// serverName reports whether s can be a server's name as a split QUIT
// shows it: a dotted host name, possibly masked with '*'.
func serverName(s string) bool {
	if len(s) < 3 || len(s) > 255 || !strings.Contains(s, ".") || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_', c == '*':
		default:
			return false
		}
	}
	return !strings.Contains(s, "..")
}
