package ircd

import (
	"strings"
	"testing"
)

// TestRenderNetworkConfig: a network server's config has its server port,
// one link block per link (autoconnect only where asked) and the operator
// that relinks; it cannot be combined with a pair's link or services.
func TestRenderNetworkConfig(t *testing.T) {
	const dir = "/tmp/meshbot-test-dir"
	d := templateData{Port: 1, Dir: dir, ServerName: "s2.x", ServerID: "002", Net: &netData{Port: 7002,
		Links: []netLink{
			{PeerName: "s1.x", PeerPort: 7001, Password: "pw1"},
			{PeerName: "s3.x", PeerPort: 9003, Password: "pw3", AutoConnect: true},
		},
		OperName: "op", OperPassword: "secret"}}
	out, err := renderConfig(InspIRCd, d)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{`<module name="spanningtree">`, `port="7002" type="servers"`,
		`<link name="s1.x"`, `port="7001"`, `sendpass="pw1"`, `<link name="s3.x"`, `port="9003"`,
		`<autoconnect period="1" server="s3.x">`, `<oper name="op" password="secret" host="*@127.0.0.1" type="NetAdmin">`,
		`commands="CONNECT SQUIT RCONNECT RSQUIT"`} {
		if !strings.Contains(s, want) {
			t.Errorf("network config lacks %q", want)
		}
	}
	if strings.Contains(s, `server="s1.x"`) {
		t.Error("autoconnect to a peer that connects to us")
	}
	for _, bad := range []string{"{{", "}}", "<no value>"} {
		if strings.Contains(s, bad) {
			t.Errorf("config contains %q", bad)
		}
	}
	d.Link = &linkData{Port: 2, PeerName: "p", PeerPort: 3, Password: "pw"}
	if _, err := renderConfig(InspIRCd, d); err == nil {
		t.Error("a network server with a pair's link accepted")
	}
}
