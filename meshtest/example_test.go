package meshtest_test

import (
	"fmt"

	"github.com/meshbot/meshbot/meshtest"
)

// What a golden file's test prints when the service changed: the lines
// that differ, with two lines of context.
func ExampleDiff() {
	want := `# meshtest replay of orders.log into billing: 218 lines, 87 delivered
+0.704s publish billing.charged {"order":13,"cents":840}
+1.304s publish billing.charged {"order":15,"cents":310}
+1.907s handler-error orders.created event b58d08b2: order 17: over the limit
`
	got := `# meshtest replay of orders.log into billing: 218 lines, 87 delivered
+0.704s publish billing.charged {"order":13,"cents":840}
+1.304s publish billing.charged {"order":15,"cents":310}
+1.907s publish billing.charged {"order":17,"cents":1260}
`
	fmt.Print(meshtest.Diff(want, got))
	// Output:
	// @@ -2 +2 @@
	//   +0.704s publish billing.charged {"order":13,"cents":840}
	//   +1.304s publish billing.charged {"order":15,"cents":310}
	// - +1.907s handler-error orders.created event b58d08b2: order 17: over the limit
	// + +1.907s publish billing.charged {"order":17,"cents":1260}
}

// How payloads appear in the output.
func ExampleShowPayload() {
	fmt.Println(meshtest.ShowPayload([]byte(`{"order":13}`)))
	fmt.Println(meshtest.ShowPayload([]byte("two\nlines")))
	fmt.Println(meshtest.ShowPayload([]byte{0xff, 0x00}))
	fmt.Println(meshtest.ShowPayload(nil))
	// Output:
	// {"order":13}
	// "two\nlines"
	// base64:/wA=
	// (empty)
}
