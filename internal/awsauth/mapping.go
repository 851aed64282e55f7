package awsauth

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds on what a mapping may carry. They keep entries readable, let the
// API server's CEL cost estimator accept the CRD's rules, and keep one
// entry small against the ConfigMap limit (MaxDataBytes); real aws-auth
// files stay far inside them. The CRD schema repeats them.
const (
	MaxUsernameLength = 256
	MaxGroupLength    = 128
	MaxGroups         = 16
)

// Mapping is one IAMIdentityMapping as the render sees it.
type Mapping struct {
	Name    string
	Created time.Time
	// Exactly one of ARN and AccountID is set.
	ARN       string
	Username  string
	Groups    []string
	AccountID string
}

// Entry is one entry of aws-auth, in the form the authenticator reads it.
type Entry struct {
	Section Section
	// Identity is the canonical role or user ARN, or the account ID in
	// mapAccounts.
	Identity string
	Username string
	Groups   []string
}

// Key is how the authenticator matches identities: ARNs compare without
// case. Two entries of one key are one identity to it, and a later one
// silently wins, which is why Resolve makes every key unique.
func (e Entry) Key() string {
	return string(e.Section) + "\x00" + strings.ToLower(e.Identity)
}

// StorageKey is the key under which the authenticator stores an entry, and
// so which entries replace each other (the last wins): roles by the ARN in
// lower case, users by the ARN as written (it matches them without case,
// but two users that differ in case are stored apart), accounts as a set.
func StorageKey(e Entry) string {
	if e.Section == MapUsers {
		return string(e.Section) + "\x00" + e.Identity
	}
	return e.Key()
}

// compareEntries is the render order: section, then identity without case.
func compareEntries(a, b Entry) int {
	return cmp.Or(
		cmp.Compare(sectionOrder(a.Section), sectionOrder(b.Section)),
		strings.Compare(strings.ToLower(a.Identity), strings.ToLower(b.Identity)),
	)
}

func sectionOrder(s Section) int {
	return slices.Index([]Section{MapRoles, MapUsers, MapAccounts}, s)
}

// Entry validates the mapping and returns the aws-auth entry it asks for.
// The errors are written for the person who wrote the spec.
func (m Mapping) Entry() (Entry, error) {
	switch {
	case m.ARN != "" && m.AccountID != "":
		return Entry{}, errors.New(RuleOneIdentity)
	case m.AccountID != "":
		if m.Username != "" || len(m.Groups) > 0 {
			return Entry{}, errors.New(RuleAccountAlone)
		}
		if err := ValidAccountID(m.AccountID); err != nil {
			return Entry{}, err
		}
		return Entry{Section: MapAccounts, Identity: m.AccountID}, nil
	case m.ARN == "":
		return Entry{}, errors.New(RuleOneIdentity)
	}
	arn, section, err := CanonicalARN(m.ARN)
	if err != nil {
		return Entry{}, err
	}
	if m.Username == "" {
		return Entry{}, errors.New(RuleUsernameIsSet)
	}
	if err := validName("username", m.Username, MaxUsernameLength, section); err != nil {
		return Entry{}, err
	}
	if err := assumerChoosesPrefix(m.Username); err != nil {
		return Entry{}, err
	}
	if len(m.Groups) > MaxGroups {
		return Entry{}, fmt.Errorf("groups has %d items; at most %d are allowed", len(m.Groups), MaxGroups)
	}
	for i, g := range m.Groups {
		if err := validName(fmt.Sprintf("groups[%d]", i), g, MaxGroupLength, section); err != nil {
			return Entry{}, err
		}
	}
	return Entry{Section: section, Identity: arn, Username: m.Username, Groups: slices.Clip(nilIfEmpty(m.Groups))}, nil
}

// Templates the authenticator expands in usernames and groups. It leaves
// anything else between braces as it is, which yields a name nobody meant,
// so any other use of double braces is refused. The CRD schema runs the same
// check (replace the known templates, in this order, by a character that is not
// a brace, then look for braces).
var (
	Templates     = []string{"{{AccountID}}", "{{SessionName}}", "{{SessionNameRaw}}", "{{AccessKeyID}}"}
	RoleTemplates = []string{"{{EC2PrivateDNSName}}"}
	unknownBraces = regexp.MustCompile(`\{\{[^{}]*\}\}|\{\{|\}\}`)
)

func validName(field, value string, maxLength int, section Section) error {
	switch {
	case value == "":
		return fmt.Errorf("%s must not be empty", field)
	case len(value) > maxLength:
		return fmt.Errorf("%s is %d characters long; at most %d are allowed", field, len(value), maxLength)
	case !utf8.ValidString(value):
		// JSON, and so the render, would turn the invalid bytes into U+FFFD.
		return fmt.Errorf("%s %q is not valid UTF-8", field, value)
	// C1 controls count too: the YAML encoder folds U+0085 (NEL) into a
	// space, so such a value would not survive the render.
	case strings.ContainsFunc(value, unicode.IsControl):
		return broken(field, RuleNoControl, value)
	}
	rest := value
	for _, t := range slices.Concat(Templates, RoleTemplates) {
		rest = strings.ReplaceAll(rest, t, "_")
	}
	if bad := unknownBraces.FindString(rest); bad != "" {
		return broken(field, RuleTemplates, bad)
	}
	if section != MapRoles && slices.ContainsFunc(RoleTemplates, func(t string) bool { return strings.Contains(value, t) }) {
		return broken(field, RuleRoleTemplate, value)
	}
	return nil
}

// assumerChoosesPrefix refuses a username whose first template comes
// before its first ':'. Whoever assumes a role chooses its session name, so
// {{SessionName}}:x (or {{SessionName}} alone) lets them pick a username
// such as system:kube-controller-manager. {{AccountID}} is fixed by the
// account and may come first. The CRD schema runs the same check.
func assumerChoosesPrefix(username string) error {
	rest := strings.ReplaceAll(username, "{{AccountID}}", "")
	template := strings.Index(rest, "{{")
	if colon := strings.Index(rest, ":"); template >= 0 && (colon < 0 || colon > template) {
		return broken("", RuleFixedPrefix, username)
	}
	return nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// Outcome is what became of one mapping.
type Outcome struct {
	// Entry is the mapping's aws-auth entry; zero when Err is set.
	Entry Entry
	// Err says why the spec is invalid.
	Err error
	// ShadowedBy names the older mapping that claims the same identity; this
	// mapping's entry is not rendered.
	ShadowedBy string
	// TooLarge is set when the entry is valid and unique but left out
	// because it does not fit within MaxDataBytes next to the entries
	// preferred over it (see Fit).
	TooLarge *Overflow
}

// Resolution is the set of entries to render and the outcome per mapping.
type Resolution struct {
	Entries  []Entry
	Outcomes map[string]Outcome
	// byAge names the mappings whose entries are in Entries, oldest first,
	// for Fit's order of preference.
	byAge []string
}

// Resolve validates every mapping and settles conflicts: of the mappings
// that ask for the same identity the oldest (then the first by name) wins
// and the others are told which one did, so nothing is shadowed silently.
// The entries come out in render order.
func Resolve(mappings []Mapping) Resolution {
	ordered := slices.SortedFunc(slices.Values(mappings), func(a, b Mapping) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Name, b.Name))
	})
	res := Resolution{Outcomes: make(map[string]Outcome, len(mappings))}
	winners := make(map[string]string, len(mappings))
	for _, m := range ordered {
		entry, err := m.Entry()
		if err != nil {
			res.Outcomes[m.Name] = Outcome{Err: err}
			continue
		}
		if winner, taken := winners[entry.Key()]; taken {
			res.Outcomes[m.Name] = Outcome{Entry: entry, ShadowedBy: winner}
			continue
		}
		winners[entry.Key()] = m.Name
		res.Outcomes[m.Name] = Outcome{Entry: entry}
		res.Entries = append(res.Entries, entry)
		res.byAge = append(res.byAge, m.Name)
	}
	slices.SortFunc(res.Entries, compareEntries)
	return res
}
