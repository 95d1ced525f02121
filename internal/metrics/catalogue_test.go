package metrics_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCatalogueListsEveryName checks that docs/metrics.md has a section for
// every metric name declared in metrics.go, and none for a name that is not.
func TestCatalogueListsEveryName(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "metrics.go", nil, 0)
	require.NoError(t, err)
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, "cioq_") {
				names = append(names, s)
			}
		}
		return true
	})
	require.NotEmpty(t, names)

	doc, err := os.ReadFile("../../docs/metrics.md")
	require.NoError(t, err)
	var documented []string
	for _, m := range regexp.MustCompile(`(?m)^### (cioq_[a-z_]+)$`).FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	for _, n := range names {
		require.Contains(t, documented, n, "docs/metrics.md has no section for %s", n)
	}
	for _, d := range documented {
		require.True(t, slices.Contains(names, d), "docs/metrics.md documents %s, which metrics.go does not declare", d)
	}
}
