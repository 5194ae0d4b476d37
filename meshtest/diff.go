package meshtest

import (
	"fmt"
	"strings"
)

// diffContext is how many unchanged lines a diff shows around a change.
const diffContext = 2

// maxDiffCells bounds the work of aligning the changed middle of two texts
// (lines of one times lines of the other); beyond it the middle is shown
// as removed and added whole.
const maxDiffCells = 4 << 20

// Diff returns a line diff of want and got: hunks headed by the line
// numbers they start at in each ("@@ -12 +12 @@"), unchanged lines
// indented by two spaces, removed ones marked "-", added ones "+". It
// returns "" when the texts are equal.
func Diff(want, got string) string {
	if want == got {
		return ""
	}
	a, b := splitLines(want), splitLines(got)
	ops := align(a, b)
	var out strings.Builder
	// Print hunks: runs of changes with diffContext equal lines around.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-diffContext, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*diffContext || run == len(ops) {
				end = min(end+diffContext, len(ops))
				break
			}
			end = run
		}
		fmt.Fprintf(&out, "@@ -%d +%d @@\n", ops[start].a+1, ops[start].b+1)
		for _, op := range ops[start:end] {
			out.WriteByte(op.kind)
			out.WriteByte(' ')
			out.WriteString(op.text)
			out.WriteByte('\n')
		}
		i = end
	}
	return out.String()
}

// splitLines splits s into lines; a final newline ends the last line
// rather than starting an empty one, and a missing one is shown.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if lines[len(lines)-1] == "" {
		return lines[:len(lines)-1]
	}
	lines[len(lines)-1] += " (no newline at end)"
	return lines
}

// diffOp is one line of a diff: ' ' kept, '-' removed, '+' added; a and b
// are its line numbers (from 0) in want and got, or where it would be.
type diffOp struct {
	kind byte
	text string
	a, b int
}

// align returns the edit script from a to b: the common prefix and suffix
// kept, the middle aligned by a longest common subsequence (bounded by
// maxDiffCells).
func align(a, b []string) []diffOp {
	var ops []diffOp
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		ops = append(ops, diffOp{' ', a[p], p, p})
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	ma, mb := a[p:len(a)-s], b[p:len(b)-s]
	ops = append(ops, alignMiddle(ma, mb, p)...)
	for k := 0; k < s; k++ {
		i, j := len(a)-s+k, len(b)-s+k
		ops = append(ops, diffOp{' ', a[i], i, j})
	}
	return ops
}

func alignMiddle(a, b []string, off int) []diffOp {
	var ops []diffOp
	if len(a)*len(b) > maxDiffCells {
		for i, l := range a {
			ops = append(ops, diffOp{'-', l, off + i, off})
		}
		for j, l := range b {
			ops = append(ops, diffOp{'+', l, off + len(a), off + j})
		}
		return ops
	}
	// lcs[i][j]: length of the LCS of a[i:] and b[j:].
	w := len(b) + 1
	lcs := make([]int32, (len(a)+1)*w)
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i], off + i, off + j})
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
			ops = append(ops, diffOp{'-', a[i], off + i, off + j})
			i++
		default:
			ops = append(ops, diffOp{'+', b[j], off + i, off + j})
			j++
		}
	}
	return ops
}
