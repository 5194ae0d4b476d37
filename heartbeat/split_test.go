package heartbeat

import "testing"

func TestParseSplitQuit(t *testing.T) {
	for _, c := range []struct {
		text      string
		near, far string
	}{
		{"s1.meshbot.test s2.meshbot.test", "s1.meshbot.test", "s2.meshbot.test"},
		{"hub.example.org leaf-2.eu.example.org", "hub.example.org", "leaf-2.eu.example.org"},
		{"*.net *.split", "*.net", "*.split"},
	} {
		near, far, ok := ParseSplitQuit(c.text)
		if !ok || near != c.near || far != c.far {
			t.Errorf("ParseSplitQuit(%q) = %q, %q, %v; want %q, %q", c.text, near, far, ok, c.near, c.far)
		}
	}
	for _, text := range []string{
		"", "Ping timeout: 120 seconds", "Connection closed", "Quit: bye", "meshbot: closing",
		"s1.meshbot.test", "s1.meshbot.test  s2.meshbot.test", "s1.meshbot.test s2.meshbot.test extra",
		"Quit: s1.x s2.x", "a b", ".x y.z", "x. y.z", "x..y a.b", "Read error: Connection reset by peer",
		`"s1.x s2.x"`, "s1.x s2.x\x01",
	} {
		if near, far, ok := ParseSplitQuit(text); ok {
			t.Errorf("ParseSplitQuit(%q) = %q, %q: taken for a split", text, near, far)
		}
	}
}
