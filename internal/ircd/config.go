package ircd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/meshbot/meshbot"
)

// Embedded config files (see meshbot.IRCdConfigs).
const (
	inspircdConfig         = "testdata/inspircd.conf"
	inspircdAccountsConfig = "testdata/atheme-inspircd.conf" // appended for Services and TLS
	athemeConfig           = "testdata/atheme.conf"
	ngircdConfig           = "testdata/ngircd.conf"
	ergoConfig             = "testdata/ergo.yaml"
)

// Lines of testdata/ergo.yaml that the harness rewrites. ergo.yaml is a
// plain config users run as-is, so it has no template placeholders.
const (
	ergoListenLine    = `"127.0.0.1:6667":`
	ergoDatastoreLine = `path: meshbot-ergo.db`
	ergoLockLine      = `lock-file: "meshbot-ergo.lock"`
	ergoMaxChansLine  = `max-channels-per-client: 1000`
)

// defaultMaxChans is the channels one client may be in, in the InspIRCd
// and ergo configs.
const defaultMaxChans = 1000

// templateData fills the InspIRCd and ngIRCd templates.
type templateData struct {
	ServerName string
	ServerID   string // InspIRCd SID: a digit and two uppercase alphanumerics
	Port       int
	Dir        string
	Link       *linkData     // InspIRCd only: spanningtree section when non-nil
	Net        *netData      // InspIRCd only: a server of a network (network.go)
	Services   *servicesData // InspIRCd only: the link to atheme (accounts, SASL)
	TLS        *tlsData      // InspIRCd and ergo: a TLS client port
	// MaxChans bounds the channels of one client (0: the default of each
	// config; renderConfig sets it for the templates).
	MaxChans int
}

// linkData fills the spanningtree section of the InspIRCd template.
type linkData struct {
	Port        int // this server's server-to-server port
	PeerName    string
	PeerPort    int
	Password    string
	AutoConnect bool
}

func renderConfig(kind Kind, d templateData) ([]byte, error) {
	if !filepath.IsAbs(d.Dir) {
		return nil, fmt.Errorf("config dir %q is not absolute", d.Dir)
	}
	if d.ServerName == "" {
		d.ServerName = string(kind) + ".meshbot.test"
	}
	if d.ServerID == "" {
		d.ServerID = "0MB"
	}
	if d.MaxChans <= 0 {
		d.MaxChans = defaultMaxChans // ngIRCd: 0, no limit
		if kind == NgIRCd {
			d.MaxChans = 0
		}
	}
	switch kind {
	case InspIRCd:
		if (d.Link != nil && d.Services != nil) || (d.Net != nil && (d.Link != nil || d.Services != nil)) {
			return nil, fmt.Errorf("the harness links InspIRCd to one peer, to services or into a network, only one of them")
		}
		conf, err := execTemplate(inspircdConfig, d)
		if err != nil || (d.Services == nil && d.TLS == nil) {
			return conf, err
		}
		more, err := execTemplate(inspircdAccountsConfig, d)
		return append(conf, more...), err
	case NgIRCd:
		if d.TLS != nil {
			return nil, fmt.Errorf("the harness gives ngIRCd no TLS port")
		}
		return execTemplate(ngircdConfig, d)
	case Ergo:
		raw, err := meshbot.IRCdConfigs.ReadFile(ergoConfig)
		if err != nil {
			return nil, err
		}
		s := string(raw)
		for _, r := range []struct{ old, new string }{
			{ergoListenLine, strconv.Quote("127.0.0.1:"+strconv.Itoa(d.Port)) + ":"},
			{ergoDatastoreLine, "path: " + strconv.Quote(filepath.Join(d.Dir, "meshbot-ergo.db"))},
			{ergoLockLine, "lock-file: " + strconv.Quote(filepath.Join(d.Dir, "meshbot-ergo.lock"))},
			{ergoMaxChansLine, "max-channels-per-client: " + strconv.Itoa(d.MaxChans)},
		} {
			if n := strings.Count(s, r.old); n != 1 {
				return nil, fmt.Errorf("%s: want exactly one line %q to rewrite, found %d", ergoConfig, r.old, n)
			}
			s = strings.Replace(s, r.old, r.new, 1)
		}
		if d.TLS != nil {
			s = ergoTLSListener(s, d)
		}
		return []byte(s), nil
	}
	return nil, fmt.Errorf("unknown IRC server kind %q", kind)
}

func execTemplate(name string, d any) ([]byte, error) {
	raw, err := meshbot.IRCdConfigs.ReadFile(name)
	if err != nil {
		return nil, err
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// writeConfig writes the config and the files it refers to into dir and
// returns the config's path.
func writeConfig(kind Kind, d templateData) (string, error) {
	data, err := renderConfig(kind, d)
	if err != nil {
		return "", err
	}
	var name string
	switch kind {
	case InspIRCd:
		name = "inspircd.conf"
		if err := os.WriteFile(filepath.Join(d.Dir, "ircd.motd"), []byte("meshbot test server\n"), 0o644); err != nil {
			return "", err
		}
	case NgIRCd:
		name = "ngircd.conf"
		if err := os.MkdirAll(filepath.Join(d.Dir, "conf.d"), 0o755); err != nil {
			return "", err
		}
	case Ergo:
		name = "ergo.yaml"
	}
	path := filepath.Join(d.Dir, name)
	return path, os.WriteFile(path, data, 0o600)
}

// ergoTLSListener adds a TLS listener after the plain one (whose line
// the caller has rewritten) in ergo.yaml.
func ergoTLSListener(conf string, d templateData) string {
	plain := strconv.Quote("127.0.0.1:"+strconv.Itoa(d.Port)) + ":"
	i := strings.Index(conf, plain)
	indent := conf[strings.LastIndexByte(conf[:i], '\n')+1 : i]
	end := i + len(plain)
	block := "\n" + indent + strconv.Quote("127.0.0.1:"+strconv.Itoa(d.TLS.Port)) + ":" +
		"\n" + indent + "    tls:" +
		"\n" + indent + "        cert: " + strconv.Quote(d.TLS.CertFile) +
		"\n" + indent + "        key: " + strconv.Quote(d.TLS.KeyFile)
	return conf[:end] + block + conf[end:]
}
