package state

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// BenchmarkReplicaMemory reports the memory a copy holds per key, for
// values of 16 B, 200 B and 1 KiB: every key written once by its own
// update, as a reader's copy holds a domain (value, tombstone-free stamp,
// and the sealed update kept for snapshots), measured with the heap
// before and after. per_key_B is all of it; overhead_B what is beyond
// the value itself.
func BenchmarkReplicaMemory(b *testing.B) {
	for _, size := range []int{16, 200, 1024} {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) {
			const keys = 20000
			var perKey float64
			for range b.N {
				// The lines as received: sealed updates, one per key.
				sealed := make([][]byte, keys)
				var sealedBytes int
				for i := range keys {
					u := &Update{ID: envelope.NewID(), Domain: "cfg", Writer: envelope.Sender{Service: "cfg", Instance: "abcdef", Incarnation: 1},
						SentAt: time.Now().UnixNano(), Version: uint64(i + 1), Puts: []KeyPut{{Key: fmt.Sprintf("key-%06d", i), Version: 1, Value: make([]byte, size)}}}
					env, err := u.Envelope()
					if err != nil {
						b.Fatal(err)
					}
					if sealed[i], err = envelope.Marshal(env); err != nil {
						b.Fatal(err)
					}
					sealedBytes += len(sealed[i])
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				// Decode and apply them as a receiver does; the copy keeps
				// the sealed bytes (counted below) and what it decoded.
				r, _ := New(Config{Domain: "cfg"})
				for _, sb := range sealed {
					env, err := envelope.Unmarshal(sb, 0)
					if err != nil {
						b.Fatal(err)
					}
					u, err := DecodeUpdate(env, "cfg-abcdef", "cfg", sb)
					if err != nil {
						b.Fatal(err)
					}
					if err := r.Receive(u, time.Time{}); err != nil {
						b.Fatal(err)
					}
				}
				r.Ready()
				runtime.GC()
				runtime.ReadMemStats(&after)
				perKey = (float64(after.HeapAlloc) - float64(before.HeapAlloc) + float64(sealedBytes)) / keys
				runtime.KeepAlive(r)
				runtime.KeepAlive(sealed)
			}
			b.ReportMetric(perKey, "per_key_B")
			b.ReportMetric(perKey-float64(size), "overhead_B")
		})
	}
}

// BenchmarkReceive is the cost of applying one received update to a copy
// of 1,000 keys.
func BenchmarkReceive(b *testing.B) {
	ups := make([]*Update, 1000)
	for i := range ups {
		ups[i] = &Update{ID: envelope.NewID(), Domain: "cfg", Writer: envelope.Sender{Service: "cfg", Instance: "a"},
			Version: uint64(i + 1), Puts: []KeyPut{{Key: fmt.Sprintf("k%03d", i), Version: 1, Value: make([]byte, 200)}}}
	}
	r, _ := New(Config{Domain: "cfg"})
	b.ResetTimer()
	for i := range b.N {
		u := *ups[i%len(ups)]
		u.Version = uint64(i + 1)
		u.Puts = []KeyPut{{Key: u.Puts[0].Key, Version: uint64(i/len(ups) + 1), Value: u.Puts[0].Value}}
		if err := r.Receive(&u, time.Time{}); err != nil {
			b.Fatal(err)
		}
		r.Ready()
	}
}
