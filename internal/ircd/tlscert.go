package ircd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// tlsData fills the TLS parts of the server configs: a second client port
// that speaks TLS with a self-signed certificate for 127.0.0.1.
type tlsData struct {
	Port              int
	CertFile, KeyFile string
	roots             *x509.CertPool // the certificate, for clients to trust
}

// certLifetime is how long generated certificates are valid (from an hour
// ago, for clocks that differ a little).
const certLifetime = 7 * 24 * time.Hour

// newTLSData creates a self-signed server certificate for 127.0.0.1 and
// writes it (tls.crt, tls.key) into dir.
func newTLSData(dir string) (*tlsData, error) {
	der, key, err := selfSigned("meshbot test server", true)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	d := &tlsData{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	if err := os.WriteFile(d.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	d.roots = x509.NewCertPool()
	d.roots.AddCert(cert)
	return d, nil
}

// selfSigned returns a new self-signed ECDSA P-256 certificate (DER) and
// its key: for 127.0.0.1 and localhost when server, else a client
// certificate named cn.
func selfSigned(cn string, server bool) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if server {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.IsCA = true
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

// NewClientCert returns a new self-signed client certificate named name,
// to put in a tls.Config's Certificates, and its fingerprint (see CertFP):
// give the fingerprint to an account (Account.CertFP), connect to the
// server's TLSAddr with the certificate, and SASL EXTERNAL logs in.
func NewClientCert(name string) (tls.Certificate, string, error) {
	der, key, err := selfSigned(name, false)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, CertFP(der), nil
}

// CertFP is a certificate's fingerprint as InspIRCd (sslinfo, hash
// sha256), atheme and ergo compute it: the SHA-256 of the DER
// certificate in lower-case hex.
func CertFP(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// TLSAddr is the TLS client address, "127.0.0.1:port", of a server that
// has one (StartWithAccounts starts them with one); "" otherwise. It
// requests, and does not require, a client certificate.
func (s *Server) TLSAddr() string {
	if s.data.TLS == nil {
		return ""
	}
	return net.JoinHostPort(s.Host(), strconv.Itoa(s.data.TLS.Port))
}

// TLSRoots is the pool to verify TLSAddr's certificate with (it is
// self-signed, valid for 127.0.0.1 and localhost); nil when the server has
// no TLS port.
func (s *Server) TLSRoots() *x509.CertPool {
	if s.data.TLS == nil {
		return nil
	}
	return s.data.TLS.roots
}

// checkTLSPort reports, with ErrPortInUse, a TLS port that the server
// process does not hold (another process took it first).
func (s *Server) checkTLSPort(p *process) error {
	if s.data.TLS == nil {
		return nil
	}
	if ours, err := listensOn(p.cmd.Process.Pid, s.data.TLS.Port); err == nil && !ours {
		return fmt.Errorf("%w: TLS port %d of 127.0.0.1 is not held by the %s just started", ErrPortInUse, s.data.TLS.Port, s.spec.Kind)
	}
	return nil
}
