package adopt_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// hash8 is the suffix Name appends, worked out independently.
func hash8(identity string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(identity)))
	return hex.EncodeToString(sum[:])[:8]
}
