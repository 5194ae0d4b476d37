package main

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
)

func newKeygenCmd(st *state) *cobra.Command {
	var service, keyID, out string
	cmd := &cobra.Command{
		Use:   "keygen {ed25519|hmac|payload|x25519} --out FILE",
		Short: "Create a signing or encryption key file",
		Long: `Create a key file for signing or encrypting envelopes (see "Key files" in
docs/CLI.md, and docs/KEYS.md for rotating keys and adding a service).

ed25519: a signing key pair for one service. The private key goes to FILE
(mode 0600); the public keyring line is printed on stdout: append it to the
keyring file of every node that must trust the service (--keyring).

hmac: one mesh signing key that every service shares. FILE serves both to
sign (--hmac-key-file) and to trust (--keyring); anyone holding it can sign
as any service.

payload: one mesh key that encrypts payloads on channels (and DMs to
services without an X25519 key). FILE serves both to encrypt
(--payload-key-file) and to open (--keyring).

x25519: a key pair for one service's encrypted DMs: the key it agrees with
each other service. The private key goes to FILE (--x25519-key-file); the
public keyring line is printed on stdout for the other nodes' keyrings.

FILE must not exist yet.`,
		Example: `  meshbot keygen ed25519 --service orders --out orders.key >> mesh.keyring
  meshbot pub orders.created '{"order":1}' --ed25519-key-file orders.key
  meshbot tail orders.created --keyring mesh.keyring --require-signed

  meshbot keygen hmac --out mesh.hmac
  meshbot pub orders.created hi --hmac-key-file mesh.hmac

  meshbot keygen payload --out mesh.payload
  meshbot keygen x25519 --service orders --out orders.x25519 >> mesh.keyring
  meshbot serve --service orders --hmac-key-file mesh.hmac --require-signed \
    --payload-key-file mesh.payload --x25519-key-file orders.x25519 --keyring mesh.keyring`,
		Args: func(cmd *cobra.Command, a []string) error {
			if err := nargs(1, 1, "the key type, ed25519, hmac, payload or x25519")(cmd, a); err != nil {
				return err
			}
			switch a[0] {
			case keyEd25519, keyHMAC, keyPayload, keyX25519:
				return nil
			}
			return usagef("keygen: unknown key type %q: want ed25519, hmac, payload or x25519", a[0])
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				return usagef("keygen: --out FILE is required")
			}
			var line, public string
			switch a[0] {
			case keyEd25519:
				if service == "" {
					return usagef("keygen ed25519: --service is required: a key signs for one service")
				}
				pub, priv, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					return err
				}
				if keyID == "" {
					keyID = service + "-" + fingerprint(pub)
				}
				line = fmt.Sprintf("%s %s %s %s\n", keyEd25519Private, keyID, service, base64.StdEncoding.EncodeToString(priv.Seed()))
				public = fmt.Sprintf("%s %s %s %s\n", keyEd25519, keyID, service, base64.StdEncoding.EncodeToString(pub))
			case keyHMAC, keyPayload:
				key := make([]byte, 32)
				_, _ = rand.Read(key)
				if keyID == "" {
					keyID = map[string]string{keyHMAC: "mesh-", keyPayload: "payload-"}[a[0]] + fingerprint(key)
				}
				line = fmt.Sprintf("%s %s %s\n", a[0], keyID, base64.StdEncoding.EncodeToString(key))
			case keyX25519:
				if service == "" {
					return usagef("keygen x25519: --service is required: a key pair is one service's")
				}
				priv, err := ecdh.X25519().GenerateKey(rand.Reader)
				if err != nil {
					return err
				}
				pub := priv.PublicKey().Bytes()
				if keyID == "" {
					keyID = service + "-x" + fingerprint(pub)
				}
				line = fmt.Sprintf("%s %s %s %s\n", keyX25519Private, keyID, service, base64.StdEncoding.EncodeToString(priv.Bytes()))
				public = fmt.Sprintf("%s %s %s %s\n", keyX25519, keyID, service, base64.StdEncoding.EncodeToString(pub))
			}
			if err := writeNew(out, "# meshbot key file (secret), made by 'meshbot keygen'\n"+line); err != nil {
				return err
			}
			if public != "" {
				fmt.Fprint(st.env.stdout, public)
				fmt.Fprintf(st.env.stderr, "wrote the private key %s to %s; the line on stdout is its keyring entry\n", keyID, out)
			} else {
				fmt.Fprintf(st.env.stderr, "wrote the mesh %s key %s to %s; give it (securely) to every node of the mesh\n", a[0], keyID, out)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "file to create (mode 0600)")
	f.StringVar(&service, "service", "", "service the ed25519 or x25519 key is for")
	f.StringVar(&keyID, "key-id", "", "key id written into envelopes (default: SERVICE-<fingerprint>, SERVICE-x<fingerprint> for x25519, mesh-<fingerprint> for hmac, payload-<fingerprint> for payload)")
	return cmd
}

func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

func writeNew(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; not overwriting a key file", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
