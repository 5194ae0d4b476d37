package ircd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvVar names the environment variable that selects the IRC server for
// tests and demos. See ParseSpec for its values.
const EnvVar = "MESH_IRCD"

// Kind is an IRC server implementation.
type Kind string

// The supported servers.
const (
	InspIRCd Kind = "inspircd" // InspIRCd 3.x (the default; Debian package inspircd)
	NgIRCd   Kind = "ngircd"   // ngIRCd 26 (Debian package ngircd)
	Ergo     Kind = "ergo"     // ergo 2.x (no Debian package; name the binary)
)

// Kinds lists the supported servers, default first.
var Kinds = []Kind{InspIRCd, NgIRCd, Ergo}

// ErrNotInstalled is wrapped by the error Spec.Binary returns when the
// server's executable cannot be found.
var ErrNotInstalled = errors.New("IRC server not installed")

// Spec says which IRC server to run: a Kind and optionally the path of its
// executable.
type Spec struct {
	Kind Kind
	// Path is the executable. Empty means: look the kind's name up in PATH,
	// then in /usr/sbin and /usr/local/sbin (where Debian puts inspircd and
	// ngircd, often outside a non-root PATH).
	Path string
}

// DefaultSpec is the server used when MESH_IRCD is unset or empty.
var DefaultSpec = Spec{Kind: InspIRCd}

// ParseSpec parses a MESH_IRCD value:
//
//	""                   InspIRCd, executable found as described at Spec.Path
//	inspircd             the same
//	inspircd:/path/bin   InspIRCd at that path
//	ngircd               ngIRCd
//	ngircd:/path/bin     ngIRCd at that path
//	ergo                 ergo, from PATH
//	ergo:/path/bin       ergo at that path
//
// Anything else is an error that lists the accepted forms.
func ParseSpec(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultSpec, nil
	}
	name, path, hasPath := strings.Cut(s, ":")
	kind := Kind(name)
	known := false
	for _, k := range Kinds {
		if kind == k {
			known = true
		}
	}
	switch {
	case !known:
		return Spec{}, fmt.Errorf("%s=%q: unknown IRC server %q; %s", EnvVar, s, name, specUsage)
	case hasPath && strings.TrimSpace(path) == "":
		return Spec{}, fmt.Errorf("%s=%q: empty path after %q; %s", EnvVar, s, name+":", specUsage)
	}
	return Spec{Kind: kind, Path: strings.TrimSpace(path)}, nil
}

const specUsage = `want "inspircd" (the default), "inspircd:/path/to/inspircd", ` +
	`"ngircd", "ngircd:/path/to/ngircd", "ergo" or "ergo:/path/to/ergo"`

// SpecFromEnv parses the MESH_IRCD environment variable (see ParseSpec).
func SpecFromEnv() (Spec, error) {
	return ParseSpec(os.Getenv(EnvVar))
}

// String returns the spec in MESH_IRCD syntax.
func (s Spec) String() string {
	if s.Path == "" {
		return string(s.Kind)
	}
	return string(s.Kind) + ":" + s.Path
}

// Binary returns the absolute path of the server's executable. The error
// wraps ErrNotInstalled when it cannot be found.
func (s Spec) Binary() (string, error) {
	if s.Path != "" {
		p, err := exec.LookPath(s.Path)
		if err != nil {
			return "", fmt.Errorf("%s executable %q: %w (%v)", s.Kind, s.Path, ErrNotInstalled, err)
		}
		return filepath.Abs(p)
	}
	name := string(s.Kind)
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	hint := ""
	switch s.Kind {
	case InspIRCd, NgIRCd:
		hint = fmt.Sprintf(" (install the Debian package %s, or set %s=%s:/path/to/%s)", name, EnvVar, name, name)
	case Ergo:
		hint = fmt.Sprintf(" (build ergo from github.com/ergochat/ergo and set %s=ergo:/path/to/ergo)", EnvVar)
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /usr/local/sbin: %w%s", name, ErrNotInstalled, hint)
}
