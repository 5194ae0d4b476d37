package recording_test

import (
	"fmt"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// A log of a live run, edited for a test of what a service does when it
// misses an event or receives one twice.
func Example() {
	log, err := recording.Load("../testdata/shop.log")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %d lines in namespace %s, recorded by %s\n", log.Name, log.Len(), log.Namespace(), log.Owner())

	orders := log.Find(recording.All(recording.Topic("orders"), recording.Kind(envelope.KindEvent)))
	second := recording.Numbers(orders[1].N)
	for _, env := range orders[1].Envelopes() {
		fmt.Printf("line %d: %s %s\n", orders[1].N, env.Kind, env.Payload)
	}

	missed := log.Drop(second)
	twice := log.Duplicate(second, 2*time.Second)
	fmt.Println("missed:", missed.Len(), "lines; twice:", twice.Len(), "lines")
	// Output:
	// shop.log: 137 lines in namespace t, recorded by shop-live
	// line 60: event {"order":2}
	// missed: 136 lines; twice: 138 lines
}

// A production log made fit to commit: one topic, no heartbeats, the
// customers' names replaced by stand-ins (equal names stay equal).
func ExampleLog_Anonymize() {
	log, err := recording.Load("../testdata/shop.log")
	if err != nil {
		fmt.Println(err)
		return
	}
	cut, err := log.Topics("orders").WithoutHeartbeats().Anonymize(recording.RedactJSON("order"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range cut.Find(recording.Kind(envelope.KindEvent)) {
		for _, env := range l.Envelopes() {
			fmt.Printf("%s %s\n", l.Topic(), env.Payload)
		}
	}
	// Output:
	// orders {"order":"redacted-6b86b273"}
	// orders {"order":"redacted-d4735e3a"}
	// orders not json
	// orders {"order":"redacted-4e074085"}
}
