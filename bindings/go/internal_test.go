package llmk

import (
	"errors"
	"strings"
	"testing"
)

func TestABICheck(t *testing.T) {
	if err := checkABI(); err != nil {
		t.Fatalf("the library this test runs with: %v", err)
	}
	err := abiError(1)
	if !errors.Is(err, ErrABIMismatch) {
		t.Fatalf("abiError(1) = %v, want ErrABIMismatch", err)
	}
	for _, part := range []string{"ABI version 1", "expects 0"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("%q does not say %q", err, part)
		}
	}
}
