package ircd

import (
	"strings"
	"testing"
)

func TestRenderConfig(t *testing.T) {
	const dir = "/tmp/meshbot-test-dir"
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			out, err := renderConfig(kind, templateData{Port: 45678, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			s := string(out)
			for _, want := range []string{"45678", dir} {
				if !strings.Contains(s, want) {
					t.Errorf("config lacks %q", want)
				}
			}
			for _, bad := range []string{"{{", "}}", "<no value>", `"127.0.0.1:6667":`} {
				if strings.Contains(s, bad) {
					t.Errorf("config contains %q", bad)
				}
			}
		})
	}

	// Linked InspIRCd: the spanningtree section appears only with Link.
	single, _ := renderConfig(InspIRCd, templateData{Port: 1, Dir: dir})
	if strings.Contains(string(single), "spanningtree") && strings.Contains(string(single), "<link") {
		t.Error("single InspIRCd config has a link section")
	}
	linked, err := renderConfig(InspIRCd, templateData{Port: 1, Dir: dir, ServerName: "one.x", ServerID: "1MB",
		Link: &linkData{Port: 2, PeerName: "two.x", PeerPort: 3, Password: "pw", AutoConnect: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<module name="spanningtree">`, `type="servers"`, `<link name="two.x"`,
		`port="3"`, `<autoconnect period="1" server="two.x">`, `name="one.x"`, `id="1MB"`} {
		if !strings.Contains(string(linked), want) {
			t.Errorf("linked config lacks %q", want)
		}
	}

	if _, err := renderConfig(InspIRCd, templateData{Port: 1, Dir: "relative"}); err == nil {
		t.Error("relative dir accepted")
	}
}
