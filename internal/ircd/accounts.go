package ircd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Account is an account a server starts with (StartWithAccounts): a bot
// logs in with SASL PLAIN (Name, Password) or, over TLS with a client
// certificate whose fingerprint is CertFP, with SASL EXTERNAL.
type Account struct {
	// Name is the account name: a valid nick (letters, digits and
	// -[]\`^{}|_, not starting with a digit or '-'), at most 30 bytes.
	Name string
	// Password is the SASL PLAIN password: 1 to 200 bytes, no spaces or
	// control characters (atheme's database file separates fields with
	// spaces).
	Password string
	// CertFP, when set, is the SHA-256 fingerprint of a client
	// certificate (CertFP, NewClientCert: 64 hex digits) that logs in to
	// the account with SASL EXTERNAL on the server's TLSAddr.
	CertFP string
}

// ErrNoAccounts is wrapped by the error StartWithAccounts returns for a
// server that has no accounts (ngIRCd: no SASL).
var ErrNoAccounts = errors.New("this server has no accounts")

// HasAccounts reports whether StartWithAccounts can give a server of kind
// accounts: InspIRCd (linked to atheme-services) and ergo (built in).
func HasAccounts(kind Kind) bool { return kind == InspIRCd || kind == Ergo }

// StartWithAccounts starts the server spec names with accounts, SASL and
// a TLS port (TLSAddr, trusted through TLSRoots), and returns once every
// account can log in: bots connect to Addr (or TLSAddr) with
// mesh.Config.SASLUser and SASLPassword.
//
//   - InspIRCd: linked to atheme-services (Debian package
//     atheme-services), started from testdata/atheme.conf with the
//     accounts seeded into its database beforehand. Ready once a client's
//     CAP LS 302 offers sasl, which InspIRCd does only while the services
//     are linked. Stop, at cleanup, ends both processes; Kill and Restart
//     act on InspIRCd only (atheme links again by itself, and Restart
//     waits for it).
//   - ergo: accounts built in (testdata/ergo.yaml), each registered over
//     IRC (REGISTER, then NickServ CERT ADD for a CertFP) before the
//     function returns. ergo.yaml throttles registrations to 30 in 10
//     minutes and logins to 3 failures a minute per connection.
//   - ngIRCd: no SASL; the error wraps ErrNoAccounts.
//
// The error wraps ErrNotInstalled when a program is missing, and quotes
// the servers' logs when they do not become ready (each wait is bounded
// by Options.ReadyTimeout and ctx).
func StartWithAccounts(ctx context.Context, spec Spec, opts Options, accounts ...Account) (*Server, error) {
	if !HasAccounts(spec.Kind) {
		return nil, fmt.Errorf("%s: %w: it offers no SASL; use InspIRCd (with %s) or ergo (%s=inspircd or %s=ergo:/path/to/ergo)",
			spec.Kind, ErrNoAccounts, AthemeName, EnvVar, EnvVar)
	}
	if err := validateAccounts(accounts); err != nil {
		return nil, err
	}
	s, err := newServer(spec, opts, templateData{})
	if err != nil {
		return nil, err
	}
	if s.data.TLS, err = newTLSData(s.dir); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if spec.Kind == InspIRCd {
		if s.data.ServerName == "" {
			s.data.ServerName = string(InspIRCd) + ".meshbot.test"
		}
		var pw [12]byte
		_, _ = rand.Read(pw[:])
		s.data.Services = &servicesData{
			Name: servicesName, SID: servicesSID, Uplink: s.data.ServerName, Password: hex.EncodeToString(pw[:]),
		}
		if s.services, err = newServices(s.dir, accounts, s.opts); err != nil {
			_ = s.Stop()
			return nil, err
		}
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if spec.Kind == Ergo {
		if err := registerErgo(ctx, s, accounts); err != nil {
			err = fmt.Errorf("%s: registering the accounts: %w\n%s", s, err, s.logTail())
			_ = s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func validateAccounts(accounts []Account) error {
	seen := map[string]bool{}
	for _, a := range accounts {
		if err := validAccountName(a.Name); err != nil {
			return err
		}
		if seen[strings.ToLower(a.Name)] {
			return fmt.Errorf("account %q given twice", a.Name)
		}
		seen[strings.ToLower(a.Name)] = true
		if len(a.Password) == 0 || len(a.Password) > 200 {
			return fmt.Errorf("account %q: a password of 1 to 200 bytes is needed", a.Name)
		}
		for _, r := range a.Password {
			if r <= ' ' || r == 0x7f {
				return fmt.Errorf("account %q: the password has a space or a control character", a.Name)
			}
		}
		if a.CertFP != "" {
			if b, err := hex.DecodeString(a.CertFP); err != nil || len(b) != 32 {
				return fmt.Errorf("account %q: CertFP %q is not a SHA-256 fingerprint (64 hex digits)", a.Name, a.CertFP)
			}
		}
	}
	return nil
}

func validAccountName(name string) error {
	if name == "" || len(name) > 30 {
		return fmt.Errorf("account name %q: want 1 to 30 bytes", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune(`_[]\`+"`"+`^{}|`, r) ||
			i > 0 && (r >= '0' && r <= '9' || r == '-')
		if !ok {
			return fmt.Errorf("account name %q: not a valid nick", name)
		}
	}
	return nil
}

// extraPorts is how many ports the server needs besides its client port.
func (s *Server) extraPorts() int {
	n := 0
	if s.data.TLS != nil {
		n++
	}
	if s.data.Services != nil {
		n++
	}
	return n
}

// setExtraPorts assigns the ports extraPorts asked for.
func (s *Server) setExtraPorts(ports []int) {
	if s.data.TLS != nil {
		s.data.TLS.Port, ports = ports[0], ports[1:]
	}
	if s.data.Services != nil {
		s.data.Services.LinkPort = ports[0]
	}
}

// startServices starts what runs beside the server process p (atheme,
// for InspIRCd with accounts) once p is up.
func (s *Server) startServices(ctx context.Context, p *process) error {
	if s.services == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	return s.services.start(ctx, p, s.data.Port, *s.data.Services)
}

// servicesReady returns once the server, registered already, offers
// what the server was started with: its TLS port and, with accounts,
// sasl in CAP LS 302 (InspIRCd offers it only while atheme is linked).
func (s *Server) servicesReady(ctx context.Context, p *process) error {
	if err := s.checkTLSPort(p); err != nil {
		return err
	}
	if s.data.TLS == nil && s.services == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	var svDone <-chan struct{}
	if s.services != nil && s.services.proc != nil {
		svDone = s.services.proc.done
	}
	go func() {
		select {
		case <-svDone:
			cancel()
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var lastErr error
	for {
		caps, err := capLS(ctx, s.Addr())
		if err == nil {
			if _, ok := caps["sasl"]; ok {
				return nil
			}
			lastErr = fmt.Errorf("CAP LS 302 offers no sasl (%s)", capNames(caps))
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			switch {
			case s.services != nil && s.services.proc != nil && s.services.proc.exited():
				return fmt.Errorf("%s exited (%v) before the server offered SASL", AthemeName, s.services.proc.err)
			case p.exited():
				return fmt.Errorf("%w (%v)", errExited, p.err)
			}
			return fmt.Errorf("no SASL after %v: %w", s.opts.ReadyTimeout, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// capLS asks addr for CAP LS 302 without registering (an answer comes at
// once, also from InspIRCd) and returns the capabilities offered.
func capLS(ctx context.Context, addr string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rc, err := dialRaw(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer rc.quit(ctx)
	if err := rc.send(ctx, "CAP LS 302"); err != nil {
		return nil, err
	}
	caps := map[string]string{}
	for {
		msg, err := rc.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("CAP LS 302: %w", err)
		}
		if msg.Command != "CAP" || len(msg.Params) < 3 || msg.Params[1] != "LS" {
			continue
		}
		more := len(msg.Params) >= 4 && msg.Params[2] == "*"
		for _, c := range strings.Fields(msg.Params[len(msg.Params)-1]) {
			name, value, _ := strings.Cut(c, "=")
			caps[name] = value
		}
		if !more {
			return caps, nil
		}
	}
}

func capNames(caps map[string]string) string {
	var names []string
	for c := range caps {
		names = append(names, c)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " ")
}

// registerErgo registers the accounts on ergo over IRC, a few at a time:
// connect with the account's name as nick, REGISTER (which logs the
// connection in), then NickServ CERT ADD for a CertFP.
func registerErgo(ctx context.Context, s *Server, accounts []Account) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	errs := make([]error, len(accounts))
	for i, a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := registerErgoAccount(ctx, s.Addr(), a); err != nil {
				errs[i] = fmt.Errorf("account %q: %w", a.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func registerErgoAccount(ctx context.Context, addr string, a Account) error {
	rc, err := dialRaw(ctx, addr)
	if err != nil {
		return err
	}
	defer rc.quit(ctx)
	for _, line := range []string{"NICK " + a.Name, "USER " + userName + " 0 * :meshbot account setup"} {
		if err := rc.send(ctx, line); err != nil {
			return err
		}
	}
	// Wait for the welcome under the account's name.
	for welcomed := false; !welcomed; {
		msg, err := rc.read(ctx)
		if err != nil {
			return err
		}
		switch msg.Command {
		case "001":
			welcomed = true
		case "432", "433", "436":
			return fmt.Errorf("the nick is refused: %s", strings.Join(msg.Params, " "))
		}
	}
	if err := rc.send(ctx, "REGISTER * * :"+a.Password); err != nil {
		return err
	}
	for done := false; !done; {
		msg, err := rc.read(ctx)
		if err != nil {
			return err
		}
		switch {
		case msg.Command == "REGISTER" && len(msg.Params) > 0 && msg.Params[0] == "SUCCESS":
			done = true
		case msg.Command == "FAIL" && len(msg.Params) > 0 && msg.Params[0] == "REGISTER",
			msg.Command == "REGISTER" && len(msg.Params) > 0 && msg.Params[0] == "VERIFICATION_REQUIRED":
			return fmt.Errorf("REGISTER: %s", strings.Join(msg.Params, " "))
		case msg.Command == "421":
			return fmt.Errorf("the server has no REGISTER command: %s", strings.Join(msg.Params, " "))
		}
	}
	if a.CertFP == "" {
		return nil
	}
	if err := rc.send(ctx, "PRIVMSG NickServ :CERT ADD "+a.CertFP); err != nil {
		return err
	}
	for {
		msg, err := rc.read(ctx)
		if err != nil {
			return err
		}
		if msg.Command != "NOTICE" || !strings.HasPrefix(strings.ToLower(msg.Source), "nickserv!") {
			continue
		}
		text := msg.Params[len(msg.Params)-1]
		if strings.Contains(text, "successfully added") || strings.Contains(text, "already authorized") {
			return nil
		}
		return fmt.Errorf("NickServ CERT ADD: %s", text)
	}
}
