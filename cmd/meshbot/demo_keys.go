package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshbot/meshbot/envelope"
)

// The demo runs a signed mesh (secure defaults): a mesh HMAC key made for
// the run, every bot signing with it and requiring signatures. The key
// file lives in a temporary directory for the run, so that the commands
// of another terminal can join the mesh (keysNote says how).

// makeKeys makes the run's mesh key and writes its key file.
func (d *demo) makeKeys() error {
	dir, err := os.MkdirTemp("", "meshbot-demo-")
	if err != nil {
		return fmt.Errorf("demo: a directory for the mesh key: %w", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	id := "demo-" + fingerprint(key)
	path := filepath.Join(dir, "mesh.hmac")
	if err := writeNew(path, "# meshbot demo mesh key (removed when the demo stops)\n"+
		fmt.Sprintf("%s %s %s\n", keyHMAC, id, base64.StdEncoding.EncodeToString(key))); err != nil {
		os.RemoveAll(dir)
		return err
	}
	d.keyDir = dir
	d.signer = envelope.NewHMACSigner(id, key)
	d.keys = envelope.NewKeyring()
	d.keys.AddHMAC(id, key)
	return nil
}

// keysPath is the run's key file.
func (d *demo) keysPath() string { return filepath.Join(d.keyDir, "mesh.hmac") }

// keysNote tells how another terminal's commands join the signed mesh.
func (d *demo) keysNote() string {
	p := d.keysPath()
	return "  The mesh is signed with a key made for this run (" + p + ", removed when the demo stops):\n" +
		"  lines not signed with it are refused. In another terminal, first:\n" +
		"    export MESHBOT_HMAC_KEY_FILE=" + p + " MESHBOT_KEYRING=" + p + " MESHBOT_REQUIRE_SIGNED=1"
}
