package awsauth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

// MaxDataBytes is the API server's limit on a ConfigMap's data: the sum of
// the lengths of its keys and values.
const MaxDataBytes = 1 << 20

// The field names the authenticator reads; it ignores any other spelling.
// They are written in this order, the order EKS and its documentation use.
type roleYAML struct {
	RoleARN  string   `yaml:"rolearn"`
	Username string   `yaml:"username"`
	Groups   []string `yaml:"groups,omitempty"`
}

type userYAML struct {
	UserARN  string   `yaml:"userarn"`
	Username string   `yaml:"username"`
	Groups   []string `yaml:"groups,omitempty"`
}

// ErrTooLarge is Render's refusal of data over MaxDataBytes.
var ErrTooLarge = errors.New("over the ConfigMap limit")

// Rendered is aws-auth data with what is known of it: the entries it
// parses back to, its hash and its size. Computed once per render, so that
// nothing downstream parses or hashes the same bytes again.
type Rendered struct {
	// Entries are what the authenticator reads from Data, in render order.
	Entries []Entry
	Data    map[string]string
	// Hash is Hash(Data), as recorded on aws-auth.
	Hash string
	// Size is DataSize(Data), what the API server counts against MaxDataBytes.
	Size int
}

// Render turns entries into aws-auth data. It is deterministic: the same
// entries in any order give byte-identical data. It refuses duplicate
// identities (the authenticator would let the last one win), data over the
// ConfigMap limit, and any render that does not parse back to exactly the
// entries it was given, so what it returns is what the authenticator sees.
func Render(entries []Entry) (Rendered, error) {
	sorted := slices.SortedStableFunc(slices.Values(entries), compareEntries)
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Key() == sorted[i-1].Key() {
			return Rendered{}, fmt.Errorf("%s lists %s twice; the authenticator would silently keep only the last", sorted[i].Section, sorted[i].Identity)
		}
	}

	lists := map[Section][]any{}
	for _, e := range sorted {
		it, err := item(e)
		if err != nil {
			return Rendered{}, err
		}
		lists[e.Section] = append(lists[e.Section], it)
	}
	data := map[string]string{}
	if err := errors.Join(
		putSection(data, MapRoles, lists[MapRoles]),
		putSection(data, MapUsers, lists[MapUsers]),
		putSection(data, MapAccounts, lists[MapAccounts]),
	); err != nil {
		return Rendered{}, err
	}

	size := DataSize(data)
	if size > MaxDataBytes {
		return Rendered{}, fmt.Errorf("the render is %d bytes, %w of %d bytes (%d entries)", size, ErrTooLarge, MaxDataBytes, len(sorted))
	}
	parsed, rejected := Parse(data)
	if len(rejected) > 0 {
		return Rendered{}, fmt.Errorf("the render does not parse back: %w", rejected[0])
	}
	if !slices.EqualFunc(parsed, sorted, Entry.Equal) {
		return Rendered{}, fmt.Errorf("the render does not parse back to the same %d entries", len(sorted))
	}
	return Rendered{Entries: parsed, Data: data, Hash: Hash(data), Size: size}, nil
}

// item is what an entry is in its section's YAML list.
func item(e Entry) (any, error) {
	switch e.Section {
	case MapRoles:
		return roleYAML{RoleARN: e.Identity, Username: e.Username, Groups: e.Groups}, nil
	case MapUsers:
		return userYAML{UserARN: e.Identity, Username: e.Username, Groups: e.Groups}, nil
	case MapAccounts:
		return e.Identity, nil
	}
	return nil, fmt.Errorf("entry %s has unknown section %q", e.Identity, e.Section)
}

// putSection leaves an empty section out: EKS itself writes only the
// sections it uses.
func putSection(data map[string]string, section Section, list []any) error {
	if len(list) == 0 {
		return nil
	}
	out, err := encode(list)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", section, err)
	}
	data[string(section)] = string(out)
	return nil
}

// encode writes a section's list with yaml.v2, as the authenticator's own
// encoder: it keeps the field order.
func encode(list []any) ([]byte, error) {
	return yamlv2.Marshal(list)
}

// Equal reports whether two entries say exactly the same.
func (e Entry) Equal(other Entry) bool {
	return e.Section == other.Section && e.Identity == other.Identity && e.Username == other.Username && slices.Equal(e.Groups, other.Groups)
}

// DataSize is what the API server counts against MaxDataBytes.
func DataSize(data map[string]string) int {
	size := 0
	for k, v := range data {
		size += len(k) + len(v)
	}
	return size
}

// Hash is a stable digest of ConfigMap data, recorded on aws-auth so that a
// person or a tool can tell which render is live.
func Hash(data map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		_, _ = fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(data[k]), data[k]) // a hash never fails to write
	}
	return hex.EncodeToString(h.Sum(nil))
}

// parsedRole holds every field the authenticator knows of, so that an entry
// this project cannot represent (an SSO matcher, a user ID) is reported
// rather than read as something else.
type parsedRole struct {
	RoleARN  string          `json:"rolearn"`
	SSO      json.RawMessage `json:"sso"`
	UserID   string          `json:"userid"`
	Username string          `json:"username"`
	Groups   []string        `json:"groups"`
}

type parsedUser struct {
	UserARN  string   `json:"userarn"`
	UserID   string   `json:"userid"`
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// Rejected is an item of aws-auth that Parse does not return as an entry:
// one the authenticator ignores, or one an IAMIdentityMapping cannot say.
type Rejected struct {
	Section Section
	// Index is the item's place in its section; -1 when the whole section
	// is rejected.
	Index int
	// Identity is the ARN under which the authenticator stores the item,
	// replacing any earlier entry for it; "" when it stores it under none
	// (no ARN, an sso matcher, a whole section).
	Identity string
	// Last: no later item of the section is stored under Identity, so this
	// is the item the authenticator serves for it.
	Last   bool
	Reason string
}

// Error is the reason, written for a person.
func (r Rejected) Error() string { return r.Reason }

// Parse reads aws-auth data the way the authenticator does (YAML to JSON,
// then the same field names; an empty or quoted-empty value is skipped) and
// returns the entries in render order. Each item it cannot read as a plain
// mapping, and each section that does not parse at all, is rejected; the
// entries that can be read are still returned, as the authenticator still
// serves them.
func Parse(data map[string]string) ([]Entry, []Rejected) {
	var entries []Entry
	var rejected []Rejected
	var roles []parsedRole
	if err := decodeSection(data, MapRoles, &roles); err != nil {
		rejected = append(rejected, Rejected{Section: MapRoles, Index: -1, Reason: err.Error()})
	}
	// The authenticator refuses a role with both rolearn and sso, so such
	// an item is stored under no ARN.
	roleKeys := make([]string, len(roles))
	for i, r := range roles {
		if r.SSO == nil || string(r.SSO) == "null" {
			roleKeys[i] = StorageKey(Entry{Section: MapRoles, Identity: r.RoleARN})
		}
	}
	rolesLast := lastOfEach(roleKeys)
	for i, r := range roles {
		reject := func(identity, reason string, args ...any) {
			rejected = append(rejected, Rejected{Section: MapRoles, Index: i, Identity: identity, Last: identity != "" && rolesLast[i], Reason: fmt.Sprintf(reason, args...)})
		}
		switch {
		// A null (or empty) sso is no matcher: the authenticator serves the
		// rolearn next to it.
		case r.SSO != nil && string(r.SSO) != "null":
			reject("", "mapRoles[%d] uses an sso matcher, which IAMIdentityMapping does not represent", i)
		case r.RoleARN == "":
			reject("", "mapRoles[%d] has no rolearn", i)
		case r.UserID != "":
			reject(r.RoleARN, "mapRoles[%d] (%s) sets userid, which IAMIdentityMapping does not represent", i, r.RoleARN)
		default:
			entries = append(entries, Entry{Section: MapRoles, Identity: r.RoleARN, Username: r.Username, Groups: nilIfEmpty(r.Groups)})
		}
	}
	var users []parsedUser
	if err := decodeSection(data, MapUsers, &users); err != nil {
		rejected = append(rejected, Rejected{Section: MapUsers, Index: -1, Reason: err.Error()})
	}
	userKeys := make([]string, len(users))
	for i, u := range users {
		userKeys[i] = StorageKey(Entry{Section: MapUsers, Identity: u.UserARN})
	}
	usersLast := lastOfEach(userKeys)
	for i, u := range users {
		switch {
		case u.UserARN == "":
			rejected = append(rejected, Rejected{Section: MapUsers, Index: i, Reason: fmt.Sprintf("mapUsers[%d] has no userarn", i)})
		case u.UserID != "":
			rejected = append(rejected, Rejected{Section: MapUsers, Index: i, Identity: u.UserARN, Last: usersLast[i],
				Reason: fmt.Sprintf("mapUsers[%d] (%s) sets userid, which IAMIdentityMapping does not represent", i, u.UserARN)})
		default:
			entries = append(entries, Entry{Section: MapUsers, Identity: u.UserARN, Username: u.Username, Groups: nilIfEmpty(u.Groups)})
		}
	}
	accounts, err := decodeAccounts(data)
	if err != nil {
		rejected = append(rejected, Rejected{Section: MapAccounts, Index: -1, Reason: err.Error()})
	}
	for _, a := range accounts {
		entries = append(entries, Entry{Section: MapAccounts, Identity: a})
	}
	slices.SortStableFunc(entries, compareEntries)
	return entries, rejected
}

// lastOfEach marks the indexes whose key no later index repeats; an empty
// key is never last.
func lastOfEach(keys []string) []bool {
	last := make([]bool, len(keys))
	seen := map[string]bool{}
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i] != "" && !seen[keys[i]] {
			last[i], seen[keys[i]] = true, true
		}
	}
	return last
}

func decodeSection(data map[string]string, section Section, into any) error {
	raw, ok := data[string(section)]
	if !ok || isSkippable(raw) {
		return nil
	}
	asJSON, err := yaml.YAMLToJSON([]byte(raw))
	if err != nil {
		return fmt.Errorf("%s is not valid YAML, so the authenticator ignores all of it: %w", section, err)
	}
	if err := json.Unmarshal(asJSON, into); err != nil {
		return fmt.Errorf("%s is not a list of entries, so the authenticator ignores all of it: %w", section, err)
	}
	return nil
}

// decodeAccounts reads mapAccounts as the authenticator does, straight from
// YAML: an unquoted account ID is a number in JSON but a string here.
func decodeAccounts(data map[string]string) ([]string, error) {
	raw, ok := data[string(MapAccounts)]
	if !ok || isSkippable(raw) {
		return nil, nil
	}
	var accounts []string
	if err := yamlv2.Unmarshal([]byte(raw), &accounts); err != nil {
		return nil, fmt.Errorf("mapAccounts is not a list of account IDs, so the authenticator ignores all of it: %w", err)
	}
	return accounts, nil
}

// isSkippable mirrors the authenticator, which treats these values as an
// empty section.
func isSkippable(value string) bool {
	switch strings.TrimSpace(value) {
	case "", "``", `""`, "''":
		return true
	}
	return false
}
