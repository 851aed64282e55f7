// Package adopt turns the data of an aws-auth ConfigMap that
// aws-auth-guardian did not write into IAMIdentityMappings, so that taking
// it over loses nothing the authenticator serves. It is pure: the operator
// uses it on first start and the import command on a file or a cluster.
package adopt

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// AdoptedLabel marks mappings created from an existing aws-auth or from
// a cluster's access entries.
const AdoptedLabel = "iam.aws-auth-guardian.dev/adopted"

// Adoption is what an existing aws-auth becomes.
type Adoption struct {
	// Mappings holds one mapping per entry the authenticator serves and an
	// IAMIdentityMapping can represent, sorted by name.
	Mappings []iamv1alpha1.IAMIdentityMapping
	// Unrepresentable holds one sentence per entry (or whole section) that
	// cannot become a mapping. Each blocks a takeover until a person
	// decides, because dropping it could take access away.
	Unrepresentable []string
	// Shadowed holds one sentence per entry the authenticator never serves
	// because a later entry for the same ARN wins: dropping these changes
	// nothing it serves.
	Shadowed []string
}

// FromData adopts the data of an aws-auth ConfigMap.
func FromData(data map[string]string) Adoption {
	return FromParsed(awsauth.Parse(data))
}

// FromParsed adopts what awsauth.Parse read from aws-auth, for a caller
// that has parsed it already.
func FromParsed(entries []awsauth.Entry, rejected []awsauth.Rejected) Adoption {
	var a Adoption
	// The ARNs whose last item, the one the authenticator serves, Parse
	// rejected (it sets userid): every entry Parse returned for such an
	// ARN is one the authenticator does not serve.
	lastRejected := map[string]bool{}
	for _, r := range rejected {
		a.Unrepresentable = append(a.Unrepresentable, sentence(r.Error()))
		if r.Last {
			lastRejected[awsauth.StorageKey(awsauth.Entry{Section: r.Section, Identity: r.Identity})] = true
		}
	}
	var candidates []awsauth.Entry
	for _, group := range groupBy(entries, awsauth.StorageKey) {
		last := group[len(group)-1]
		if lastRejected[awsauth.StorageKey(last)] {
			// Parse left the winner out, so every entry it returned for
			// this ARN is one the authenticator does not serve.
			for _, e := range group {
				a.Shadowed = append(a.Shadowed, fmt.Sprintf("%s lists %s again later with a userid, and the authenticator serves only that last entry, so this one (username %q) is never served.", e.Section, e.Identity, e.Username))
			}
			continue
		}
		for _, e := range group[:len(group)-1] {
			a.Shadowed = append(a.Shadowed, fmt.Sprintf("%s lists %s again later as %s, and the authenticator serves only the last, so this earlier entry (username %q) is never served.", e.Section, e.Identity, last.Identity, e.Username))
		}
		candidates = append(candidates, last)
	}

	byName := map[string][]iamv1alpha1.IAMIdentityMapping{}
	for _, same := range groupBy(candidates, awsauth.Entry.Key) {
		e, err := a.settleCase(same)
		if err == nil {
			var m iamv1alpha1.IAMIdentityMapping
			if m, err = mappingFor(e); err == nil {
				byName[m.Name] = append(byName[m.Name], m)
			}
		}
		if err != nil {
			a.Unrepresentable = append(a.Unrepresentable, sentence(err.Error()))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		same := byName[name]
		if len(same) == 1 {
			a.Mappings = append(a.Mappings, same[0])
			continue
		}
		// Name makes this all but impossible; should it happen (a
		// truncated hash can collide), neither may overwrite the other.
		ids := make([]string, len(same))
		for i, m := range same {
			ids[i] = cmp.Or(m.Spec.ARN, m.Spec.AccountID)
		}
		a.Unrepresentable = append(a.Unrepresentable, fmt.Sprintf("%s would all be adopted under the name %s, so none is; create their mappings under names of your choosing.", strings.Join(ids, " and "), name))
	}
	return a
}

// mappingFor turns one served entry into a mapping, or says why it cannot.
func mappingFor(e awsauth.Entry) (iamv1alpha1.IAMIdentityMapping, error) {
	m := awsauth.Mapping{Username: e.Username, Groups: e.Groups}
	if e.Section == awsauth.MapAccounts {
		m.AccountID = e.Identity
	} else {
		m.ARN = e.Identity
	}
	canonical, err := m.Entry()
	switch {
	case err != nil:
		return iamv1alpha1.IAMIdentityMapping{}, fmt.Errorf("%s entry %s cannot become an IAMIdentityMapping: %w", e.Section, e.Identity, err)
	case canonical.Identity != e.Identity:
		// A mapping strips the path and would then match the role, which
		// the authenticator never did for this entry.
		return iamv1alpha1.IAMIdentityMapping{}, fmt.Errorf("%s entry %s carries a path, so the authenticator never matches it (it compares roles as %s); adopting it would grant access it never had, so create that mapping on purpose if it is wanted", e.Section, e.Identity, canonical.Identity)
	}
	spec := iamv1alpha1.IAMIdentityMappingSpec{AccountID: m.AccountID, ARN: m.ARN, Username: iamv1alpha1.IdentityName(m.Username)}
	for _, g := range m.Groups {
		spec.Groups = append(spec.Groups, iamv1alpha1.IdentityName(g))
	}
	return iamv1alpha1.IAMIdentityMapping{
		TypeMeta:   metav1.TypeMeta{APIVersion: iamv1alpha1.GroupVersion.String(), Kind: "IAMIdentityMapping"},
		ObjectMeta: metav1.ObjectMeta{Name: Name(canonical), Labels: map[string]string{AdoptedLabel: "true"}},
		Spec:       spec,
	}, nil
}

// settleCase picks the entry to adopt of served entries that name one
// identity in different cases, which only users can do: the authenticator
// keys users by the ARN as written but looks them up without case, walking
// a Go map, so when such entries disagree it serves one of them at random,
// which no mapping can reproduce.
func (a *Adoption) settleCase(same []awsauth.Entry) (awsauth.Entry, error) {
	first := same[0]
	if slices.ContainsFunc(same, func(e awsauth.Entry) bool { return !sameGrant(e, first) }) {
		ids := make([]string, len(same))
		for i, e := range same {
			ids[i] = e.Identity
		}
		return awsauth.Entry{}, fmt.Errorf("%s lists %s, which differ only in case: the authenticator treats them as one user and serves one of their different usernames or groups at random, so decide which is meant and create that mapping", first.Section, strings.Join(ids, " and "))
	}
	for _, e := range same[1:] {
		a.Shadowed = append(a.Shadowed, fmt.Sprintf("%s lists %s, which the authenticator treats as the same user as %s and maps the same way, so it adds nothing.", e.Section, e.Identity, first.Identity))
	}
	return first, nil
}

func sameGrant(a, b awsauth.Entry) bool {
	return a.Username == b.Username && slices.Equal(a.Groups, b.Groups)
}

// groupBy groups the entries by key, keeping the order of the groups and,
// within a group, the order of the entries (Parse sorts stably, so that is
// the order in aws-auth).
func groupBy(entries []awsauth.Entry, key func(awsauth.Entry) string) [][]awsauth.Entry {
	var groups [][]awsauth.Entry
	index := map[string]int{}
	for _, e := range entries {
		k := key(e)
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], e)
	}
	return groups
}

// sentence makes an error message read as a sentence in a list.
func sentence(s string) string {
	return strings.TrimSuffix(s, ".") + "."
}

// maxNameLength is the limit of a DNS-1123 subdomain, which object names are.
const maxNameLength = 253

// hashSuffix is what Name appends; a name that ends like it by itself gets
// one too, so that it cannot be mistaken for another identity's name.
var hashSuffix = regexp.MustCompile(`-[0-9a-f]{8}$`)

// Name is the object name of the mapping adopted from e:
// role-<account>-<name>, user-<account>-<path and name>, account-<id>,
// lower-cased, with every character a name cannot hold turned into '-'.
// When that loses information (case, punctuation, the difference between
// '/' and '-' in a user's path, a partition other than aws), or the name
// would be too long or end like a hashed one, the first 8 hex digits of
// the sha256 of the lower-cased identity are appended, so that two
// identities the authenticator tells apart do not share a name.
func Name(e awsauth.Entry) string {
	var raw string
	lossy := false
	if e.Section == awsauth.MapAccounts {
		raw = "account-" + e.Identity
	} else if parts := strings.SplitN(e.Identity, ":", 6); len(parts) == 6 {
		kind, path, _ := strings.Cut(parts[5], "/")
		raw = kind + "-" + parts[4] + "-" + strings.ReplaceAll(path, "/", "-")
		lossy = parts[1] != "aws" || strings.Contains(path, "/")
	} else {
		raw, lossy = "entry-"+e.Identity, true
	}

	var b strings.Builder
	for _, r := range raw {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r - 'A' + 'a')
			lossy = true
		default:
			b.WriteByte('-')
			lossy = true
		}
	}
	name := b.String()
	if !lossy && len(name) <= maxNameLength && !strings.HasSuffix(name, "-") && !hashSuffix.MatchString(name) {
		return name
	}
	sum := sha256.Sum256([]byte(strings.ToLower(e.Identity)))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	name = name[:min(len(name), maxNameLength-len(suffix))]
	return strings.TrimRight(name, "-") + suffix
}
