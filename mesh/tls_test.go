package mesh_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// tlsFront terminates TLS on a loopback port in front of a real server (as
// stunnel or a load balancer would) and returns its address and the CA that
// signed its certificate.
func tlsFront(t *testing.T, backend string) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "meshbot test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(b, c); b.Close() }()
			go func() { defer wg.Done(); io.Copy(c, b); c.Close() }()
		}
	}()
	return l.Addr().String(), pool
}

// TestTLS: a node connects over TLS (verifying the server's certificate)
// and exchanges events with a node on the plain port; a node that does not
// trust the certificate fails to connect with the verification error.
func TestTLS(t *testing.T) {
	srv := ircdtest.Start(t)
	addr, pool := tlsFront(t, srv.Addr())
	secure := testConfig(srv, "secure")
	secure.Server = addr
	secure.TLS = &tls.Config{RootCAs: pool}
	nodes := connectAll(t, secure, testConfig(srv, "plain"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newCollector()
	if _, err := nodes[1].Subscribe(ctx, "secrets", c.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Publish(ctx, "secrets", []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, 1, 10*time.Second)
	if string(c.got[0].Payload) != "over tls" {
		t.Fatalf("got %q", c.got[0].Payload)
	}

	untrusting := testConfig(srv, "wary")
	untrusting.Server = addr
	untrusting.TLS = &tls.Config{}
	_, err := mesh.Connect(ctx, untrusting)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a certificate error, got %v", err)
	}
}
